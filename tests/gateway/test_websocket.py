"""/ws/entities: auth (1008), size (1009), error replies, concurrency, ordering, backpressure, retries, Origin.

In-process with Starlette's TestClient, except what only a real server shows (``start_live``: uvicorn in a
thread, a real ``websockets`` client): a client leaving, keepalive under backpressure, shutdown, compression.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate

import gateway.__main__
import gateway.websocket
from gateway.schemas import PredictBody
from gateway.websocket import MessageError, origin_allowed, parse_message
from tests.support.fake_torchserve import NO_WORKER, WORKER_DIED_507, fake_entities, fake_segments
from tests.support.gateway_harness import AUTH, SECRET, TOKEN
from tests.support.polling import wait_until_async


def connect(client, **kwargs):
    # A copy: TestClient adds the handshake headers to the dict it is given.
    kwargs["headers"] = dict(kwargs.get("headers", AUTH))
    return client.websocket_connect("/ws/entities", **kwargs)


def closed_with(client, **kwargs) -> tuple[int, str]:
    with connect(client, **kwargs) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    return closed.value.code, closed.value.reason


def test_plain_text_and_json_messages(client):
    with connect(client) as ws:
        ws.send_text("Angela Merkel met Tim Cook in Berlin.")
        assert ws.receive_json() == {"id": 1, "entities": fake_entities("Angela Merkel met Tim Cook in Berlin.")}
        ws.send_text(json.dumps({"id": "q-7", "text": "Hello Paris", "format": "segments", "aggregation": "MAX"}))
        assert ws.receive_json() == {"id": "q-7", "segments": fake_segments("Hello Paris")}
        ws.send_text(json.dumps({"text": "no id here"}))  # the id is the message's sequence number
        assert ws.receive_json() == {"id": 3, "entities": []}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {}},
        {"headers": {"Authorization": f"Bearer tester.{'x' * 23}"}},
        {"headers": {"Authorization": f"Basic {TOKEN}"}},
        {"headers": {}, "subprotocols": ["ner.v1", "bearer.nobody." + SECRET]},
        {"headers": {"Origin": "https://evil.example"}},
    ],
    ids=["no key", "wrong secret", "wrong scheme", "unknown key id", "foreign origin"],
)
def test_refused_connections_are_closed_with_1008(client, kwargs):
    code, reason = closed_with(client, **kwargs)
    assert code == 1008 and reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": AUTH},
        {"headers": {}, "subprotocols": ["ner.v1", "bearer." + TOKEN]},
        {"headers": {"Origin": "http://testserver"}, "subprotocols": ["ner.v1", "bearer." + TOKEN]},
    ],
    ids=["header", "subprotocol", "same-origin browser"],
)
def test_accepted_credentials(client, kwargs):
    with connect(client, **kwargs) as ws:
        if "subprotocols" in kwargs:
            assert ws.accepted_subprotocol == "ner.v1"  # never the token
        ws.send_text("Hi Rome")
        assert ws.receive_json()["entities"][0]["text"] == "Hi"


def test_query_token_and_disabled_auth(client, make_client):
    with client.websocket_connect(f"/ws/entities?token={TOKEN}") as ws:
        ws.send_text("Hi")
        assert "entities" in ws.receive_json()
    open_client = make_client(auth_disabled=True, api_keys={})
    with open_client.websocket_connect("/ws/entities") as ws:
        ws.send_text("Hi")
        assert "entities" in ws.receive_json()


def test_oversized_message_closes_with_1009(make_client):
    client = make_client(max_message_bytes=1024)
    with connect(client) as ws:
        ws.send_text("a" * 1000)
        assert "entities" in ws.receive_json()
        ws.send_text("é" * 600)  # 600 characters, 1200 bytes
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009


def test_errors_are_replies_and_the_connection_stays_open(make_client, fake):
    fake.script = lambda text, attempt: (
        (400, {"code": 400, "type": "BadRequest", "message": "upstream says no"}) if text == "refuse me" else None
    )
    client = make_client(max_text_chars=50)
    with connect(client) as ws:
        ws.send_text('{"id": 1, "text": ')
        reply = ws.receive_json()
        assert reply["id"] is None and reply["error"]["code"] == 400 and "not valid JSON" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 2, "txt": "typo"}))
        assert ws.receive_json() == {
            "id": 2,
            "error": {"code": 400, "type": "BadRequest", "message": "field 'text' is required; unknown field 'txt'"},
        }
        ws.send_text(json.dumps({"id": 3, "text": "x", "format": "xml"}))
        reply = ws.receive_json()
        assert reply["id"] == 3 and "format" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 4, "text": "y" * 51}))
        assert ws.receive_json()["error"] == {
            "code": 413,
            "type": "PayloadTooLarge",
            "message": "text has 51 characters, the limit is 50",
        }
        ws.send_text(json.dumps({"id": 5, "text": "refuse me"}))
        assert ws.receive_json() == {
            "id": 5,
            "error": {"code": 400, "type": "BadRequest", "message": "upstream says no"},
        }
        ws.send_bytes(b"\xff\xfe")
        assert ws.receive_json()["error"]["code"] == 400
        ws.send_text("[1, 2]")  # only a message starting with "{" is JSON; this one is text to analyse
        assert ws.receive_json() == {"id": 7, "entities": []}
        ws.send_text(json.dumps({"id": True, "text": "x"}))
        reply = ws.receive_json()
        assert reply["id"] is None and reply["error"]["code"] == 400
        ws.send_text(json.dumps({"id": 9, "text": "Still Open"}))  # and the connection still serves
        assert ws.receive_json() == {"id": 9, "entities": fake_entities("Still Open")}


def test_concurrent_messages_complete_out_of_order_with_their_ids(client, fake):
    fake.delays = {"Slow": 0.5}
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": "a", "text": "Slow One"}))
        ws.send_text(json.dumps({"id": "b", "text": "Fast Two"}))
        ws.send_text(json.dumps({"id": "c", "text": "Fast Three"}))
        replies = [ws.receive_json() for _ in range(3)]
    assert [r["id"] for r in replies][-1] == "a"  # the first sent finished last
    assert {r["id"]: r["entities"] for r in replies} == {
        "a": fake_entities("Slow One"),
        "b": fake_entities("Fast Two"),
        "c": fake_entities("Fast Three"),
    }


def test_in_flight_messages_are_bounded_per_connection(make_client, fake):
    fake.delays = {"msg": 0.05}
    client = make_client(max_in_flight_per_connection=3)
    with connect(client) as ws:
        for i in range(15):
            ws.send_text(json.dumps({"id": i, "text": f"msg {i}"}))
        replies = [ws.receive_json() for _ in range(15)]
    assert sorted(r["id"] for r in replies) == list(range(15))
    assert fake.peak == 3  # concurrent, and never more than the limit


def test_retries_are_invisible_to_the_client(client, fake):
    fake.script = lambda text, attempt: WORKER_DIED_507 if attempt == 1 else None
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": 1, "text": "Hello World"}))
        assert ws.receive_json() == {"id": 1, "entities": fake_entities("Hello World")}
    assert fake.attempts["Hello World"] == 2


def test_deadline_exceeded_is_an_error_reply(make_client, fake):
    fake.script = lambda text, attempt: NO_WORKER if text == "down" else None
    client = make_client(retry_deadline_s=0.2)
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": 1, "text": "down"}))
        reply = ws.receive_json()
        assert reply["id"] == 1 and reply["error"]["code"] == 503 and "gave up after" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 2, "text": "up"}))
        assert ws.receive_json() == {"id": 2, "entities": []}


@pytest.mark.parametrize(
    "message",
    ['{"a":' * 1000 + "1" + "}" * 1000, '{"id": 1, "text": ' + "[" * 1000 + "]" * 1000 + "}"],
    ids=["objects", "arrays in a field"],
)
def test_a_deeply_nested_message_is_an_error_reply_and_the_connection_stays_open(client, fake, message):
    """Issue 11: such a message dropped the connection without a close frame, losing the replies in flight."""
    fake.delays = {"Slow": 0.3}
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": "in flight", "text": "Slow Reply"}))
        ws.send_text(message)
        replies = [ws.receive_json(), ws.receive_json()]
        ws.send_text(json.dumps({"id": "after", "text": "Still Open"}))
        replies.append(ws.receive_json())
    assert replies == [
        {
            "id": None,
            "error": {
                "code": 400,
                "type": "BadRequest",
                "message": 'the JSON body is nested more than 64 levels deep; expected {"text": "..."}',
            },
        },
        {"id": "in flight", "entities": fake_entities("Slow Reply")},
        {"id": "after", "entities": fake_entities("Still Open")},
    ]


def test_a_bug_with_one_message_is_an_error_reply_and_the_connection_stays_open(client, monkeypatch):
    real = gateway.websocket.parse_message

    def parse(text, *args):
        if text == "boom":
            raise ZeroDivisionError("a bug")
        return real(text, *args)

    monkeypatch.setattr(gateway.websocket, "parse_message", parse)
    with connect(client) as ws:
        ws.send_text("boom")
        assert ws.receive_json() == {
            "id": None,
            "error": {
                "code": 500,
                "type": "InternalServerError",
                "message": "internal error of the gateway (ZeroDivisionError)",
            },
        }
        ws.send_text("Still Open")
        assert ws.receive_json() == {"id": 2, "entities": fake_entities("Still Open")}


def test_a_bug_of_the_connection_closes_it_with_1011_and_a_reason(client, monkeypatch):
    async def broken(self, slots):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(gateway.websocket.EntitySocket, "_acquire", broken)
    with connect(client) as ws:
        ws.send_text("Hello")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1011, "internal error of the gateway")


def test_a_missing_key_tells_a_browser_what_it_can_send(client):
    code, reason = closed_with(client, headers={})
    assert code == 1008
    assert reason == (
        "missing API key: offer the subprotocol bearer.<id>.<secret> (browsers) or send Authorization: Bearer "
        "<id>.<secret>"
    )


def test_parse_message_ids():
    assert parse_message("plain text", 4, 100, 1024) == (4, PredictBody(text="plain text"))
    assert parse_message('  {"id": null, "text": "x"}', 4, 100, 1024)[0] is None
    assert parse_message('{"id": "abc", "text": "x"}', 4, 100, 1024)[0] == "abc"
    assert parse_message('{"text": "x"}', 4, 100, 1024)[0] == 4
    with pytest.raises(MessageError) as error:
        parse_message(json.dumps({"id": "i" * 257, "text": "x"}), 4, 100, 1024)
    assert error.value.message_id is None and error.value.status == 400  # a too-long id is not echoed back


@pytest.mark.parametrize(
    "origin, allowed, auth_enabled, accepted",
    [
        (None, [], False, True),  # not a browser
        ("http://127.0.0.1:8000", [], False, True),
        ("http://localhost:3000", [], False, True),  # any port of this machine
        ("http://[::1]:8000", [], False, True),
        ("https://app.example", ["https://app.example"], False, True),
        ("http://anything.example", ["*"], False, True),
        # DNS rebinding: a foreign name pointed at 127.0.0.1 sends Host equal to its Origin
        ("http://rebound.example:8000", [], False, False),
        ("http://localhost.rebound.example:8000", [], False, False),
        ("null", [], False, False),  # a sandboxed or file: page
        ("http://[::1", [], False, False),
        # With keys the gateway's own host is fine (the demo page behind a proxy); a foreign page has no key.
        ("https://ner.example", [], True, True),
        ("https://evil.example", [], True, False),
    ],
)
def test_origin_allowed(origin, allowed, auth_enabled, accepted):
    host = "ner.example" if auth_enabled else "rebound.example:8000"
    headers = {"host": host} | ({"origin": origin} if origin is not None else {})
    assert origin_allowed(headers, allowed, auth_enabled) is accepted


def test_with_auth_off_a_foreign_origin_naming_the_host_is_refused(make_client):
    client = make_client(auth_disabled=True, api_keys={})
    with connect(client, headers={"Origin": "http://testserver", "Host": "testserver"}) as ws:
        ws.send_text("Hi")  # answered if the connection was accepted: the test fails rather than waits
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    with connect(client, headers={"Origin": "http://127.0.0.1:8000"}) as ws:
        ws.send_text("Hi")
        assert "entities" in ws.receive_json()


# --- under a real uvicorn ----------------------------------------------------------------------------------------


def open_socket(live, **kwargs):
    """A websockets client; no proxy from the environment, a short close handshake (a server that stopped reading
    would otherwise hold the close for 10 s)."""
    return ws_connect(f"{live.ws_url}/ws/entities", additional_headers=AUTH, proxy=None, close_timeout=1, **kwargs)


@pytest.mark.anyio
async def test_a_connection_held_back_by_backpressure_is_not_dropped_by_the_keepalive(start_live, monkeypatch):
    monkeypatch.setattr(gateway.__main__, "WS_PING_INTERVAL_S", 0.2)
    # longest_request_s() = 0.5 + 0.05 + 2 s: the ping timeout is 2.75 s
    live = start_live(
        max_in_flight_per_connection=1, retry_deadline_s=0.5, retry_backoff_max_s=0.05, upstream_timeout_s=2.0
    )
    live.fake.delays = {"slow": 0.6}  # three ping intervals per message, one message at a time
    sent = 5  # one in flight, one waiting for the slot, one held by the gateway, two unread in uvicorn
    async with open_socket(live, ping_interval=None) as ws:
        for number in range(sent):
            await ws.send(json.dumps({"id": number, "text": f"slow {number}"}))
        # For 1.2 s uvicorn reads no TCP, pongs included; with a ping timeout of one interval it closes with 1011.
        replies = [json.loads(await ws.recv()) for _ in range(sent)]
        await ws.ping()  # and the connection is still open
    assert [reply["id"] for reply in replies] == list(range(sent))
    assert all("entities" in reply for reply in replies)


@pytest.mark.anyio
@pytest.mark.parametrize("leave", ["close", "drop"], ids=["close handshake", "TCP dropped"])
@pytest.mark.parametrize("in_flight", [1, 4], ids=["every slot busy", "slots free"])
async def test_a_client_that_leaves_cancels_its_upstream_requests_at_once(start_live, leave, in_flight):
    live = start_live(max_in_flight_per_connection=in_flight, upstream_timeout_s=30.0)
    live.fake.delays = {"forever": 30.0}
    ws = await open_socket(live)
    await ws.send("forever 1")
    await ws.send("forever 2")  # with one slot: waits for it, and the client leaves meanwhile
    running = min(in_flight, 2)
    await wait_until_async(lambda: live.fake.in_flight == running, 5, f"{running} requests in flight upstream")
    if leave == "close":
        await ws.close()
    else:
        ws.transport.abort()
    await wait_until_async(lambda: live.fake.in_flight == 0, 2, "the upstream requests to end with their client")
    assert live.fake.cancelled == running and live.fake.completed == []


@pytest.mark.anyio
async def test_shutdown_closes_websockets_with_1012_at_once(start_live):
    """What docs/GATEWAY.md tells clients: no reply still in flight comes after a shutdown; resend it."""
    live = start_live(upstream_timeout_s=30.0)
    live.fake.delays = {"forever": 30.0}
    async with open_socket(live) as ws:
        await ws.send("forever")
        await wait_until_async(lambda: live.fake.in_flight == 1, 5, "the request to reach TorchServe")
        started = time.monotonic()
        await asyncio.to_thread(live.stop)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert time.monotonic() - started < 5 and live.fake.cancelled == 1


@pytest.mark.anyio
@pytest.mark.parametrize("compression", [False, True], ids=["default: off", "ws_compression on"])
async def test_permessage_deflate_is_accepted_only_when_configured(start_live, compression):
    """The client offers permessage-deflate (websockets does by default); the gateway takes it only when asked."""
    live = start_live() if not compression else start_live(ws_compression=True)
    async with open_socket(live, compression="deflate") as ws:
        await ws.send(json.dumps({"id": 1, "text": "Angela Merkel visited Paris"}))
        reply = json.loads(await ws.recv())
        negotiated = [type(extension) for extension in ws.protocol.extensions]
    assert reply["id"] == 1 and reply["entities"] == fake_entities("Angela Merkel visited Paris")
    assert negotiated == ([PerMessageDeflate] if compression else [])
