"""REST passthrough, health and readiness, labels, the demo page, CORS and what the logs may contain."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

import pytest

from gateway.app import PAGE
from gateway.auth import loopback_host
from gateway.logs import RedactFilter
from tests.gateway.conftest import AUTH, SECRET, TOKEN, fake_entities


def test_rest_passthrough_keeps_torchserve_schema_and_headers(client, fake):
    response = client.post("/v1/entities", json={"text": "Angela Merkel met Tim Cook."}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"entities": fake_entities("Angela Merkel met Tim Cook.")}
    assert response.headers["x-ner-batch-size"] == "1"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "application/octet-stream"])
def test_rest_passthrough_forwards_other_bodies_as_they_are(client, fake, content_type):
    response = client.post("/v1/entities", content=b"Hi Rome", headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200 and response.json() == {"entities": fake_entities("Hi Rome")}
    assert fake.bodies[-1] == (b"Hi Rome", content_type)


def test_rest_upstream_4xx_passes_through_without_retry(client, fake):
    fake.script = lambda text, attempt: (
        400,
        {"code": 400, "type": "BadRequest", "message": "'aggregation' must be one of [...]"},
    )
    response = client.post("/v1/entities", json={"text": "x", "aggregation": "best"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"code": 400, "type": "BadRequest", "message": "'aggregation' must be one of [...]"}
    assert fake.attempts["x"] == 1


def test_rest_unavailable_after_the_deadline_is_503_with_retry_after(make_client, fake):
    fake.script = lambda text, attempt: (507, None)
    client = make_client(retry_deadline_s=0.1)
    response = client.post("/v1/entities", json={"text": "x"}, headers=AUTH)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["type"] == "ServiceUnavailable"


def test_rest_body_limit(make_client, fake):
    client = make_client(max_message_bytes=2048)
    response = client.post("/v1/entities", json={"text": "x" * 3000}, headers=AUTH)
    assert response.status_code == 413 and "limit of 2048" in response.json()["message"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "headers, params, status",
    [
        ({}, {}, 401),
        ({"Authorization": "Bearer tester.not-the-secret-0000"}, {}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, {}, 200),
        ({}, {"token": TOKEN}, 200),
        ({"Authorization": f"bearer   {TOKEN} "}, {}, 200),
    ],
)
def test_rest_auth(client, headers, params, status):
    response = client.post("/v1/entities", json={"text": "x"}, headers=headers, params=params)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer" and response.json()["code"] == 401


def test_health_is_always_200_and_ready_follows_torchserve(client, fake):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready_workers"] == 1
    fake.workers = [{"id": "9000", "status": "UNLOADING"}]
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json() == {
        "status": "not ready",
        "model": "ner_model",
        "ready_workers": 0,
        "reason": "no READY worker",
    }
    assert client.get("/health").status_code == 200


def test_labels_from_settings_checkpoint_and_predictions(make_client, tmp_path):
    assert make_client(labels=["PER", "ORG"]).get("/v1/labels", headers=AUTH).json() == {
        "labels": ["PER", "ORG"],
        "source": "settings",
    }
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(
        json.dumps({"id2label": {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC", "10": "B-MISC"}})
    )
    assert make_client(model_dir=hf).get("/v1/labels", headers=AUTH).json() == {
        "labels": ["PER", "LOC", "MISC"],
        "source": "checkpoint",
    }
    classic = tmp_path / "classic"
    classic.mkdir()
    (classic / "labels_file.txt").write_text("O\nB-DRUG\nI-DRUG\nB-CITY\nI-CITY\n")
    assert make_client(model_dir=classic).get("/v1/labels", headers=AUTH).json()["labels"] == ["DRUG", "CITY"]
    client = make_client()
    assert client.get("/v1/labels", headers=AUTH).json() == {"labels": [], "source": "observed"}
    with client.websocket_connect("/ws/entities", headers=dict(AUTH)) as ws:
        ws.send_text("Hello Rome")
        ws.receive_json()
    assert client.get("/v1/labels", headers=AUTH).json()["labels"] == ["PER"]
    assert client.get("/v1/labels").status_code == 401


def test_a_model_dir_without_labels_fails_at_start(make_client, tmp_path):
    from gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="neither config.json nor labels_file.txt"):
        make_client(model_dir=tmp_path)


def test_demo_page_is_self_contained_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing to fetch from elsewhere
    policy = response.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    assert html == PAGE.read_text(encoding="utf-8")
    assert client.head("/").status_code == 200


def test_cors_is_off_by_default_and_follows_the_setting(client, make_client):
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    assert "access-control-allow-origin" not in client.options("/v1/entities", headers=preflight).headers
    allowed = make_client(cors_origins=["https://app.example"]).options("/v1/entities", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


def test_openapi_schema_lists_the_http_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/ready", "/v1/labels", "/v1/entities", "/v1/stream"}
    assert client.head("/health").status_code == 200


def test_unknown_paths_use_the_error_shape(client):
    assert client.get("/nope").json() == {"code": 404, "type": "NotFound", "message": "Not Found"}


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


def test_disabled_auth_is_announced_loudly(make_client, caplog):
    caplog.set_level(logging.INFO)
    client = make_client(auth_disabled=True, api_keys={})
    assert client.post("/v1/entities", json={"text": "x"}).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "gateway"]
    assert warnings and "AUTHENTICATION IS DISABLED" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "host,allowed",
    [
        ("127.0.0.1:8000", True),
        ("localhost", True),
        ("[::1]:8000", True),
        ("LOCALHOST:80", True),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_loopback_host(host, allowed):
    assert loopback_host(host) is allowed


def test_without_auth_only_loopback_hosts_are_served(make_client):
    """A page re-pointing its own name at 127.0.0.1 (DNS rebinding) sends that name as Host."""
    client = make_client(auth_disabled=True, api_keys={})
    assert client.post("/v1/entities", json={"text": "Angela"}).status_code == 200
    rebound = client.post("/v1/entities", json={"text": "Angela"}, headers={"Host": "evil.example:8000"})
    assert rebound.status_code == 403 and "authentication is off" in rebound.json()["message"]
    assert client.get("/health", headers={"Host": "evil.example"}).status_code == 403
    keyed = make_client()  # with keys a proxy may use any name
    assert keyed.get("/health", headers={"Host": "ner.example.com"}).status_code == 200
    behind_proxy = make_client(auth_disabled=True, api_keys={}, allow_remote_without_auth=True)
    assert behind_proxy.get("/health", headers={"Host": "ner.example.com"}).status_code == 200
