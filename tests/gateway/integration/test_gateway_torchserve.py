"""The real gateway process in front of the real TorchServe: results equal TorchServe's own, over every protocol."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import httpx2
import pytest
import requests
import websockets
from websockets.asyncio.client import connect

from nertools.ports import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

SENTENCES = [
    "Angela Merkel met Tim Cook in Berlin.",
    "john smith flew from new york to paris today",
    "Mary took aspirin in London",
    "The company of José in Zürich said hello.",
    "東京 and 北京 are a city",
    "Hello 😀 world paris",
    "rome",
    "",
]
DOCUMENT = "\n\n".join(
    [
        "Angela Merkel met Tim Cook in Berlin. They spoke about aspirin and ibuprofen. Mary was there too.",
        "john smith flew from new york to paris today. In Paris he met José from Zürich, a doctor.",
        "The company said hello to the world. Rome and London are a city; so is 東京. Tim Cook left.",
        "Later, Mary Smith took aspirin in London with John. The city was new. " * 3,
    ]
)


def direct(server, text: str, **options) -> dict:
    response = requests.post(f"{server.inference}/predictions/ner_model", json={"text": text, **options}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def without_scores(items):
    return [(e["label"], e["text"], e["start"], e["end"]) for e in items]


def assert_same(actual: list[dict], expected: list[dict]) -> None:
    assert without_scores(actual) == without_scores(expected)
    assert [e["score"] for e in actual] == pytest.approx([e["score"] for e in expected], abs=1e-4)


def test_rest_equals_torchserve(gateway, gateway_token, tiny_server):
    auth = {"Authorization": f"Bearer {gateway_token}"}
    for text in SENTENCES:
        response = requests.post(f"{gateway.url}/v1/entities", json={"text": text}, headers=auth, timeout=60)
        assert response.status_code == 200, response.text
        assert_same(response.json()["entities"], direct(tiny_server, text)["entities"])
    # 4xx from TorchServe's handler come back with its status and message
    bad = requests.post(
        f"{gateway.url}/v1/entities", json={"text": "x", "aggregation": "best"}, headers=auth, timeout=60
    )
    assert bad.status_code == 400 and "aggregation" in bad.json()["message"]
    plain = requests.post(
        f"{gateway.url}/v1/entities",
        data=SENTENCES[0].encode(),
        timeout=60,
        headers={**auth, "Content-Type": "text/plain; charset=utf-8"},
    )
    assert_same(plain.json()["entities"], direct(tiny_server, SENTENCES[0])["entities"])


def test_ready_and_labels(gateway, gateway_token):
    ready = requests.get(f"{gateway.url}/ready", timeout=30)
    assert ready.status_code == 200 and ready.json()["ready_workers"] == 1
    labels = requests.get(f"{gateway.url}/v1/labels", headers={"Authorization": f"Bearer {gateway_token}"}, timeout=30)
    assert labels.json() == {"labels": ["DRUG", "PER", "CITY"], "source": "checkpoint"}


def test_websocket_results_equal_torchserve(gateway, gateway_token, tiny_server):
    async def run() -> dict:
        async with connect(
            f"{gateway.ws_url}/ws/entities", proxy=None, subprotocols=["ner.v1", f"bearer.{gateway_token}"]
        ) as ws:
            assert ws.subprotocol == "ner.v1"
            for round_ in range(3):  # all in flight at once: they meet in TorchServe's batches
                for i, text in enumerate(SENTENCES):
                    await ws.send(json.dumps({"id": f"{round_}-{i}", "text": text}))
                await ws.send(json.dumps({"id": f"{round_}-seg", "text": SENTENCES[0], "format": "segments"}))
            return {reply["id"]: reply for reply in [json.loads(await ws.recv()) for _ in range(3 * 9)]}

    replies = asyncio.run(run())
    expected = {i: direct(tiny_server, text)["entities"] for i, text in enumerate(SENTENCES)}
    for round_ in range(3):
        for i in range(len(SENTENCES)):
            assert_same(replies[f"{round_}-{i}"]["entities"], expected[i])
        segments = replies[f"{round_}-seg"]["segments"]
        assert "".join(s["text"] for s in segments) == SENTENCES[0]
        assert without_scores(segments) == without_scores(
            direct(tiny_server, SENTENCES[0], format="segments")["segments"]
        )


def test_websocket_close_codes_over_a_real_server(gateway, gateway_token):
    async def close_code(url: str, message: str | None = None, **kwargs) -> int:
        async with connect(url, proxy=None, max_size=None, **kwargs) as ws:
            if message is not None:
                await ws.send(message)
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            return closed.value.rcvd.code

    url = f"{gateway.ws_url}/ws/entities"
    assert asyncio.run(close_code(url)) == 1008
    assert asyncio.run(close_code(url, subprotocols=["ner.v1", "bearer.it.wrong-secret-0123456789"])) == 1008
    too_big = "x" * (1_300_000 + 1)  # the default NER_GATEWAY_MAX_MESSAGE_BYTES, enforced by uvicorn itself
    assert (
        asyncio.run(close_code(url, too_big, additional_headers={"Authorization": f"Bearer {gateway_token}"})) == 1009
    )


def test_sse_multi_paragraph_document_in_order_with_document_offsets(gateway, gateway_token, tiny_server):
    events = []
    with httpx2.Client(timeout=60) as client:
        with client.sse(
            f"{gateway.url}/v1/stream",
            method="POST",
            json={"text": DOCUMENT},
            headers={"Authorization": f"Bearer {gateway_token}"},
        ) as source:
            events = [(event.event, event.data) for event in source]
    assert events[-1] == ("message", "[DONE]")
    assert all(name == "message" for name, _ in events)
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert len(chunks) >= 4 and [c["chunk"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0]["start"] == 0 and chunks[-1]["end"] == len(DOCUMENT)
    found = 0
    for chunk in chunks:
        assert chunk["end"] - chunk["start"] <= 120 and chunk["chunks"] == len(chunks)
        for entity in chunk["entities"]:
            assert DOCUMENT[entity["start"] : entity["end"]] == entity["text"]
            found += 1
        # Each chunk's answer is TorchServe's answer for that chunk's text, moved to document offsets.
        expected = direct(tiny_server, DOCUMENT[chunk["start"] : chunk["end"]])["entities"]
        assert without_scores(chunk["entities"]) == [
            (e["label"], e["text"], e["start"] + chunk["start"], e["end"] + chunk["start"]) for e in expected
        ]
    assert found > 0


def test_sse_get_for_event_source(gateway, gateway_token, tiny_server):
    with httpx2.Client(timeout=60) as client:
        with client.sse(f"{gateway.url}/v1/stream", params={"text": SENTENCES[0], "token": gateway_token}) as source:
            events = [event.data for event in source]
    assert events[-1] == "[DONE]"
    assert_same(json.loads(events[0])["entities"], direct(tiny_server, SENTENCES[0])["entities"])


def test_gateway_script_start_status_stop(tiny_server, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NER_GATEWAY_")}
    env.update(
        NER_GATEWAY_PORT=str(port),
        NER_GATEWAY_STATE_DIR=str(tmp_path / "state"),
        NER_GATEWAY_LOG_DIR=str(tmp_path / "logs"),
        NER_TS_CONFIG=str(tiny_server.config),
    )
    script = str(ROOT / "scripts" / "gateway.sh")

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([script, command], env=env, capture_output=True, text=True, timeout=120)

    started = run("start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"gateway is up at http://127.0.0.1:{port}" in started.stdout
        key = (tmp_path / "state" / "api_key").read_text().strip()
        assert oct((tmp_path / "state" / "api_key").stat().st_mode & 0o777) == "0o600"
        # The TorchServe URLs came from NER_TS_CONFIG: predictions work through the script's gateway.
        response = requests.post(
            f"http://127.0.0.1:{port}/v1/entities",
            json={"text": SENTENCES[0]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert response.status_code == 200
        assert run("start").stdout.startswith("the gateway is already running")
        status = run("status")
        assert status.returncode == 0 and "/ready: ready" in status.stdout
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0 and "gateway stopped" in stopped.stdout
    assert run("status").returncode == 3
    assert key not in (tmp_path / "logs" / "gateway.log").read_text()


def test_gateway_script_reports_a_bad_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NER_GATEWAY_")}
    env.update(
        NER_GATEWAY_AUTH_DISABLED="1",
        NER_GATEWAY_HOST="0.0.0.0",
        NER_GATEWAY_PORT=str(free_port()),
        NER_GATEWAY_STATE_DIR=str(tmp_path / "state"),
        NER_GATEWAY_LOG_DIR=str(tmp_path / "logs"),
    )
    result = subprocess.run(
        [str(ROOT / "scripts" / "gateway.sh"), "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "not a loopback address" in result.stderr
    assert not (tmp_path / "state" / "gateway.pid").exists()


def test_gateway_script_warns_on_the_terminal_when_authentication_is_off(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NER_GATEWAY_")}
    env.update(
        NER_GATEWAY_AUTH_DISABLED="1",
        NER_GATEWAY_PORT=str(free_port()),
        NER_GATEWAY_STATE_DIR=str(tmp_path / "state"),
        NER_GATEWAY_LOG_DIR=str(tmp_path / "logs"),
        NER_TS_CONFIG=str(tmp_path / "absent.properties"),
    )
    script = str(ROOT / "scripts" / "gateway.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        warnings = [line for line in started.stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1 and "authentication is disabled" in warnings[0], started.stderr
        assert "API key" not in started.stdout and "gateway is up" in started.stdout
        assert not (tmp_path / "state" / "api_key").exists()
    finally:
        stopped = subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
