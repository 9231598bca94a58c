"""The gateway's HTTP transport to TorchServe: pooled keep-alive ``nertools.http_load`` connections under httpx2.

``TorchServeClient`` keeps its httpx2 client (timeouts, the error types its retry policy reads, the transports tests
inject) but, unless a test gives another, sends through this transport instead of httpx2's own connection pool.
A profile of the gateway with one WebSocket client (docs/PERFORMANCE.md, "Short texts") put 44% of its time per
message in httpx2's request path and most of the rest in socket writes, httpx2 writing a request's head and body
separately; here each request is one write and the answer is parsed by a few lines of code.

Errors come back as the httpx2 exceptions the client's retry policy reads: a connection that cannot be opened is
``ConnectError`` / ``ConnectTimeout`` (never sent: retried until the deadline); a connection that ends before the
answer is complete is ``RemoteProtocolError``, one reset ``ReadError``, a reply that is not HTTP
``RemoteProtocolError`` (each "may have reached a worker": retried at most ``retry_worker_lost_max`` times); no answer
within the read timeout is ``ReadTimeout``. A kept-alive connection that TorchServe closed while it was idle is
reopened and the request sent once more (``Connection.request``); if that fails as well, the request may have
reached TorchServe and the error is ``ReadError``. httpx2's ``Limits`` do not apply here: the client's slots bound the
predictions in flight, and at most ``max_idle`` idle connections are kept per host.
"""

from __future__ import annotations

import asyncio
import collections

import httpx2

from nertools.http_load import ConnectFailed, Connection

# Not forwarded: the body is always sent whole with its Content-Length, each connection is kept alive by this
# transport, and answers are not asked to be compressed.
DROPPED_REQUEST_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}
)
# Not handed on: they describe the answer on the wire, which this transport has already read whole.
DROPPED_ANSWER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class PooledTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 to plain-http hosts; at most ``max_idle`` idle connections kept per host."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], collections.deque[Connection]] = collections.defaultdict(collections.deque)
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx2.UnsupportedProtocol(f"only http:// is served by this transport, not {url.scheme}://")
        host, port = url.host, url.port or 80
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        idle = self._idle[(host, port)]
        connection = idle.pop() if idle else Connection(f"http://{host}:{port}/", None, timeouts.get("connect"))
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in DROPPED_REQUEST_HEADERS
        ]
        try:
            status, answer_headers, content = await connection.request(
                request.method, url.raw_path.decode("ascii"), body, headers, timeouts.get("read")
            )
        except ConnectFailed as err:
            timed_out = isinstance(err.__cause__, TimeoutError)
            raise (httpx2.ConnectTimeout if timed_out else httpx2.ConnectError)(str(err), request=request) from None
        except TimeoutError:
            raise httpx2.ReadTimeout("TorchServe sent no answer within the read timeout", request=request) from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:  # ValueError: BadAnswer too
            message = f"TorchServe's answer ended early or is not HTTP ({type(err).__name__})"
            raise httpx2.RemoteProtocolError(message, request=request) from None
        except OSError as err:
            raise httpx2.ReadError(f"connection to TorchServe lost ({type(err).__name__})", request=request) from None
        if connection.is_open and len(idle) < self.max_idle and not self._closed:
            idle.append(connection)
        else:
            await connection.close()
        kept = [(name, value) for name, value in answer_headers.items() if name not in DROPPED_ANSWER_HEADERS]
        return httpx2.Response(status, headers=kept, content=content, request=request)

    async def aclose(self) -> None:
        self._closed = True  # a request still under way closes its connection instead of pooling it
        for idle in self._idle.values():
            while idle:
                await idle.pop().close()
