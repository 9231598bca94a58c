"""nertools.http_load: the benchmark's lean HTTP/1.1 connection against a real socket server on a free port."""

from __future__ import annotations

import asyncio

import pytest

from nertools.http_load import Connection

pytestmark = pytest.mark.anyio


async def serve(answers: list[bytes]) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A server that reads each request (head and Content-Length body) and writes the next raw answer; it records
    the requests and how many connections were opened."""
    requests: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                requests.append(head + await reader.readexactly(length))
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, requests, connections


async def test_posts_read_content_length_and_chunked_bodies_on_one_kept_alive_connection():
    answers = [
        b'HTTP/1.1 200 OK\r\ncontent-length: 14\r\ncontent-type: application/json\r\n\r\n{"entities":1}',
        b"HTTP/1.1 413 Request Entity Too Large\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n3\r\n:2}\r\n0\r\n\r\n',
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ]
    server, requests, connections = await serve(answers)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(f"http://127.0.0.1:{port}/predictions/ner_model")
    try:
        assert await connection.post(b'{"text": "Hi Rome"}') == (200, b'{"entities":1}')
        assert await connection.post(b"Oslo", "text/plain") == (413, b'{"a":2}')
        assert await connection.post(b"{}") == (200, b"{}")
    finally:
        await connection.close()
        server.close()
    assert len(connections) == 1
    assert requests[0].startswith(b"POST /predictions/ner_model HTTP/1.1\r\n")
    assert requests[0].endswith(b'Content-Length: 19\r\n\r\n{"text": "Hi Rome"}')
    assert b"Content-Type: text/plain\r\n" in requests[1] and requests[1].endswith(b"\r\n\r\nOslo")


async def test_a_connection_the_server_closes_is_opened_again():
    answers = [b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"]
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    server, _, connections = await serve(answers)
    connection = Connection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
    try:
        assert await connection.post(b"a") == (503, b"")
        assert await connection.post(b"b") == (200, b"ok")
    finally:
        await connection.close()
        server.close()
    assert len(connections) == 2


async def test_a_body_without_length_runs_to_the_end_of_the_connection_and_a_silently_closed_one_is_reopened():
    answers = [b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"whole": true}']
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(1)
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()  # no Connection: close header: the client sees the end of the stream

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    connection = Connection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
    try:
        assert await connection.post(b"a") == (200, b'{"whole": true}')
        assert await connection.post(b"b") == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed this one while it was idle
        assert await connection.post(b"c") == (200, b"yes")
    finally:
        await connection.close()
        server.close()


async def test_a_request_that_gets_no_answer_times_out():
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # never answers

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    connection = Connection(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x", timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError):
            await connection.post(b"a")
    finally:
        await connection.close()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def test_only_plain_http_urls():
    with pytest.raises(ValueError, match="an http:// URL is needed"):
        Connection("https://example.org/predictions/ner_model")
