"""A lean HTTP/1.1 load-generator connection for the benchmark's REST rows.

On a 2-core machine the load generator shares the cores with the server it measures, so every core-millisecond it
spends is taken from the server: httpx cost ~1.4-1.7 core-ms per request here, more than TorchServe's frontend.
``Connection`` is one keep-alive connection that writes a prepared request and reads the status and the body
(``Content-Length`` or chunked); no pooling, redirects, cookies or TLS: the benchmark talks to its own server on
loopback.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection to ``url``'s host, posting to ``url``'s path."""

    def __init__(self, url: str, timeout_s: float = 300.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// URL is needed, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path or "/"
        if parts.query:
            self.path += "?" + parts.query
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """POST ``body``; the response's status and body. Reconnects when the server closed the connection (with
        ``Connection: close`` or by closing it while idle); raises TimeoutError after ``timeout_s``."""
        try:
            return await asyncio.wait_for(self._post(body, content_type), self.timeout_s)
        except BaseException:
            await self.close()  # a half-read answer must not be taken for the next request's
            raise

    async def _post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None or self._writer.is_closing() or self._reader.at_eof():
            await self.close()
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode("latin-1") + body)
        status, headers = await _read_head(self._reader)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await _read_chunked(self._reader)
        elif "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        else:  # neither: the body runs to the end of the connection (RFC 9112, 6.3)
            content = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, content

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass
        self._reader = self._writer = None


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and the headers (names lower-cased) of a response."""
    raw = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ConnectionError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(rest.split(" ", 1)[0]), headers


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
