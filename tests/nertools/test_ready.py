"""scripts/ready.py's process check: serve.sh stops waiting for READY as soon as TorchServe has exited."""

import os
import subprocess
import sys

from scripts.ready import main, pid_alive


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


def test_waiting_ends_at_once_when_the_server_has_exited(tmp_path, capsys):
    """Nothing listens on port 9 and the pid file names no process: exit 1 long before the 60 s timeout."""
    import time

    started = time.monotonic()
    code = main(["--management", "http://127.0.0.1:9", "--timeout", "60", "--pid-file", str(tmp_path / "none")])
    assert code == 1 and time.monotonic() - started < 10
    assert "the server process has exited" in capsys.readouterr().err
