"""In-process tier of the gateway: the real app, with a fake TorchServe behind an httpx MockTransport."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from gateway.__main__ import uvicorn_options
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.integration.server import free_port

KEY_ID = "tester"
SECRET = "s3cret-0123456789abcdef"
TOKEN = f"{KEY_ID}.{SECRET}"
# Read-only: Starlette's TestClient adds its handshake headers to a dict given to websocket_connect, which would
# leak them into every later test (a real server refuses a handshake with two Sec-WebSocket-Key headers).
AUTH = MappingProxyType({"Authorization": f"Bearer {TOKEN}"})
CAPITALISED = re.compile(r"\b[A-Z][a-z]+\b")


def fake_entities(text: str) -> list[dict[str, Any]]:
    """The fake model: every capitalised word is a PER. Context-free, so chunking cannot change its answer."""
    return [
        {"label": "PER", "text": m.group(), "start": m.start(), "end": m.end(), "score": 0.9}
        for m in CAPITALISED.finditer(text)
    ]


def fake_segments(text: str) -> list[dict[str, Any]]:
    segments, cursor = [], 0
    for entity in fake_entities(text):
        if entity["start"] > cursor:
            segments.append(
                {
                    "label": "other",
                    "text": text[cursor : entity["start"]],
                    "start": cursor,
                    "end": entity["start"],
                    "score": None,
                }
            )
        segments.append(entity)
        cursor = entity["end"]
    if cursor < len(text):
        segments.append({"label": "other", "text": text[cursor:], "start": cursor, "end": len(text), "score": None})
    return segments


class FakeTorchServe:
    """Stands in for TorchServe's inference and management APIs; counts calls and concurrency.

    ``script(text, attempt)`` may return (status, body) to answer differently, e.g. a 507 on the first attempt.
    ``delays`` maps a word to seconds: a text containing the word is answered that much later.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.cancelled = 0
        self.completed: list[str] = []  # texts answered 200, in completion order
        self.delays: dict[str, float] = {}
        self.script: Callable[[str, int], tuple[int, Any] | None] | None = None
        self.workers: list[dict[str, Any]] = [{"id": "9000", "status": "READY"}]
        self.bodies: list[tuple[bytes, str | None]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/models/ner_model":
            return httpx.Response(200, json=[{"modelName": "ner_model", "workers": self.workers}])
        if request.url.path != "/predictions/ner_model":
            return httpx.Response(
                404, json={"code": 404, "type": "ModelNotFoundException", "message": "Model not found"}
            )
        content = request.content
        self.bodies.append((content, request.headers.get("content-type")))
        payload = (
            json.loads(content)
            if request.headers.get("content-type") == "application/json"
            else {"text": content.decode()}
        )
        text = payload["text"]
        self.calls.append(payload)
        self.attempts[text] = self.attempts.get(text, 0) + 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            delay = max([seconds for word, seconds in self.delays.items() if word in text], default=0.0)
            await asyncio.sleep(delay or 0.001)
            if self.script is not None:
                scripted = self.script(text, self.attempts[text])
                if scripted is not None:
                    status, body = scripted
                    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)
            if payload.get("format") == "segments":
                answer = {"segments": fake_segments(text)}
            else:
                answer = {"entities": fake_entities(text)}
            self.completed.append(text)
            return httpx.Response(200, json=answer, headers={"X-NER-Batch-Size": "1"})
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


def make_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = dict(
        api_keys={KEY_ID: SECRET},
        retry_backoff_initial_s=0.01,
        retry_backoff_max_s=0.05,
        retry_deadline_s=2.0,
        upstream_timeout_s=5.0,
    )
    values.update(overrides)
    return GatewaySettings(_env_file=None, **values)


@pytest.fixture
def fake() -> FakeTorchServe:
    return FakeTorchServe()


@pytest.fixture
def make_client(fake):
    """make_client(**settings) -> a TestClient of the gateway app over the fake TorchServe (lifespan run)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), transport=httpx.MockTransport(fake))
        # Without keys the gateway serves HTTP only to loopback Host names (DNS rebinding); TestClient's default
        # host is "testserver".
        client = (
            TestClient(app, base_url="http://127.0.0.1:8000") if overrides.get("auth_disabled") else (TestClient(app))
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@dataclasses.dataclass(frozen=True)
class LiveGateway:
    url: str
    ws_url: str
    fake: FakeTorchServe
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 20) -> None:
        """What SIGTERM does to ``python -m gateway``: uvicorn's graceful shutdown."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), f"uvicorn did not stop in {timeout} s"


@pytest.fixture
def start_live():
    """start_live(**settings) -> the app under a real uvicorn in a thread, over its own fake TorchServe.

    For what TestClient cannot show: real disconnects (TestClient cancels the app's tasks itself when a test leaves
    its block), TCP backpressure and uvicorn's keepalive. uvicorn gets the gateway's own options
    (``uvicorn_options``), so the ping timeout and message size under test are the ones ``python -m gateway`` uses.
    """
    started: list[LiveGateway] = []

    def start(**overrides: Any) -> LiveGateway:
        fake = FakeTorchServe()
        settings = make_settings(port=free_port(), **overrides)
        app = create_app(settings, transport=httpx.MockTransport(fake))
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, **uvicorn_options(settings)))
        thread = threading.Thread(target=server.run, daemon=True)
        live = LiveGateway(f"http://127.0.0.1:{settings.port}", f"ws://127.0.0.1:{settings.port}", fake, server, thread)
        started.append(live)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start in 10 s"
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sse_events(body: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE body, comments skipped; a plain parser so tests do not trust the server's."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n", body.strip()):
        event, data = "message", []
        for line in re.split(r"\r\n|\n", block):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((event, "\n".join(data)))
    return events
