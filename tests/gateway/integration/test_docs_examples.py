"""The Python and curl examples of docs/GATEWAY.md and of README.md's real-time section, run as written against
the real gateway.

Only the address (127.0.0.1:8000 -> the test gateway's free port) and the key file (.cache/gateway/api_key -> a
file holding the test key) are substituted, so the documentation cannot drift from what works.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

DOC = ROOT / "docs" / "GATEWAY.md"
README_SECTION = "## Real-time clients"


def blocks(language: str, text: str | None = None) -> list[str]:
    text = DOC.read_text(encoding="utf-8") if text is None else text
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def readme_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(README_SECTION)
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


@pytest.fixture
def localise(gateway, gateway_token, tmp_path):
    key_file = tmp_path / "api_key"
    key_file.write_text(gateway_token + "\n")

    def apply(code: str) -> str:
        code = code.replace("http://127.0.0.1:8000", gateway.url).replace("ws://127.0.0.1:8000", gateway.ws_url)
        return code.replace(".cache/gateway/api_key", str(key_file))

    return apply


def run_python_examples(examples: list[str], localise, tmp_path) -> list[str]:
    outputs = []
    for number, code in enumerate(examples):
        script = tmp_path / f"example_{number}.py"
        script.write_text(localise(code))
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert result.stdout.strip()
        outputs.append(result.stdout)
    return outputs


def run_curl(command: str, localise) -> str:
    result = subprocess.run(["bash", "-c", localise(command)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    return result.stdout


def test_python_examples_run(localise, tmp_path):
    examples = blocks("python")
    assert len(examples) == 2
    run_python_examples(examples, localise, tmp_path)


def test_curl_examples_run(localise):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (Debian package curl); the documented examples use it")
    commands = [c for block in blocks("bash") for c in re.split(r"\n\n", block.strip()) if c.startswith("curl")]
    assert len(commands) == 4
    for command in commands:
        output = run_curl(command, localise)
        if "/v1/stream" in command:
            assert output.rstrip().endswith("data: [DONE]") and "event: error" not in output, output[-2000:]
        else:
            assert isinstance(json.loads(output)["entities"], list), output[:500]


def test_readme_realtime_examples_run_and_print_output_of_the_shape_shown(localise, tmp_path):
    """README.md's WebSocket (Python) and SSE (curl -N) examples run as written, and their output has the shape of
    the README's: as many printed lines, the same chunks and chunk offsets, [DONE] last and no error event.

    Labels, entities and scores are not compared: the test gateway serves the tiny random model, and the README
    shows the demo model's answers."""
    section = readme_section()
    (python,) = blocks("python", section)
    (curl,) = blocks("bash", section)
    shown_ws, shown_sse = blocks("console", section)
    printed = run_python_examples([python], localise, tmp_path)[0]
    streamed = run_curl(curl, localise)
    assert streamed.rstrip().endswith("data: [DONE]") and "event: error" not in streamed, streamed[-2000:]
    events = [json.loads(line[len("data: ") :]) for line in streamed.splitlines() if line.startswith("data: {")]
    shown_events = [json.loads(line[len("data: ") :]) for line in shown_sse.splitlines() if line.startswith("data: {")]
    # Chunking depends on the text only, so chunk offsets must match; the entities depend on the model.
    assert len(printed.splitlines()) == len(shown_ws.strip().splitlines())
    assert [(e["chunk"], e["chunks"], e["start"], e["end"]) for e in events] == [
        (e["chunk"], e["chunks"], e["start"], e["end"]) for e in shown_events
    ]
