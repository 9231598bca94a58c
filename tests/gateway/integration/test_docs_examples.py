"""The Python and curl examples of docs/GATEWAY.md, run as written against the real gateway.

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

from tests.integration.server import ROOT

pytestmark = pytest.mark.integration

DOC = ROOT / "docs" / "GATEWAY.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.fixture
def localise(gateway, gateway_token, tmp_path):
    key_file = tmp_path / "api_key"
    key_file.write_text(gateway_token + "\n")

    def apply(code: str) -> str:
        code = code.replace("http://127.0.0.1:8000", gateway.url).replace("ws://127.0.0.1:8000", gateway.ws_url)
        return code.replace(".cache/gateway/api_key", str(key_file))

    return apply


def test_python_examples_run(localise, tmp_path):
    examples = blocks("python")
    assert len(examples) == 2
    for number, code in enumerate(examples):
        script = tmp_path / f"example_{number}.py"
        script.write_text(localise(code))
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert result.stdout.strip()


def test_curl_examples_run(localise):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (Debian package curl); the documented examples use it")
    commands = [c for block in blocks("bash") for c in re.split(r"\n\n", block.strip()) if c.startswith("curl")]
    assert len(commands) == 4
    for command in commands:
        result = subprocess.run(["bash", "-c", localise(command)], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        output = result.stdout
        if "/v1/stream" in command:
            assert output.rstrip().endswith("data: [DONE]") and "event: error" not in output, output[-2000:]
        else:
            assert isinstance(json.loads(output)["entities"], list), output[:500]
