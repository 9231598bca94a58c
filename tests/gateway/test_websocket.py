"""/ws/entities in-process: auth (1008), size (1009), error replies, concurrency, ordering, backpressure, retries."""

from __future__ import annotations

import json
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from gateway.websocket import MessageError, parse_message
from tests.gateway.conftest import AUTH, SECRET, TOKEN, fake_entities, fake_segments


def connect(client, **kwargs):
    kwargs.setdefault("headers", AUTH)
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
    fake.script = lambda text, attempt: (400, {"code": 400, "type": "BadRequest", "message": "upstream says no"}
                                         ) if text == "refuse me" else None
    client = make_client(max_text_chars=50)
    with connect(client) as ws:
        ws.send_text('{"id": 1, "text": ')
        reply = ws.receive_json()
        assert reply["id"] is None and reply["error"]["code"] == 400 and "not valid JSON" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 2, "txt": "typo"}))
        assert ws.receive_json() == {"id": 2, "error": {
            "code": 400, "type": "BadRequest", "message": "field 'text' is required; unknown field 'txt'"}}
        ws.send_text(json.dumps({"id": 3, "text": "x", "format": "xml"}))
        reply = ws.receive_json()
        assert reply["id"] == 3 and "format" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 4, "text": "y" * 51}))
        assert ws.receive_json()["error"] == {"code": 413, "type": "PayloadTooLarge",
                                              "message": "text has 51 characters, the limit is 50"}
        ws.send_text(json.dumps({"id": 5, "text": "refuse me"}))
        assert ws.receive_json() == {"id": 5, "error": {"code": 400, "type": "BadRequest",
                                                        "message": "upstream says no"}}
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
        "a": fake_entities("Slow One"), "b": fake_entities("Fast Two"), "c": fake_entities("Fast Three")}


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
    fake.script = lambda text, attempt: (507, {"code": 507, "type": "InternalServerException",
                                               "message": "Worker died."}) if attempt == 1 else None
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": 1, "text": "Hello World"}))
        assert ws.receive_json() == {"id": 1, "entities": fake_entities("Hello World")}
    assert fake.attempts["Hello World"] == 2


def test_deadline_exceeded_is_an_error_reply(make_client, fake):
    fake.script = lambda text, attempt: (503, None) if text == "down" else None
    client = make_client(retry_deadline_s=0.2)
    with connect(client) as ws:
        ws.send_text(json.dumps({"id": 1, "text": "down"}))
        reply = ws.receive_json()
        assert reply["id"] == 1 and reply["error"]["code"] == 503 and "gave up after" in reply["error"]["message"]
        ws.send_text(json.dumps({"id": 2, "text": "up"}))
        assert ws.receive_json() == {"id": 2, "entities": []}


def test_closing_the_connection_cancels_its_upstream_requests(client, fake):
    fake.delays = {"forever": 30}
    with connect(client) as ws:
        ws.send_text("forever")
        ws.send_text("Quick")
        assert ws.receive_json()["id"] == 2
    deadline = time.monotonic() + 5
    while fake.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.cancelled == 1 and fake.in_flight == 0


def test_parse_message_ids():
    assert parse_message("plain text", 4, 100)[0] == 4
    assert parse_message('  {"id": null, "text": "x"}', 4, 100)[0] is None
    assert parse_message('{"id": "abc", "text": "x"}', 4, 100)[0] == "abc"
    assert parse_message('{"text": "x"}', 4, 100)[0] == 4
    with pytest.raises(MessageError) as error:
        parse_message(json.dumps({"id": "i" * 257, "text": "x"}), 4, 100)
    assert error.value.message_id is None and error.value.status == 400  # a too-long id is not echoed back
