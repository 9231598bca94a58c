"""nertools/gatewayctl.py, the Python steps of scripts/gateway.sh: health, the /ready line, the local API key."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator

import pytest

from nertools.gatewayctl import KEY_PREFIX, create_key, has_checkpoint, healthy, main, ready_line
from nertools.ports import free_port
from tests.support.json_server import json_server


class FakeGateway:
    """/health 200; /ready as ``ready`` says (a 503 carries the reason, as the gateway's does)."""

    def __init__(self) -> None:
        self.ready: tuple[int, bytes] = (200, b'{"status": "ready"}')

    def __call__(self, path: str) -> tuple[int, bytes]:
        return (200, b'{"status": "ok"}') if path == "/health" else self.ready


@pytest.fixture
def gateway() -> Iterator[tuple[str, FakeGateway]]:
    fake = FakeGateway()
    with json_server(fake) as url:
        yield url, fake


def test_health_answers_and_nothing_listening_is_unhealthy(gateway):
    url, _ = gateway
    assert healthy(url) and main(["health", url]) == 0
    assert not healthy(f"http://127.0.0.1:{free_port()}")
    assert main(["health", f"http://127.0.0.1:{free_port()}"]) == 1
    assert not healthy("")


def test_ready_line_shows_the_status_and_the_reason(gateway, capsys):
    url, handler = gateway
    assert ready_line(url) == "/ready: ready"
    handler.ready = (503, json.dumps({"status": "not ready", "reason": "no READY worker"}).encode())
    assert ready_line(url) == "/ready: not ready (no READY worker)"
    handler.ready = (503, b"<html>")
    assert ready_line(url) == "/ready: HTTP 503"
    assert main(["ready", url]) == 0 and capsys.readouterr().out == "/ready: HTTP 503\n"
    assert ready_line(f"http://127.0.0.1:{free_port()}").startswith("/ready: no answer (")


def test_a_key_is_created_once_and_only_its_owner_reads_it(tmp_path, capsys):
    key_file = tmp_path / "api_key"
    assert main(["create-key", str(key_file)]) == 0
    assert capsys.readouterr().out == f"created a local API key in {key_file}\n"
    key = key_file.read_text()
    assert key.startswith(KEY_PREFIX) and len(key.strip()) > 40 and key.endswith("\n")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert main(["create-key", str(key_file)]) == 0
    assert capsys.readouterr().out == "" and key_file.read_text() == key


def test_an_empty_key_file_is_filled_and_made_private(tmp_path):
    key_file = tmp_path / "api_key"
    key_file.touch(mode=0o644)
    key_file.chmod(0o644)
    assert create_key(key_file)
    assert key_file.read_text().startswith(KEY_PREFIX) and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_an_unwritable_key_file_is_an_error(tmp_path, capsys):
    assert main(["create-key", str(tmp_path / "no_such_dir" / "api_key")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_runs_as_a_module_from_the_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nertools.gatewayctl", "create-key", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and (tmp_path / "k").read_text().startswith(KEY_PREFIX)


def test_checkpoint_says_whether_a_directory_holds_a_served_layout(tmp_path):
    assert not has_checkpoint(tmp_path / "absent") and main(["checkpoint", str(tmp_path / "absent")]) == 1
    assert not has_checkpoint(tmp_path)  # empty
    (tmp_path / "labels_file.txt").write_text("O\nB-PER\n")
    assert not has_checkpoint(tmp_path)  # a labels file alone is no layout nerserve.checkpoint serves
    (tmp_path / "bert_for_token_classification_config.json").write_text("{}")
    assert has_checkpoint(tmp_path) and main(["checkpoint", str(tmp_path)]) == 0
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"id2label": {"0": "O"}}')
    assert has_checkpoint(hf)
