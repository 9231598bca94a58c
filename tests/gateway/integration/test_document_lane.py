"""The document lane over a real TorchServe: a long text sent to the gateway is served by ``ner_model_documents``
(the same archive under its own name and batching), a short one by ``ner_model``, with the same entities as
TorchServe's own answer; TorchServe's per-model request counters say which lane served what. The lane's workers
run at a lower CPU priority than the model's."""

from __future__ import annotations

import os

import httpx2
import pytest

from nerserve.priority import DEFAULT_DOCUMENT_LANE_NICENESS
from nerserve.protocol import DEFAULT_DOCUMENT_BYTES, document_lane
from tests.support.live_gateway import GatewayProcess, gateway_environment
from tests.support.prometheus_text import scrape, value

LANE = document_lane("ner_model")
SENTENCE = "Angela Merkel met Tim Cook in Berlin. "
DOCUMENT = SENTENCE * (DEFAULT_DOCUMENT_BYTES // len(SENTENCE) + 1)


def served(server, model: str) -> float:
    return value(scrape(server.metrics), "ts_inference_requests_total", model_name=model)


@pytest.fixture
def lane(tiny_server):
    register = httpx2.post(
        f"{tiny_server.management}/models",
        params={"url": "ner_model.mar", "model_name": LANE, "initial_workers": 1, "synchronous": "true"},
        timeout=120,
    )
    assert register.status_code == 200, register.text
    yield LANE
    httpx2.delete(f"{tiny_server.management}/models/{LANE}/1.0", timeout=120)


def test_a_document_is_served_by_the_document_lane_and_a_sentence_by_the_model(
    lane, tiny_server, gateway_token, tiny_checkpoint, tmp_path
):
    gateway = GatewayProcess(
        tmp_path,
        gateway_environment(
            tiny_server,
            gateway_token,
            model_dir=str(tiny_checkpoint),
        ),
    ).start()
    try:
        before = {model: served(tiny_server, model) for model in ("ner_model", lane)}
        headers = {"Authorization": f"Bearer {gateway_token}"}
        with httpx2.Client(timeout=120) as http:
            document = http.post(f"{gateway.url}/v1/entities", json={"text": DOCUMENT}, headers=headers)
            sentence = http.post(f"{gateway.url}/v1/entities", json={"text": SENTENCE}, headers=headers)
            direct = http.post(f"{tiny_server.inference}/predictions/ner_model", json={"text": DOCUMENT})
        after = {model: served(tiny_server, model) for model in ("ner_model", lane)}
    finally:
        gateway.stop()
    assert document.status_code == sentence.status_code == direct.status_code == 200
    assert document.json() == direct.json()  # same archive, same entities
    # The gateway's document went to the lane; its sentence and the direct document to the model.
    assert after[lane] - before[lane] == 1
    assert after["ner_model"] - before["ner_model"] == 2


def worker_niceness(server, model: str) -> list[int]:
    described = httpx2.get(f"{server.management}/models/{model}", timeout=30).json()
    return [os.getpriority(os.PRIO_PROCESS, int(worker["pid"])) for worker in described[0]["workers"]]


def test_the_lanes_workers_yield_the_cores_to_the_models(lane, tiny_server):
    model = worker_niceness(tiny_server, "ner_model")
    assert model and set(model) == {0}
    assert worker_niceness(tiny_server, lane) == [DEFAULT_DOCUMENT_LANE_NICENESS]
