"""API keys: a key id and a secret, presented by clients as one token ``<id>.<secret>``.

Where the token goes (the first one present is the one checked):

* ``Authorization: Bearer <id>.<secret>`` — any HTTP or WebSocket client that can set headers;
* WebSocket subprotocol ``bearer.<id>.<secret>``, offered together with ``ner.v1`` — browsers cannot set headers
  on a WebSocket; the gateway answers with ``ner.v1`` and never echoes the token;
* query parameter ``?token=<id>.<secret>`` — for ``EventSource``, which cannot set headers either. URLs end up in
  browser history and proxy logs, so prefer the other two; the gateway's own logs redact it.

Secrets are compared in constant time: ``hmac.compare_digest`` over SHA-256 digests, so neither a secret's content
nor its length shows in the timing, and an unknown key id costs the same work as a known one. Only key ids are
ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import unauthorized
from gateway.net import loopback_host
from nerserve.protocol import error_body

APP_SUBPROTOCOL = "ner.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
TOKEN_QUERY_PARAMETER = "token"
ANONYMOUS = "-"  # the key id logged when authentication is disabled
# What a client without a key is told, per channel: a browser cannot set headers on a WebSocket or an EventSource,
# so it is pointed at what it can send. A WebSocket close reason holds at most 123 bytes.
MISSING_KEY_HTTP = (
    "missing API key: send 'Authorization: Bearer <id>.<secret>' (an EventSource, which cannot set headers, "
    "adds ?token=<id>.<secret>)"
)
MISSING_KEY_WEBSOCKET = (
    "missing API key: offer the subprotocol bearer.<id>.<secret> (browsers) or send Authorization: Bearer <id>.<secret>"
)


class ApiKeys:
    """Verifies ``<id>.<secret>`` tokens against configured keys; holds only digests of the secrets."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._digests = {key_id: _digest(secret) for key_id, secret in keys.items()}
        # Compared against when the key id is unknown, so that case does the same work as a wrong secret.
        self._decoy = _digest(secrets.token_urlsafe(32))

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._digests)

    def verify(self, token: str | None) -> str | None:
        """The key id when ``token`` is valid, else None."""
        if not token:
            return None
        key_id, separator, secret = token.partition(".")
        expected = self._digests.get(key_id, self._decoy)
        matches = hmac.compare_digest(_digest(secret), expected)
        if matches and separator and key_id in self._digests:
            return key_id
        return None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    """Finds the token in a request and checks it; with authentication disabled everyone is ANONYMOUS."""

    def __init__(self, keys: ApiKeys | None) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def authenticate(
        self,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        subprotocols: Sequence[str] = (),
        missing: str = MISSING_KEY_HTTP,
    ) -> str:
        """The caller's key id; raises a 401 GatewayError when the token is missing (``missing`` says how to send
        one on this channel) or wrong."""
        if self.keys is None:
            return ANONYMOUS
        token = find_token(headers, query, subprotocols)
        if token is None:
            raise unauthorized(missing)
        key_id = self.keys.verify(token)
        if key_id is None:
            raise unauthorized("invalid API key")
        return key_id


def find_token(headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Sequence[str] = ()) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        # A header with another scheme is a wrong credential, not an absent one.
        return token.strip() if scheme.lower() == "bearer" else ""
    for protocol in subprotocols:
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    return query.get(TOKEN_QUERY_PARAMETER)


class LoopbackHostOnly:
    """Pure ASGI: with authentication off, HTTP requests must name a loopback host.

    A web page of any site can make a browser send requests to 127.0.0.1 under the site's own name (DNS
    rebinding), and such requests carry that name as Host. Refusing non-loopback Host headers keeps a gateway
    without keys to programs on this machine. WebSockets are guarded by their Origin check instead.
    """

    REFUSAL = json.dumps(
        error_body(403, "authentication is off, so only 127.0.0.1, localhost and [::1] are served")
    ).encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not loopback_host(host):
                body = self.REFUSAL
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
