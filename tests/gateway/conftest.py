"""In-process tier of the gateway: the real app, with a fake TorchServe behind an httpx2 MockTransport.

Helpers live in tests/support/ (fake_torchserve, gateway_harness, live_gateway); this file only holds fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from tests.support.fake_torchserve import FakeTorchServe
from tests.support.gateway_harness import make_settings
from tests.support.live_gateway import LiveGateway


@pytest.fixture
def fake() -> FakeTorchServe:
    return FakeTorchServe()


@pytest.fixture
def make_client(fake: FakeTorchServe) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a TestClient of the gateway app over the fake TorchServe (lifespan run)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), transport=fake.transport())
        # Without keys the gateway serves HTTP only to loopback Host names (DNS rebinding); TestClient's default
        # host is "testserver".
        client = (
            TestClient(app, base_url="http://127.0.0.1:8000") if overrides.get("auth_disabled") else TestClient(app)
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def start_live() -> Iterator[Callable[..., LiveGateway]]:
    """start_live(**settings) -> the app under a real uvicorn in a thread, over its own fake TorchServe.

    For what TestClient cannot show: real disconnects (TestClient cancels the app's tasks itself when a test leaves
    its block), TCP backpressure and uvicorn's keepalive.
    """
    started: list[LiveGateway] = []

    def start(**overrides: Any) -> LiveGateway:
        live = LiveGateway(**overrides)
        started.append(live)
        return live.start()

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
