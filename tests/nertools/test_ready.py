"""nertools/ready.py: serve.sh stops waiting for READY as soon as TorchServe has exited; the config it reads."""

import os
import subprocess
import sys

import nertools.ready
from nertools.ready import main, management_from_config, pid_alive, ready_workers
from nertools.torchserve import loaded_models
from tests.support.json_server import json_server


def test_pid_alive_follows_the_process(tmp_path):
    pid_file = tmp_path / "server.pid"
    assert not pid_alive(str(pid_file))  # no file yet
    pid_file.write_text(f"{os.getpid()}\n")
    assert pid_alive(str(pid_file))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pid_file.write_text(str(child.pid))
    assert not pid_alive(str(pid_file))
    pid_file.write_text("not a pid")
    assert not pid_alive(str(pid_file))


def test_waiting_ends_at_once_when_the_server_has_exited(tmp_path, capsys, monkeypatch):
    """Nothing listens on port 9 and the pid file names no process: one look, then exit 1 (not the 60 s timeout)."""
    looks = []

    def counted(*args, **kwargs):
        looks.append(args)
        return ready_workers(*args, **kwargs)

    monkeypatch.setattr(nertools.ready, "ready_workers", counted)
    code = main(["--management", "http://127.0.0.1:9", "--timeout", "60", "--pid-file", str(tmp_path / "none")])
    assert code == 1 and len(looks) == 1
    assert "the server process has exited" in capsys.readouterr().err


def test_nothing_listening_is_zero_ready_workers():
    assert ready_workers("http://127.0.0.1:9", "ner_model", timeout=2) == 0


def test_the_management_address_comes_from_the_config(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text(
        "management_address=http://127.0.0.1:1\n# management_address=http://127.0.0.1:2\nmanagement_address = http://127.0.0.1:3\n"
    )
    assert management_from_config(config) == "http://127.0.0.1:3"  # the last one wins, spaces allowed
    config.write_text("inference_address=http://127.0.0.1:1\n")
    assert management_from_config(config) == "http://127.0.0.1:8081"  # TorchServe's default


def test_an_unreadable_config_is_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "absent.properties")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_loaded_models_are_the_names_load_models_starts_with():
    assert loaded_models({"load_models": "ner_model=a.mar, ner_model_documents=a.mar"}) == [
        "ner_model",
        "ner_model_documents",
    ]
    assert loaded_models({"load_models": "all"}) == [] and loaded_models({}) == []


def test_waiting_for_the_loaded_models_waits_for_each_of_them(tmp_path, capsys):
    config = tmp_path / "config.properties"
    described = {"/models/ner_model": (200, [{"workers": [{"status": "READY"}]}])}

    def route(path: str):
        return described.get(path, (404, {"code": 404, "message": "Model not found"}))

    with json_server(route) as url:
        config.write_text(f"management_address={url}\nload_models=ner_model=a.mar,ner_model_documents=a.mar\n")
        assert main(["--config", str(config), "--model", "ner_model"]) == 0
        assert main(["--config", str(config), "--loaded-models"]) == 1
    assert "ner_model_documents: no READY worker" in capsys.readouterr().err
