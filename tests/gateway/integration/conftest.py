"""Integration tier of the gateway: ``python -m gateway`` as a real process, in front of the real ``tiny_server``."""

from __future__ import annotations

import secrets

import pytest

from tests.support.live_gateway import GatewayProcess


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
