"""The user's commands themselves: serve.sh --model DIR, ready.py, stop.sh — on free ports, own state dirs."""

from __future__ import annotations

import socket
import subprocess

import requests

from nertools.ready import management_from_config
from tests.support.instances import instance_env
from tests.support.paths import ROOT


def test_serve_a_users_checkpoint_then_stop(tmp_path, classic_checkpoint, java_available):
    env, ports, config_path = instance_env(tmp_path)
    assert management_from_config(str(config_path)) == f"http://127.0.0.1:{ports['management']}"
    served = subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), "--model", str(classic_checkpoint)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
        assert "ner_model is READY" in served.stdout
        assert f"http://127.0.0.1:{ports['inference']}/predictions/ner_model" in served.stdout
        ready = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "ready.py"), "--config", str(config_path)],
            capture_output=True,
            timeout=60,
        )
        assert ready.returncode == 0
        response = requests.post(
            f"http://127.0.0.1:{ports['inference']}/predictions/ner_model",
            json={"text": "Angela Merkel met Tim Cook in Berlin."},
            timeout=60,
        )
        assert response.status_code == 200
        labels = {e["label"] for e in response.json()["entities"]}
        assert labels and labels <= {"DRUG", "PER", "CITY"}  # the checkpoint's own labels, not CoNLL's
        gateway = f"http://127.0.0.1:{env['NER_GATEWAY_PORT']}"
        assert requests.get(f"{gateway}/health", timeout=10).json() == {"status": "ok"}
        assert requests.get(f"{gateway}/ready", timeout=10).status_code == 200
        # Predictions through the gateway's own transport to TorchServe (gateway.transport), kept alive across calls.
        key = (tmp_path / "gateway" / "api_key").read_text().strip()
        for _ in range(3):
            through = requests.post(
                f"{gateway}/v1/entities",
                json={"text": "Angela Merkel met Tim Cook in Berlin."},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert through.status_code == 200, through.text
            assert through.json()["entities"] == response.json()["entities"]
    finally:
        stopped = subprocess.run(
            [str(ROOT / "scripts" / "stop.sh")], env=env, capture_output=True, text=True, timeout=120
        )
    assert "TorchServe stopped" in stopped.stdout and "gateway stopped" in stopped.stdout
    for port in (int(env["NER_GATEWAY_PORT"]), ports["inference"], ports["management"]):
        with socket.socket() as probe:  # stop.sh waits: nothing listens any more when it returns
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port
    not_ready = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "ready.py"), "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not_ready.returncode == 1 and "no READY worker" in not_ready.stderr


def test_serve_refuses_a_directory_that_is_no_checkpoint(tmp_path):
    env, _, _ = instance_env(tmp_path)
    (tmp_path / "empty").mkdir()
    served = subprocess.run(
        [str(ROOT / "scripts" / "serve.sh"), "--model", str(tmp_path / "empty")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode != 0
    assert "cannot archive" in served.stderr and "no config.json (Hugging Face layout)" in served.stderr


def test_serve_refuses_a_port_already_in_use(tmp_path, classic_checkpoint, java_available):
    """Another server on the management port would answer the readiness check in this one's place."""
    env, ports, _ = instance_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["management"]))
        squatter.listen()
        served = subprocess.run(
            [str(ROOT / "scripts" / "serve.sh"), "--model", str(classic_checkpoint)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert served.returncode != 0
    assert f"127.0.0.1:{ports['management']} (management_address" in served.stderr
    assert "already in use" in served.stderr and "starting TorchServe" not in served.stdout
