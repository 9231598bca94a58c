"""Typed gateway errors and their HTTP status codes, in one place, and the wording of validation problems.

Every error a client sees has TorchServe's error shape ``{"code": 400, "type": "BadRequest", "message": "..."}``
(``nerserve.protocol.error_body``): as an HTTP body on REST, inside ``{"id": ..., "error": {...}}`` on the
WebSocket, and as the data of an ``event: error`` on Server-Sent Events. Upstream 4xx keep TorchServe's status,
type and message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from nerserve.protocol import error_body, error_type

# WebSocket close codes (RFC 6455 section 7.4.1)
CLOSE_POLICY_VIOLATION = 1008  # failed authentication, or an Origin that is not allowed
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class GatewayError(Exception):
    """A failure with the HTTP status a client gets for it; ``type_name`` is the body's ``"type"``.

    ``retryable``: the request may succeed if sent again later (TorchServe restarting, overloaded, unreachable).
    """

    def __init__(self, status: int, message: str, type_name: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type_name = type_name or error_type(status)
        self.retryable = retryable

    def to_body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.type_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


class Unavailable(GatewayError):
    """TorchServe cannot serve the request now (a 503 with Retry-After); another attempt later may succeed."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, retryable=True)


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message)


def too_large(message: str) -> GatewayError:
    return GatewayError(413, message)


def internal_error(error: BaseException) -> GatewayError:
    """A bug of the gateway, as the client sees it: the exception's class only (its text may hold user data)."""
    return GatewayError(500, f"internal error of the gateway ({error.__class__.__name__})")


def upstream_refusal(status: int, message: str, type_name: str | None = None) -> GatewayError:
    """An error TorchServe answered that is not sent again, as the client gets it: a 4xx is the request's fault and
    keeps TorchServe's status, type and message; anything else is TorchServe's failure, a 502 naming its status."""
    if 400 <= status < 500:
        return GatewayError(status, message, type_name)
    return GatewayError(502, f"TorchServe answered {status}: {message}")


def unauthorized(message: str = "missing or invalid API key") -> GatewayError:
    return GatewayError(401, message)


def format_validation_errors(error: ValidationError, name: Callable[[str], str]) -> list[str]:
    """One line per problem of a pydantic ``ValidationError``; ``name(location)`` names the field at fault
    (``location`` is the dotted path, "" for the whole object). Input values are never quoted: they may be secrets."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        field = name(".".join(str(part) for part in problem["loc"]))
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown {field}")
        elif problem["type"] == "missing":
            lines.append(f"{field} is required")
        else:
            lines.append(f"{field}: {problem['msg'].removeprefix('Value error, ')}")
    return lines
