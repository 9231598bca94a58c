"""Integration tier of the gateway: ``python -m gateway`` as a real process, in front of the real ``tiny_server``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.integration.server import ROOT, free_port


class GatewayProcess:
    """``python -m gateway`` configured by environment variables only, as scripts/gateway.sh runs it."""

    def __init__(self, workdir: Path, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = workdir / "gateway.log"
        self.env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NER_GATEWAY_")}
        self.env.update(environment, NER_GATEWAY_PORT=str(self.port))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> GatewayProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the gateway did not answer /health in {timeout}s:\n{self.log_text()}")

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


@pytest.fixture(scope="session")
def gateway_token() -> str:
    return f"it.{secrets.token_urlsafe(24)}"


@pytest.fixture(scope="session")
def gateway(tiny_server, tiny_checkpoint, gateway_token, tmp_path_factory):
    key_id, secret = gateway_token.split(".", 1)
    process = GatewayProcess(
        tmp_path_factory.mktemp("gateway"),
        {
            "NER_GATEWAY_INFERENCE_URL": tiny_server.inference,
            "NER_GATEWAY_MANAGEMENT_URL": tiny_server.management,
            "NER_GATEWAY_API_KEYS": f"{key_id}:{secret}",
            "NER_GATEWAY_MODEL_DIR": str(tiny_checkpoint),
            "NER_GATEWAY_STREAM_CHUNK_CHARS": "120",
        },
    ).start()
    yield process
    process.stop()
