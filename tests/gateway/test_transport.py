"""gateway.transport.PooledTransport, the gateway's default way to TorchServe, against real socket servers on free
ports: kept-alive connections, headers both ways, and each failure as the httpx2 error the retry policy reads."""

from __future__ import annotations

import asyncio
import itertools
import socket

import httpx2
import pytest

from gateway.transport import PooledTransport
from gateway.upstream import TorchServeClient
from tests.support.gateway_harness import make_settings

pytestmark = pytest.mark.anyio

PREDICTION = b'{"entities": [{"label": "LOC", "text": "Rome", "start": 3, "end": 7, "score": 0.9}]}'


async def answering(answers: dict[bytes, bytes], requests: list[bytes], connections: list[int]) -> asyncio.Server:
    """A server answering each request (head and Content-Length body) with ``answers`` keyed by request line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lengths = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                requests.append(head + await reader.readexactly(lengths[0] if lengths else 0))
                writer.write(answers[head.split(b"\r\n")[0]])
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def port_of(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


async def test_requests_share_one_kept_alive_connection_with_headers_both_ways():
    requests: list[bytes] = []
    connections: list[int] = []
    answers = {
        b"POST /predictions/ner_model HTTP/1.1": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"X-NER-Model-Version: 2.0\r\ncontent-length: %d\r\n\r\n%s" % (len(PREDICTION), PREDICTION),
        b"GET /models/ner_model?customized=false HTTP/1.1": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]",
    }
    server = await answering(answers, requests, connections)
    base = f"http://127.0.0.1:{port_of(server)}"
    transport = PooledTransport(max_idle=4)
    async with httpx2.AsyncClient(transport=transport) as client:
        for _ in range(3):
            response = await client.post(
                f"{base}/predictions/ner_model",
                content=b'{"text": "In Rome"}',
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 200 and response.content == PREDICTION
            assert response.headers["x-ner-model-version"] == "2.0"
            assert response.json()["entities"][0]["text"] == "Rome"
        described = await client.get(f"{base}/models/ner_model?customized=false")
        assert described.status_code == 200 and described.json() == []
    server.close()
    assert len(connections) == 1  # all four on one connection
    assert requests[0].startswith(b"POST /predictions/ner_model HTTP/1.1\r\n")
    assert b"\r\ncontent-type: application/json\r\n" in requests[0].lower()
    assert requests[0].endswith(b'\r\n\r\n{"text": "In Rome"}')
    assert requests[3].startswith(b"GET /models/ner_model?customized=false HTTP/1.1\r\n")


async def test_torchserve_client_predicts_through_it_by_default():
    """TorchServeClient without a transport uses PooledTransport; the model-version header reaches the caller."""
    requests: list[bytes] = []
    answer = b"HTTP/1.1 200 OK\r\nX-NER-Model-Version: 1.0\r\nContent-Length: %d\r\n\r\n%s" % (
        len(PREDICTION),
        PREDICTION,
    )
    server = await answering({b"POST /predictions/ner_model HTTP/1.1": answer}, requests, [])
    client = TorchServeClient(make_settings(inference_url=f"http://127.0.0.1:{port_of(server)}"))
    try:
        assert isinstance(client._client._transport, PooledTransport)
        prediction = await client.predict(b'{"text": "In Rome"}', "application/json")
        assert prediction.json()["entities"][0]["text"] == "Rome"
        assert {k.lower(): v for k, v in prediction.headers.items()} == {"x-ner-model-version": "1.0"}
    finally:
        await client.aclose()
        server.close()


def test_an_https_torchserve_is_reached_through_httpx2s_own_transport():
    client = TorchServeClient(make_settings(inference_url="https://torchserve.example:8443"))
    assert not isinstance(client._client._transport, PooledTransport)
    plain = TorchServeClient(make_settings())
    assert isinstance(plain._client._transport, PooledTransport)


async def test_a_refused_connection_is_a_connect_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx2.AsyncClient(transport=PooledTransport(max_idle=1)) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/predictions/ner_model", content=b"{}")


async def test_a_connection_closed_before_the_answer_is_a_protocol_error_and_no_answer_a_read_timeout():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    writers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    closing = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    async with httpx2.AsyncClient(transport=PooledTransport(max_idle=1), timeout=httpx2.Timeout(0.3)) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"http://127.0.0.1:{port_of(closing)}/x", content=b"{}")
        with pytest.raises(httpx2.ReadTimeout):
            await client.post(f"http://127.0.0.1:{port_of(silent)}/x", content=b"{}")
    for writer in writers:
        writer.close()
    closing.close()
    silent.close()


async def test_a_kept_alive_connection_closed_while_idle_is_reopened_and_the_request_sent_once_more():
    connections: list[int] = []
    requests: list[bytes] = []

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head + await reader.readexactly(2))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # closes the kept-alive connection while the client holds it idle

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    async with httpx2.AsyncClient(transport=PooledTransport(max_idle=1)) as client:
        for body in (b"{}", b"[]"):
            response = await client.post(f"http://127.0.0.1:{port_of(server)}/x", content=body)
            assert response.status_code == 200 and response.content == b"ok"
            await asyncio.sleep(0.15)
    server.close()
    assert len(connections) == 2 and [r[-2:] for r in requests] == [b"{}", b"[]"]


async def test_only_plain_http():
    async with httpx2.AsyncClient(transport=PooledTransport(max_idle=1)) as client:
        with pytest.raises(httpx2.UnsupportedProtocol):
            await client.get("https://127.0.0.1:1/ping")


async def scripted(script) -> tuple[asyncio.Server, list[bytes]]:
    """A server whose ``script(server, connection_number, request_number_on_it)`` gives each request's answer: bytes
    to write, None to close the connection without answering, or ``(bytes,)`` to write them and then close."""
    requests: list[bytes] = []
    opened: list[int] = []
    holder: list[asyncio.Server] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        number = len(opened)
        for index in itertools.count():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lengths = [int(v.split(b":")[1]) for v in head.split(b"\r\n") if v.lower().startswith(b"content-length")]
            requests.append(head + await reader.readexactly(lengths[0] if lengths else 0))
            answer = script(holder[0], number, index)
            if answer is None:
                break
            writer.write(answer[0] if isinstance(answer, tuple) else answer)
            await writer.drain()
            if isinstance(answer, tuple):
                break
        writer.close()

    holder.append(await asyncio.start_server(handle, "127.0.0.1", 0))
    return holder[0], requests


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def post_twice(server: asyncio.Server) -> list:
    """Two requests on one client: the second on the connection the first kept alive; results or exceptions."""
    results = []
    async with httpx2.AsyncClient(transport=PooledTransport(max_idle=1), timeout=httpx2.Timeout(2.0)) as client:
        for body in (b"{}", b"[]"):
            try:
                results.append(await client.post(f"http://127.0.0.1:{port_of(server)}/x", content=body))
            except httpx2.HTTPError as err:
                results.append(err)
    server.close()
    return results


async def test_a_request_on_a_connection_closed_under_it_is_sent_again_on_a_fresh_one():
    """The race the idle check cannot see: the server closes the kept-alive connection as the request arrives."""
    server, requests = await scripted(lambda server, connection, index: OK if index == 0 else None)
    first, second = await post_twice(server)
    assert first.status_code == 200 and second.status_code == 200 and second.content == b"ok"
    assert [r[-2:] for r in requests] == [b"{}", b"[]", b"[]"]  # the second request twice: the resend


async def test_an_answer_cut_after_its_head_is_not_sent_again():
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"  # the head, then the connection closes
    server, requests = await scripted(lambda server, connection, index: [OK, (cut,)][index] if connection == 1 else OK)
    first, second = await post_twice(server)
    assert first.status_code == 200
    assert isinstance(second, httpx2.RemoteProtocolError)  # may have reached a worker: the retry policy's LOST
    assert [r[-2:] for r in requests] == [b"{}", b"[]"]  # sent once


async def test_a_resend_that_cannot_connect_is_a_read_error_not_a_connect_error():
    """The request may have reached TorchServe before the connection went: not "never sent" (ConnectError)."""

    def script(server: asyncio.Server, connection: int, index: int) -> bytes | None:
        if index == 0:
            return OK
        server.close()  # stops listening: the resend's connection is refused
        return None

    server, requests = await scripted(script)
    first, second = await post_twice(server)
    assert first.status_code == 200
    assert isinstance(second, httpx2.ReadError) and not isinstance(second, httpx2.ConnectError)


async def test_bodiless_answers_and_chunked_ones_and_the_headers_handed_on():
    answers = [
        b"HTTP/1.1 204 No Content\r\nServer: ts\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-NER-Batch-Size: 3\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ]
    server, requests = await scripted(lambda server, connection, index: answers[index])
    first, second = await post_twice(server)
    assert first.status_code == 204 and first.content == b""
    assert second.status_code == 200 and second.json() == {} and second.headers["x-ner-batch-size"] == "3"
    assert "transfer-encoding" not in second.headers
    assert all(b"accept-encoding" not in r.lower() and b"transfer-encoding" not in r.lower() for r in requests)
    assert len(requests) == 2
