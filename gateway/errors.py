"""Typed gateway errors and their HTTP status codes, in one place.

Every error a client sees has TorchServe's error shape ``{"code": 400, "type": "BadRequest", "message": "..."}``:
as an HTTP body on REST, inside ``{"id": ..., "error": {...}}`` on the WebSocket, and as the data of an
``event: error`` on Server-Sent Events. Upstream 4xx keep TorchServe's status, type and message.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

# WebSocket close codes (RFC 6455 section 7.4.1)
CLOSE_POLICY_VIOLATION = 1008  # failed authentication, or an Origin that is not allowed
CLOSE_MESSAGE_TOO_BIG = 1009


class GatewayError(Exception):
    """A failure with the HTTP status a client gets for it.

    ``retryable``: the request may succeed if sent again later (TorchServe restarting, overloaded, unreachable).
    """

    def __init__(self, status: int, message: str, kind: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or error_type(status)
        self.retryable = retryable

    def to_body(self) -> dict[str, Any]:
        return {"code": self.status, "type": self.kind, "message": self.message}

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.message!r})"


# The handler's own names (handler/nerserve/requests.py), where Python's reason phrase differs by version.
TYPE_NAMES = {413: "PayloadTooLarge"}


def error_type(status: int) -> str:
    """``400`` -> ``"BadRequest"``: the HTTP reason phrase without spaces, as TorchServe names its error types."""
    if status in TYPE_NAMES:
        return TYPE_NAMES[status]
    try:
        return "".join(word.capitalize() if word.islower() else word for word in HTTPStatus(status).phrase.split())
    except ValueError:
        return "Error"


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message)


def too_large(message: str) -> GatewayError:
    return GatewayError(413, message)


def unauthorized(message: str = "missing or invalid API key") -> GatewayError:
    return GatewayError(401, message)
