"""A deadline for a request's head: uvicorn's HTTP/1.1 protocol with a header timeout it does not have.

uvicorn 0.54 times out only an idle keep-alive connection, and only after a response (``timeout_keep_alive``):
a connection that sends its request line and headers one byte per second, or nothing at all, stays open for
ever, holding a socket and a file descriptor (a slowloris). ``HeaderTimeoutProtocol`` gives every request head
``header_timeout_s`` from the connection's start, or from the first byte of a keep-alive connection's next
request; a head still incomplete then is answered 408 and the connection closed (a connection that sent nothing
is just closed, as uvicorn's keep-alive timeout does). The body is not covered here: the routes that read one
bound it themselves (``gateway.app.read_body``, ``body_timeout_s``). A connection upgraded to a WebSocket is left
to the WebSocket's own keepalive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from nerserve.protocol import error_body

logger = logging.getLogger("gateway.slow_clients")


def timeout_response(header_timeout_s: float) -> bytes:
    """The raw 408 sent when a head is late: written past h11, which has no request to answer yet."""
    body = json.dumps(
        error_body(408, f"the request line and headers did not arrive within {header_timeout_s:g} s")
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is late; subclass with
    ``with_header_timeout`` to set ``header_timeout_s``."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Time the head while h11 waits for one (state IDLE) on this protocol; stop once it is complete."""
        waiting = (
            self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
            and self.transport.get_protocol() is self  # not after a WebSocket upgrade
        )
        if not waiting:
            self._stop_head_timer()
        elif self._head_timer is None:
            # Armed at the connection's start and by a next request's first byte: between requests uvicorn's own
            # keep-alive timer guards the wait (this method does not run then).
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if (
            self.conn.their_state is not h11.IDLE
            or self.transport.is_closing()
            or self.transport.get_protocol() is not self
        ):
            return
        if self.conn.trailing_data[0]:
            self.transport.write(timeout_response(self.header_timeout_s))
        logger.info(
            "closed a connection whose request head did not arrive within %g s (%d bytes received)",
            self.header_timeout_s,
            len(self.conn.trailing_data[0]),
        )
        self.transport.close()


def with_header_timeout(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn's ``http`` option, with this head deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})
