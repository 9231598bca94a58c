"""The gateway under a real server: uvicorn in a thread over a fake TorchServe, or ``python -m gateway``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from gateway.__main__ import uvicorn_options
from gateway.app import create_app
from nertools.ports import free_port
from tests.support.fake_torchserve import FakeTorchServe
from tests.support.gateway_harness import make_settings
from tests.support.paths import ROOT
from tests.support.polling import wait_until


class LiveGateway:
    """The app under a real uvicorn in a thread, over its own fake TorchServe.

    uvicorn gets the gateway's own options (``uvicorn_options``), so the ping timeout and message size under test
    are the ones ``python -m gateway`` uses.
    """

    def __init__(self, **overrides: Any) -> None:
        self.fake = FakeTorchServe()
        settings = make_settings(port=free_port(), **overrides)
        app = create_app(settings, transport=self.fake.transport())
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, **uvicorn_options(settings)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.ws_url = f"ws://127.0.0.1:{settings.port}"

    def start(self, timeout: float = 10) -> LiveGateway:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout, "uvicorn to start")
        return self

    def stop(self, timeout: float = 20) -> None:
        """What SIGTERM does to ``python -m gateway``: uvicorn's graceful shutdown."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), f"uvicorn did not stop in {timeout} s"


def gateway_environment(server: Any, token: str, **settings: str) -> dict[str, str]:
    """The environment of a ``python -m gateway`` in front of a test TorchServe (``server``), accepting the API key
    ``token`` ("id.secret"); ``settings`` add ``NER_GATEWAY_<NAME>`` variables (``stream_chunk_chars="120"``)."""
    key_id, secret = token.split(".", 1)
    environment = {
        "NER_GATEWAY_INFERENCE_URL": server.inference,
        "NER_GATEWAY_MANAGEMENT_URL": server.management,
        "NER_GATEWAY_API_KEYS": f"{key_id}:{secret}",
    }
    environment.update({f"NER_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    return environment


class GatewayProcess:
    """``python -m gateway`` configured by environment variables only, as scripts/gateway.sh runs it."""

    def __init__(self, workdir: Path, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = workdir / "gateway.log"
        self.env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NER_GATEWAY_")}
        self.env.update(environment, NER_GATEWAY_PORT=str(self.port))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> GatewayProcess:
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.process = process

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {process.returncode}:\n{self.log_text()}")
            try:
                return httpx2.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx2.HTTPError:
                return False

        try:
            wait_until(healthy, timeout, "the gateway to answer /health", interval=0.1)
        except AssertionError:
            self.stop()
            raise RuntimeError(f"the gateway did not answer /health in {timeout}s:\n{self.log_text()}") from None
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
