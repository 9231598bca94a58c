"""KServe's TorchServe runtime, short of KServe: a real TorchServe started from exactly the storageUri layout that
scripts/kserve_layout.py writes, the way the kserve-torchserve runtime starts it, answering KServe v1 and v2 bodies.

KServe itself cannot run here. What differs from a pod, and why:
* the ports: the layout's config.properties binds 8085 (inference and management), 8082 (metrics) and gRPC's
  7070/7071 on all interfaces; tests never bind fixed ports, so this copy has free ports on 127.0.0.1 in their
  place, every other line unchanged;
* the paths: the layout is written with ``--mount-path`` set to its own directory instead of /mnt/models, so its
  model_store and metrics_config point into it (KServe's storage initializer would put it at /mnt/models);
* the JVM's temporary directory (worker sockets) comes from JAVA_TOOL_OPTIONS, so that instances running side by
  side do not share sockets.
As in the runtime, TS_SERVICE_ENVELOPE is set (to kservev2): the layout's enable_envvars_config=false keeps
TorchServe's envelope, which serves only the first request of a batch, off.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from nertools.kserve import build_layout
from nertools.local_torchserve import VENV_BIN, TorchServe
from nertools.ready import wait_ready
from nertools.torchserve import read_properties
from tests.support.handler_harness import load_handler, run_batch
from tests.support.polling import wait_until
from tests.support.prometheus_text import scrape
from tests.support.torchserve import build_archive

TEXTS = [
    "Angela Merkel met Tim Cook in Berlin.",
    "john smith flew from new york to paris today",
    "Mary took aspirin in London",
    "The company of José in Zürich said hello.",
    "東京 and 北京 are a city",
    "rome",
]
PORT_LINES = {
    "inference_address": "inference",
    "management_address": "inference",  # the layout serves both APIs on one port, as KServe's runtime expects
    "metrics_address": "metrics",
    "grpc_inference_port": "grpc_inference",
    "grpc_management_port": "grpc_management",
}


class LayoutTorchServe(TorchServe):
    """TorchServe started as KServe's runtime starts it, from a layout's config/ and model-store/."""

    def __init__(self, workdir: Path, layout: Path) -> None:
        super().__init__(workdir, layout / "model-store", "ner_model")
        self.layout = layout
        self.management = self.inference

    def env(self) -> dict[str, str]:
        env = super().env()
        env["TS_SERVICE_ENVELOPE"] = "kservev2"  # what the runtime sets for protocolVersion v2
        env["JAVA_TOOL_OPTIONS"] = f"-Djava.io.tmpdir={self.tmpdir}"
        return env

    def start(self, timeout: float = 240) -> LayoutTorchServe:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        lines = []
        for line in (self.layout / "config" / "config.properties").read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0]
            if key in PORT_LINES:
                port = self.ports[PORT_LINES[key]]
                line = re.sub(r"0\.0\.0\.0:\d+$", f"127.0.0.1:{port}", line) if "address" in key else f"{key}={port}"
            lines.append(line)
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # The runtime's arguments, with --foreground so that the server stays this test's child.
        command = [
            str(VENV_BIN / "torchserve"),
            "--start",
            "--foreground",
            f"--model-store={self.model_store}",
            f"--ts-config={self.config}",
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        process = self.process
        if not wait_ready(self.management, "ner_model", timeout, alive=lambda: process.poll() is None):
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"TorchServe from the KServe layout got no READY worker in {timeout}s:\n{tail}")
        return self


@pytest.fixture(scope="module")
def layout(tmp_path_factory, tiny_checkpoint) -> Path:
    workdir = tmp_path_factory.mktemp("kserve_layout")
    mar = build_archive(tiny_checkpoint, workdir / "archive")
    storage = workdir / "storage"
    build_layout(mar, storage, mount_path=str(storage))
    return storage


@pytest.fixture(scope="module")
def kserve_server(tmp_path_factory, layout, java_available):
    server = LayoutTorchServe(tmp_path_factory.mktemp("kserve_ts"), layout).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def expected(tiny_checkpoint):
    """Each text's entities from the handler in-process, one text per request."""
    handler = load_handler(tiny_checkpoint)
    responses, _ = run_batch(handler, [{"body": {"text": text}} for text in TEXTS])
    return {text: response["entities"] for text, response in zip(TEXTS, responses, strict=True)}


def spans(entities):
    return [(e["label"], e["text"], e["start"], e["end"]) for e in entities]


def v1_body(i):
    texts = [TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]]
    return {"instances": [texts[0], {"text": 42}, {"text": texts[1], "aggregation": "first"}]}, texts


def v2_body(i):
    texts = [TEXTS[i % len(TEXTS)], TEXTS[(i + 2) % len(TEXTS)]]
    body = {
        "id": f"request-{i}",
        "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": [texts[0], None, texts[1]]}],
    }
    return body, texts


