"""The app's routes: REST passthrough, health and readiness, the demo page, CORS, the error shape, start-up.

Labels, logs and the loopback rules have their own modules: test_labels.py, test_logs.py, test_net.py."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

import pytest
from starlette.testclient import TestClient

import gateway.app
from gateway.app import PAGE
from nerserve.protocol import OTHER_SEGMENT, RESPONSE_HEADERS, Aggregation, OutputFormat
from tests.support.fake_torchserve import NO_WORKER, PREDICTION_FAILED, fake_entities
from tests.support.gateway_harness import AUTH, TOKEN


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
    fake.script = lambda text, attempt: NO_WORKER
    client = make_client(retry_deadline_s=0.1)
    response = client.post("/v1/entities", json={"text": "x"}, headers=AUTH)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["type"] == "ServiceUnavailable"


DEEP_ARRAYS = "[" * 1000 + "]" * 1000
DEEP_OBJECTS = '{"a":' * 1000 + "1" + "}" * 1000


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
def test_rest_deeply_nested_json_is_a_400_and_never_reaches_torchserve(client, fake, body, content_type):
    """Issue 11: such a body failed its whole TorchServe batch (503), and the gateway retried it 24 times."""
    response = client.post("/v1/entities", content=body.encode(), headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "type": "BadRequest",
        "message": 'the JSON body is nested more than 64 levels deep; expected {"text": "..."}',
    }
    assert fake.calls == []


def test_rest_invalid_json_is_refused_before_torchserve_and_text_with_brackets_is_not_json(client, fake):
    response = client.post("/v1/entities", content=b'{"text": ', headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["message"]
    assert fake.calls == []
    text = "Rome " + "[" * 200  # plain text is the handler's text, whatever it holds
    response = client.post("/v1/entities", content=text.encode(), headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status_code == 200 and fake.bodies[-1] == (text.encode(), "text/plain")


def test_a_large_json_body_is_checked_off_the_event_loop_and_forwarded_as_it_came(client, fake):
    body = json.dumps({"text": "Hi Rome " + "x" * 200_000}).encode()
    response = client.post("/v1/entities", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200 and fake.bodies[-1] == (body, "application/json")


def test_rest_a_batch_failed_by_the_handler_is_a_502_at_once(client, fake):
    fake.script = lambda text, attempt: PREDICTION_FAILED
    response = client.post("/v1/entities", json={"text": "x"}, headers=AUTH)
    assert response.status_code == 502 and "retry-after" not in response.headers
    assert response.json() == {
        "code": 502,
        "type": "BadGateway",
        "message": "TorchServe answered 503: Prediction failed",
    }
    assert fake.attempts["x"] == 1


def test_an_unexpected_error_is_a_json_500_not_plain_text(make_client, fake, monkeypatch):
    client = make_client()

    async def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(gateway.app, "parse_json_off_loop", broken)
    with TestClient(client.app, raise_server_exceptions=False) as plain:
        response = plain.post("/v1/entities", json={"text": "x"}, headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {
        "code": 500,
        "type": "InternalServerError",
        "message": "internal error of the gateway (ZeroDivisionError)",
    }


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
    cors_client = make_client(cors_origins=["https://app.example"])
    allowed = cors_client.options("/v1/entities", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    # A page of that origin may read the handler's response headers.
    answer = cors_client.post("/v1/entities", json={"text": "x"}, headers={**AUTH, "Origin": "https://app.example"})
    assert {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")} == set(RESPONSE_HEADERS)


def test_openapi_schema_lists_the_http_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/ready", "/v1/labels", "/v1/entities", "/v1/stream"}
    assert client.head("/health").status_code == 200


def test_openapi_request_body_lists_the_options_inline(client):
    body = client.get("/openapi.json").json()["paths"]["/v1/entities"]["post"]["requestBody"]
    properties = body["content"]["application/json"]["schema"]["properties"]
    assert "$ref" not in str(body)  # the OpenAPI document has no $defs for a reference to resolve
    assert properties["aggregation"]["anyOf"][0]["enum"] == [member.value for member in Aggregation]
    assert properties["format"]["anyOf"][0]["enum"] == [member.value for member in OutputFormat]


def test_unknown_paths_use_the_error_shape(client):
    assert client.get("/nope").json() == {"code": 404, "type": "NotFound", "message": "Not Found"}


def test_disabled_auth_is_announced_loudly(make_client, caplog):
    caplog.set_level(logging.INFO)
    client = make_client(auth_disabled=True, api_keys={})
    assert client.post("/v1/entities", json={"text": "x"}).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "gateway"]
    assert warnings and "AUTHENTICATION IS DISABLED" in warnings[0].getMessage()


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


def test_the_demo_page_knows_the_protocol_label_of_text_between_entities():
    assert f'const OTHER_SEGMENT = "{OTHER_SEGMENT}";' in PAGE.read_text(encoding="utf-8")
