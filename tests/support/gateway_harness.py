"""The gateway in-process for tests: a test API key, settings with quick retries, an SSE parser."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from gateway.settings import GatewaySettings

KEY_ID = "tester"
SECRET = "s3cret-0123456789abcdef"
TOKEN = f"{KEY_ID}.{SECRET}"
# Read-only: Starlette's TestClient adds its handshake headers to a dict given to websocket_connect, which would
# leak them into every later test (a real server refuses a handshake with two Sec-WebSocket-Key headers).
AUTH = MappingProxyType({"Authorization": f"Bearer {TOKEN}"})


def make_settings(**overrides: Any) -> GatewaySettings:
    """Settings with the test key and retries short enough for tests; no environment file is read. Every text is
    its own upstream request (coalesce_max_texts 1), as the tests of one text's path expect; the coalescing tests
    turn it on."""
    values: dict[str, Any] = dict(
        api_keys={KEY_ID: SECRET},
        coalesce_max_texts=1,
        retry_backoff_initial_s=0.01,
        retry_backoff_max_s=0.05,
        retry_deadline_s=2.0,
        upstream_timeout_s=5.0,
    )
    values.update(overrides)
    return GatewaySettings(_env_file=None, **values)


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
