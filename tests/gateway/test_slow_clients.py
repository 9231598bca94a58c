"""Slow clients against the gateway under a real uvicorn: a head trickled one byte at a time, a connection that
sends nothing, a trickled body, an idle keep-alive connection. Each is closed by its deadline while normal clients
are served.

Raw sockets: an HTTP client library would send a whole head at once. The client's pace (a byte every 0.25 s) is
the behaviour under test, not a wait for the server's state.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx2
import pytest

from gateway.slow_clients import timeout_response
from tests.support.gateway_harness import AUTH, TOKEN

HEAD = f"POST /v1/entities HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
PACE_S = 0.25
# Upper bounds only say "closed at its deadline, not left open": slack for a loaded machine (CI runs 2 cores).
SLACK_S = 5.0


def open_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send ``data`` one byte per PACE_S until it is sent, the server closes, or ``stop`` is set."""
    for byte in data:
        if stop.wait(PACE_S):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:  # closed by the server: what the test waits for
            return


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def served_meanwhile(url: str) -> bool:
    with httpx2.Client(timeout=5) as http:
        response = http.post(f"{url}/v1/entities", json={"text": "Hi Rome"}, headers=AUTH)
    return response.status_code == 200


def test_a_head_sent_one_byte_at_a_time_is_answered_408_and_closed_at_the_deadline(start_live):
    live = start_live(header_timeout_s=1.0)
    stop = threading.Event()
    with open_socket(live.url) as sock:
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(sock, HEAD, stop))
        sender.start()
        try:
            assert served_meanwhile(live.url)
            received = read_until_closed(sock)
        finally:
            stop.set()
            sender.join()
        elapsed = time.monotonic() - started
    assert received == timeout_response(1.0)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    body = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert body == {
        "code": 408,
        "type": "RequestTimeout",
        "message": "the request line and headers did not arrive within 1 s",
    }
    assert 1.0 <= elapsed < 1.0 + SLACK_S


def test_a_client_still_uploading_when_refused_sends_its_whole_body_then_reads_the_413_and_a_clean_end(start_live):
    # The gateway refuses a declared 4 MB body at once and closes while the client is still sending it. A close with
    # unread bytes makes the kernel reset the connection: the client's send fails and the 413 may never be read.
    # The lingering close reads and drops the rest of the upload instead.
    live = start_live(max_message_bytes=2048)
    body = b"x" * (4 * 1024 * 1024)
    head = HEAD + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with open_socket(live.url) as sock:
        sock.sendall(head + body)  # raises BrokenPipeError or ConnectionResetError on a reset
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b"request body of 4194304 bytes is over the limit of 2048" in received
    assert live.fake.calls == []


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(start_live):
    live = start_live(header_timeout_s=1.0)
    with open_socket(live.url) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + SLACK_S


def test_a_whole_head_in_time_is_served_and_the_idle_keep_alive_connection_closed_later(start_live):
    live = start_live(header_timeout_s=30.0, keep_alive_timeout_s=0.5)
    body = json.dumps({"text": "Hi Rome"}).encode()
    request = HEAD + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    with open_socket(live.url) as sock:
        sock.sendall(request)
        started = time.monotonic()
        received = read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b'"Hi"' in received
    assert elapsed < 0.5 + SLACK_S  # uvicorn's keep-alive timeout, not the (30 s) header timeout, nor never


def test_a_second_request_on_a_connection_gets_its_own_head_deadline(start_live):
    live = start_live(header_timeout_s=1.0, keep_alive_timeout_s=5.0)
    request = HEAD.replace(b"POST", b"GET").replace(b"/v1/entities", b"/health") + b"\r\n"
    stop = threading.Event()
    with open_socket(live.url) as sock:
        sock.sendall(request)
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(sock, request, stop))
        sender.start()
        try:
            received = read_until_closed(sock)
        finally:
            stop.set()
            sender.join()
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 ")
    assert PACE_S + 1.0 <= elapsed < PACE_S + 1.0 + SLACK_S  # timed from the second request's first byte


def test_a_body_trickled_past_its_deadline_is_408_and_the_connection_closed(start_live):
    live = start_live(header_timeout_s=1.0, body_timeout_s=1.0)
    body = json.dumps({"text": "Hi Rome"}).encode()
    stop = threading.Event()
    with open_socket(live.url) as sock:
        sock.sendall(HEAD + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(sock, body, stop))
        sender.start()
        try:
            received = read_until_closed(sock)
        finally:
            stop.set()
            sender.join()
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close" in received.lower()
    assert b"the request body did not arrive within 1 s" in received
    assert 1.0 <= elapsed < 1.0 + SLACK_S
    assert live.fake.calls == []


@pytest.mark.anyio
async def test_a_websocket_outlives_the_header_timeout(start_live):
    from websockets.asyncio.client import connect as ws_connect

    live = start_live(header_timeout_s=0.3)
    async with ws_connect(f"{live.ws_url}/ws/entities", additional_headers=AUTH, proxy=None) as ws:
        await ws.send("Hi Rome")
        first = json.loads(await ws.recv())
        # Longer than the header timeout, measured by the server's own clock: a ping round trip after it.
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            await (await ws.ping())
        await ws.send("Hello Paris")
        second = json.loads(await ws.recv())
    assert first["id"] == 1 and second["id"] == 2 and second["entities"]
