"""Integration tier of the gateway: ``python -m gateway`` as a real process, in front of the real ``tiny_server``."""

from __future__ import annotations

import secrets

import pytest

from tests.support.live_gateway import GatewayProcess, gateway_environment


@pytest.fixture(scope="session")
def gateway_token() -> str:
    return f"it.{secrets.token_urlsafe(24)}"


@pytest.fixture(scope="session")
def gateway(tiny_server, tiny_checkpoint, gateway_token, tmp_path_factory):
    process = GatewayProcess(
        tmp_path_factory.mktemp("gateway"),
        gateway_environment(
            tiny_server,
            gateway_token,
            model_dir=str(tiny_checkpoint),
            stream_chunk_chars="120",
        ),
    ).start()
    yield process
    process.stop()
