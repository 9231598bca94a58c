"""A deadline for a request's head: uvicorn's HTTP/1.1 protocol with a header timeout it does not have.

uvicorn 0.54 times out only an idle keep-alive connection, and only after a response (``timeout_keep_alive``):
a connection that sends its request line and headers one byte per second, or nothing at all, stays open for
ever, holding a socket and a file descriptor (a slowloris). ``HeaderTimeoutProtocol`` gives every request head
``header_timeout_s`` from the connection's start, or from the first byte of a keep-alive connection's next
request; a head still incomplete then is answered 408 and the connection closed (a connection that sent nothing
is just closed, as uvicorn's keep-alive timeout does). The body is not covered here: the routes that read one
bound it themselves (``gateway.app.read_body``, ``body_timeout_s``). A connection upgraded to a WebSocket is left
to the WebSocket's own keepalive.

Every close of an HTTP connection the server decides on (a late head, a late body answered 408 with ``Connection:
close``, any other ``Connection: close`` response) is a lingering close, as Apache and nginx do: the write side is
shut (FIN after the response), what the client still sends is read and dropped until it closes or
``LINGER_S`` passes, then the socket is closed. Closing at once while a client is still sending makes the kernel
answer its next bytes with a reset, and a reset can reach the client before it has read the 408 it was sent.
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

# How long a closing connection keeps reading (and dropping) what its client still sends, at most.
LINGER_S = 2.0


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
        self._lingering: _LingeringTransport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = _LingeringTransport(transport, self)
        super().connection_made(self._lingering)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None and self._lingering.lingering:
            return  # the response is sent and the write side shut: what still arrives is dropped
        super().data_received(data)
        self._watch_head()

    def eof_received(self) -> None:
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.finish_close()  # the client read its response and closed
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._lingering is not None:
            self._lingering.finish_close()
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


class _LingeringTransport(asyncio.Transport):
    """The connection's transport as uvicorn sees it, ``close()`` made a lingering close while the connection still
    speaks HTTP to ``protocol`` (after a WebSocket upgrade it closes at once). Everything else is passed through."""

    def __init__(self, transport: asyncio.Transport, protocol: HeaderTimeoutProtocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol
        self._closing = False
        self._linger_timer: asyncio.TimerHandle | None = None

    @property
    def lingering(self) -> bool:
        return self._linger_timer is not None

    def close(self) -> None:
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        if self._transport.get_protocol() is not self._protocol or not self._transport.can_write_eof():
            self._transport.close()
            return
        self._transport.write_eof()  # after the buffered response: the client reads it, then the end of the stream
        if not self._transport.is_reading():
            self._transport.resume_reading()  # uvicorn pauses reading while a body it buffered is not consumed
        self._linger_timer = self._protocol.loop.call_later(LINGER_S, self.finish_close)

    def finish_close(self) -> None:
        """End a linger: the client closed, the connection was lost, or ``LINGER_S`` passed."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
            self._transport.close()

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def abort(self) -> None:
        self._closing = True
        self._transport.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._transport.write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


def with_header_timeout(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn's ``http`` option, with this head deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})