def test_the_layout_is_what_kserves_runtime_reads(layout):
    assert sorted(str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file()) == [
        "config/config.properties",
        "config/metrics.yaml",
        "model-store/ner_model.mar",
    ]
    properties = read_properties(layout / "config" / "config.properties")
    assert properties["inference_address"] == properties["management_address"] == "http://0.0.0.0:8085"
    assert properties["enable_envvars_config"] == "false"
    assert json.loads(properties["model_snapshot"])["models"]["ner_model"]["1.0"]["marName"] == "ner_model.mar"


def test_concurrent_v1_and_v2_requests_on_every_route_are_batched_and_answered_per_text(kserve_server, expected):
    """24 concurrent requests of 3 texts each (one bad): KServe v1 on its route, v2 on its route, and both on
    /predictions. Every text is answered; each bad one has its own error; batches of more than one request reach
    the handler."""
    base = kserve_server.inference
    calls = []
    for i in range(24):
        kind = ("v1", "v2")[i % 2]
        body, texts = v1_body(i) if kind == "v1" else v2_body(i)
        if i % 3 == 2:
            url = f"{base}/predictions/ner_model"
        elif kind == "v1":
            url = f"{base}/v1/models/ner_model:predict"
        else:
            url = f"{base}/v2/models/ner_model/infer"
        calls.append((kind, url, body, texts))
    before = batch_metric(kserve_server)
    with requests.Session() as warm:  # one answer before the burst, so the burst meets READY workers only
        assert warm.post(calls[0][1], json=calls[0][2], timeout=60).status_code == 200
    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda call: requests.post(call[1], json=call[2], timeout=120), calls))

    batch_sizes = []
    for (kind, url, body, texts), response in zip(calls, responses, strict=True):
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["content-type"].startswith("application/json")
        batch_sizes.append(int(response.headers["X-NER-Batch-Size"]))
        answer = response.json()
        if kind == "v1":
            first, bad, last = answer["predictions"]
            assert bad["code"] == 400 and bad["type"] == "BadRequest"
            assert bad["message"] == "instances[1]: field 'text' must be a string, got number"
        else:
            assert (answer["model_name"], answer["model_version"], answer["id"]) == ("ner_model", "1.0", body["id"])
            (output,) = answer["outputs"]
            assert (output["name"], output["shape"], output["datatype"]) == ("ner", [3], "BYTES")
            first, bad, last = (json.loads(text) for text in output["data"])
            assert bad == {
                "code": 400,
                "type": "BadRequest",
                "message": "inputs[0].data[1]: a text must be a string, got null",
            }
        assert spans(first["entities"]) == spans(expected[texts[0]])
        assert spans(last["entities"]) == spans(expected[texts[1]])
    assert max(batch_sizes) > 1, f"no dynamic batching observed: {batch_sizes}"

    def all_counted():
        # Metrics reach /metrics asynchronously: the frontend reads them from the worker's log.
        batches, handled = (now - then for now, then in zip(batch_metric(kserve_server), before, strict=True))
        return (batches, handled) if handled >= len(calls) + 1 else None

    batches, handled = wait_until(all_counted, 30, "every request in NerRequestsPerBatch", interval=0.5)
    assert handled / batches > 1, f"{handled} requests reached the handler in {batches} batches"


def batch_metric(server):
    """(handler batches, requests in them) so far: NerRequestsPerBatch's _count and _sum on TorchServe's /metrics."""
    samples = scrape(server.metrics)
    return tuple(
        sum(value for name, _, value in samples if name == f"NerRequestsPerBatch_{part}") for part in ("count", "sum")
    )


def test_a_request_over_the_limits_is_413_with_the_numbers_on_the_kserve_routes(kserve_server):
    base = kserve_server.inference
    too_many = requests.post(f"{base}/v1/models/ner_model:predict", json={"instances": ["rome"] * 65}, timeout=60)
    assert too_many.status_code == 413
    assert "the request has 65 texts, the limit is 64" in too_many.json()["message"]
    too_long = requests.post(
        f"{base}/v2/models/ner_model/infer",
        json={"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["a" * 60_000, "b" * 40_001]}]},
        timeout=60,
    )
    assert too_long.status_code == 413
    assert "the request's texts have 100001 characters in all, the limit is 100000" in too_long.json()["message"]


def test_single_text_bodies_still_work_on_every_route(kserve_server, expected):
    base = kserve_server.inference
    for url in (
        f"{base}/predictions/ner_model",
        f"{base}/v1/models/ner_model:predict",
        f"{base}/v2/models/ner_model/infer",
    ):
        response = requests.post(url, json={"text": TEXTS[0]}, timeout=60)
        assert response.status_code == 200, (url, response.text[:300])
        assert spans(response.json()["entities"]) == spans(expected[TEXTS[0]])
