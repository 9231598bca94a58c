"""Logging: the access log carries key ids, and no log holds a secret or user text; uvicorn's lines are redacted."""

from __future__ import annotations

import logging

from gateway.logs import RedactFilter, log_config, redact
from tests.support.gateway_harness import AUTH, SECRET, TOKEN


def test_logs_hold_key_ids_but_no_secrets_and_no_text(make_client, caplog):
    caplog.set_level(logging.INFO)
    client = make_client()
    client.get("/v1/stream", params={"text": "Private Words", "token": TOKEN})
    client.post("/v1/entities", json={"text": "Private Words"}, headers=AUTH)
    with client.websocket_connect(f"/ws/entities?token={TOKEN}") as ws:
        ws.send_text("Private Words")
        ws.receive_json()
    # The test client's own request lines (httpx2, http://testserver/...) are the client's, not the gateway's.
    logged = "\n".join(r.getMessage() for r in caplog.records if "http://testserver" not in r.getMessage())
    assert "key=tester" in logged and "GET /v1/stream 200" in logged
    assert SECRET not in logged and "Private" not in logged


def test_redact_filter_rewrites_uvicorn_handshake_lines():
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/entities?token={TOKEN}&x=1"),
        None,
    )
    RedactFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "WebSocket /ws/entities?token=[redacted]&x=1" [accepted]'


def test_redact_hides_token_and_text_values_only():
    assert redact("/v1/stream?text=Private%20Words&format=segments&TOKEN=a.b") == (
        "/v1/stream?text=[redacted]&format=segments&TOKEN=[redacted]"
    )
    assert redact("context=kept") == "context=kept"


def test_log_config_redacts_every_handler_and_quiets_the_client_library():
    config = log_config("debug")
    assert all("redact" in handler["filters"] for handler in config["handlers"].values())
    assert config["loggers"]["gateway"]["level"] == "DEBUG"
    assert config["loggers"]["httpx2"]["level"] == "WARNING"


def test_redact_filter_hides_bearer_tokens_and_websocket_frames():
    class Frame:  # the shape of websockets' Frame, which uvicorn's WebSocket library logs at debug level
        class opcode:
            name = "TEXT"

        data = b"Private Words"

    for message, args, expected in [
        ("< %s: %s", ("authorization", f"Bearer {TOKEN}"), "< authorization: Bearer [redacted]"),
        (
            "< %s: %s",
            ("sec-websocket-protocol", f"ner.v1, bearer.{TOKEN}"),
            "< sec-websocket-protocol: ner.v1, bearer.[redacted]",
        ),
        ("< %s", (Frame(),), "< TEXT [13 bytes]"),
    ]:
        record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, message, args, None)
        RedactFilter().filter(record)
        assert record.getMessage() == expected
