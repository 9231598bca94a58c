"""The real gateway process (``python -m gateway``) in front of the real TorchServe, tried as an attacker would:
deeply nested JSON on every protocol mixed into normal traffic, slow heads (a slowloris), a key in URLs.

Issue 11 measured, before: a nested REST body retried 24 times over 28.9 s (97 innocent 503s), SSE answering a
plain-text 500, a WebSocket dropped without a close frame, 200 trickling connections held open for ever.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx2
import pytest
from websockets.asyncio.client import connect

from tests.support.live_gateway import GatewayProcess, gateway_environment

pytestmark = pytest.mark.integration

DEEP_OBJECTS = '{"a":' * 1000 + "1" + "}" * 1000
DEEP_TEXT_FIELD = '{"text": ' + "[" * 1000 + "]" * 1000 + "}"
NORMAL = ["Angela Merkel met Tim Cook in Berlin.", "Mary took aspirin in London", "rome"]


def test_nested_json_on_every_protocol_is_a_400_and_innocent_traffic_never_fails(gateway, gateway_token):
    auth = {"Authorization": f"Bearer {gateway_token}"}
    json_type = {**auth, "Content-Type": "application/json"}
    results = {"normal": 0, "normal_failed": [], "hostile": []}

    async def normal_client(http: httpx2.AsyncClient, rounds: int) -> None:
        for number in range(rounds):
            response = await http.post("/v1/entities", json={"text": NORMAL[number % len(NORMAL)]}, headers=auth)
            results["normal"] += 1
            if response.status_code != 200:
                results["normal_failed"].append((response.status_code, response.text[:200]))

    async def hostile_client(http: httpx2.AsyncClient) -> None:
        for body in (DEEP_OBJECTS, DEEP_TEXT_FIELD):
            for path in ("/v1/entities", "/v1/stream"):
                response = await http.post(path, content=body, headers=json_type)
                results["hostile"].append((path, response.status_code, response.headers.get("content-type")))
        async with connect(f"{gateway.ws_url}/ws/entities", proxy=None, additional_headers=auth, close_timeout=2) as ws:
            await ws.send(json.dumps({"id": "first", "text": NORMAL[0]}))
            await ws.send(DEEP_OBJECTS)
            await ws.send(DEEP_TEXT_FIELD)
            await ws.send(json.dumps({"id": "last", "text": NORMAL[1]}))
            replies = [json.loads(await ws.recv()) for _ in range(4)]
        served = sorted(reply["id"] for reply in replies if "entities" in reply)
        refused = [(reply["id"], reply["error"]["code"]) for reply in replies if "error" in reply]
        results["hostile"].append(("ws", served, refused))

    async def scenario() -> None:
        async with httpx2.AsyncClient(base_url=gateway.url, timeout=60, trust_env=False) as http:
            await asyncio.gather(*(normal_client(http, 15) for _ in range(8)), hostile_client(http))

    log_before = len(gateway.log_text())
    started = time.monotonic()
    asyncio.run(scenario())
    elapsed = time.monotonic() - started
    print(f"nested JSON: {results['normal']} normal requests, {len(results['normal_failed'])} failed, {elapsed:.1f} s")
    assert results["normal_failed"] == []
    assert results["hostile"][:4] == [
        (path, 400, "application/json") for _ in range(2) for path in ("/v1/entities", "/v1/stream")
    ]
    assert results["hostile"][4] == ("ws", ["first", "last"], [(None, 400), (None, 400)])
    assert "TorchServe could not serve a request" not in gateway.log_text()[log_before:]  # nothing was retried


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(0.5):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:  # closed by the gateway
            return


def head_trickler(port: int, stop: threading.Event, closed_after: list[float]) -> None:
    """A slowloris connection: a request head, one byte every 0.5 s, until the gateway closes it."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 100 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(sock, head, stop))
        sender.start()
        try:
            while sock.recv(4096):  # the 408, then b"" when closed
                pass
            closed_after.append(time.monotonic() - started)
        except OSError:
            closed_after.append(time.monotonic() - started)
        finally:
            sender.join()


def test_slow_heads_are_closed_by_the_deadline_while_others_are_served(tmp_path, tiny_server, gateway_token):
    process = GatewayProcess(
        tmp_path,
        gateway_environment(
            tiny_server,
            gateway_token,
            header_timeout_s="2",
        ),
    ).start()
    stop = threading.Event()
    closed_after: list[float] = []
    tricklers = [threading.Thread(target=head_trickler, args=(process.port, stop, closed_after)) for _ in range(50)]
    try:
        for thread in tricklers:
            thread.start()
        served = 0
        with httpx2.Client(base_url=process.url, timeout=30, trust_env=False) as http:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                response = http.post(
                    "/v1/entities", json={"text": NORMAL[0]}, headers={"Authorization": f"Bearer {gateway_token}"}
                )
                assert response.status_code == 200, response.text
                served += 1
        for thread in tricklers:
            thread.join(timeout=20)
    finally:
        stop.set()
        for thread in tricklers:
            thread.join(timeout=5)
        process.stop()
    print(f"slowloris: 50 connections closed after {min(closed_after):.1f}-{max(closed_after):.1f} s; {served} served")
    assert len(closed_after) == 50 and served > 0
    assert max(closed_after) < 2 + 1.5  # the 2 s deadline, plus one trickle step and scheduling on 2 cores
    assert process.log_text().count("did not arrive within 2 s") == 50


def test_a_key_in_urls_never_reaches_the_log(tmp_path, tiny_server, gateway_token):
    key_id, secret = gateway_token.split(".", 1)
    process = GatewayProcess(
        tmp_path,
        gateway_environment(
            tiny_server,
            gateway_token,
            log_level="debug",
        ),
    ).start()
    try:
        with httpx2.Client(base_url=process.url, timeout=30, trust_env=False) as http:
            assert http.get("/", params={"token": gateway_token}).status_code == 200
            stream = http.get("/v1/stream", params={"text": "Private Words", "token": gateway_token})
            assert stream.status_code == 200

        async def socket_with_token_in_url() -> None:
            async with connect(f"{process.ws_url}/ws/entities?token={gateway_token}", proxy=None) as ws:
                await ws.send("Private Words")
                await ws.recv()

        async def socket_with_token_in_header_and_subprotocol() -> None:
            for options in (
                {"additional_headers": {"Authorization": f"Bearer {gateway_token}"}},
                {"subprotocols": ["ner.v1", f"bearer.{gateway_token}"]},
            ):
                async with connect(f"{process.ws_url}/ws/entities", proxy=None, **options) as ws:
                    await ws.send("Private Words")
                    await ws.recv()

        asyncio.run(socket_with_token_in_url())
        asyncio.run(socket_with_token_in_header_and_subprotocol())
    finally:
        process.stop()
    log = process.log_text()
    # At debug level uvicorn's WebSocket library logs every header and frame: all of them pass the redaction.
    assert f"key={key_id}" in log and "GET /v1/stream 200" in log and "token=[redacted]" in log
    assert "authorization: Bearer [redacted]" in log and "bearer.[redacted]" in log and "< TEXT [13 bytes]" in log
    assert secret not in log
    assert "Private" not in log
