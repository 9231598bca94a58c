"""Logging: one access line per request with the caller's key id, and no secrets or user text in any log.

uvicorn's own access log is switched off (it prints query strings, where EventSource clients put ``token=`` and
``text=``); ``AccessLogMiddleware`` logs method, path without query, status, duration and key id instead.
uvicorn still logs WebSocket handshakes with their query string, and at debug level its WebSocket library logs
every handshake header (``Authorization``, the ``bearer.`` subprotocol) and every frame with its text, so
``RedactFilter`` rewrites those records: token and text values, bearer tokens, frames reduced to type and size.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KEY_ID_SCOPE = "gateway.key_id"  # set by authentication, read by the access log
SENSITIVE_QUERY = re.compile(r"(?i)\b(token|text)=[^&\s\"]*")
BEARER_TOKEN = re.compile(r"(?i)\b(bearer)([ .])[^\s,\"']+")

access_logger = logging.getLogger("gateway.access")


def redact(value: str) -> str:
    value = SENSITIVE_QUERY.sub(lambda match: f"{match.group(1)}=[redacted]", value)
    return BEARER_TOKEN.sub(lambda match: f"{match.group(1)}{match.group(2)}[redacted]", value)


def redact_argument(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    opcode, data = getattr(value, "opcode", None), getattr(value, "data", None)
    if opcode is not None and isinstance(data, (bytes, bytearray)):  # a websockets Frame: its payload is user text
        return f"{getattr(opcode, 'name', opcode)} [{len(data)} bytes]"
    return value


class RedactFilter(logging.Filter):
    """Replaces ``token=`` and ``text=`` query values and bearer tokens in a record's message and arguments, and
    WebSocket frames by their type and size."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_argument(arg) for arg in record.args)
        return True


class AccessLogMiddleware:
    """Pure ASGI (streaming responses pass through untouched): logs each HTTP request when its response ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            access_logger.info(
                "%s %s %d %.1fms key=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                scope.get(KEY_ID_SCOPE, "-"),
            )


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: one format for uvicorn's and the gateway's loggers, redaction on every handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactFilter}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "gateway": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            # One INFO line per upstream request is noise; its warnings and errors still show.
            "httpx2": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }
