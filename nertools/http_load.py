"""A lean HTTP/1.1 client connection: the benchmark's REST load and the gateway's requests to TorchServe.

On a 2-core machine a client shares the cores with the server it talks to, so every core-millisecond it spends is
taken from the server: httpx cost ~1.4-1.7 core-ms per request here, more than TorchServe's frontend.
``Connection`` is one keep-alive connection that writes each request (head and body) in one write and reads the
status, the headers and the body (``Content-Length``, chunked, or to the end of the connection); no redirects,
cookies, compression or TLS: it talks to a server on loopback or inside a pod. ``gateway.transport`` pools them
for the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit


class ConnectFailed(ConnectionError):
    """The connection could not be opened (refused, unreachable, or not within the connect timeout): the request
    was never sent."""


class BadAnswer(ValueError):
    """What came back is not an HTTP/1.x answer."""


class _ClosedWhileIdle(Exception):
    """A kept-alive connection ended before any byte of the answer: the server had closed it while it was idle."""


# Answers that never have a body, whatever their headers say (RFC 9112, 6.3).
NO_BODY_STATUSES = frozenset({204, 304})


class Connection:
    """One keep-alive HTTP/1.1 connection to ``url``'s host; ``post`` sends to ``url``'s path, ``request`` anywhere."""

    def __init__(self, url: str, timeout_s: float | None = 300.0, connect_timeout_s: float | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// URL is needed, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path or "/"
        if parts.query:
            self.path += "?" + parts.query
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is open and the server has not closed it (as far as can be seen while idle)."""
        return not (self._reader is None or self._writer is None or self._writer.is_closing() or self._reader.at_eof())

    async def post(
        self, body: bytes, content_type: str = "application/json", headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``url``'s path (with ``headers`` besides its Content-Type); the response's status and
        body (see ``request``)."""
        status, _, content = await self.request("POST", self.path, body, [("Content-Type", content_type), *headers])
        return status, content

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        timeout_s: float | None | Literal["default"] = "default",
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request (``headers`` as given, plus Host and Content-Length where missing); the response's
        status, headers (names lower-cased) and body.

        Opens the connection when needed (``ConnectFailed`` if it cannot: the request was not sent). A kept-alive
        connection that ends before the first byte of the answer had been closed by the server while idle: the
        request goes once more on a fresh connection, and if that fails too the error is a plain ConnectionError
        (the request may have reached the server), never ConnectFailed. Once any byte of the answer has come, a
        failure is raised as it is (asyncio.IncompleteReadError, ConnectionError, ``BadAnswer``). TimeoutError
        after ``timeout_s`` (the connection's own by default; None: no limit) for the whole exchange. Any failure
        closes the connection, so a half-read answer is never taken for the next request's."""
        limit = self.timeout_s if timeout_s == "default" else timeout_s
        names = {name.lower() for name, _ in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {self.host}:{self.port}")
        lines += [f"{name}: {value}" for name, value in headers if name.lower() != "content-length"]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(limit):
                try:
                    return await self._exchange(message, method, reused=self.is_open)
                except _ClosedWhileIdle:
                    pass
                await self.close()
                try:
                    return await self._exchange(message, method, reused=False)
                except (OSError, asyncio.IncompleteReadError) as err:
                    raise ConnectionError(f"connection lost, and sending again failed ({type(err).__name__})") from err
        except BaseException:
            await self.close()
            raise

    async def _exchange(self, message: bytes, method: str, reused: bool) -> tuple[int, dict[str, str], bytes]:
        if not self.is_open:
            await self.close()
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as err:
                raise ConnectFailed(f"cannot connect to {self.host}:{self.port} ({type(err).__name__})") from err
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(message)
            first = await self._reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as err:
            partial = err.partial if isinstance(err, asyncio.IncompleteReadError) else b""
            if reused and not partial:
                raise _ClosedWhileIdle from err
            raise
        status, headers = await _read_head(first, self._reader)
        if method == "HEAD" or status < 200 or status in NO_BODY_STATUSES:
            content = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            content = await _read_chunked(self._reader)
        elif "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        else:  # neither: the body runs to the end of the connection (RFC 9112, 6.3)
            content = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, content

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass
        self._reader = self._writer = None


async def _read_head(status_line: bytes, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and the headers (names lower-cased) of a response whose status line has been read."""
    line = status_line.decode("latin-1").rstrip("\r\n")
    version, _, rest = line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise BadAnswer(f"not an HTTP/1.x response: {line[:80]!r}")
    headers = {}
    while (header := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, sep, value = header.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
