"""The handler's own metrics on TorchServe's /metrics move by exactly what known requests should cause."""

from __future__ import annotations

import requests

from nerserve.tokenization import encode_batch, load_tokenizer
from tests.support.polling import wait_until
from tests.support.prometheus_text import parse, scrape, value

NAME = {"ModelName": "ner_model", "ModelVersion": "1.0"}


def test_ner_metrics_count_known_requests(tiny_server, tiny_checkpoint):
    texts = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew to paris", "x " * 100]
    tokenizer = load_tokenizer(tiny_checkpoint, 64)
    pieces = [len(p) for p in encode_batch(tokenizer, texts)]
    windows = [1 + max(0, -(-(n - 62) // (62 - 31))) for n in pieces]  # windows of 62 pieces, overlap 31
    before = scrape(tiny_server.metrics)
    entities = 0
    for text in texts:  # one at a time: each is its own handler batch
        response = requests.post(f"{tiny_server.inference}/predictions/ner_model", json={"text": text}, timeout=60)
        assert response.status_code == 200
        entities += len(response.json()["entities"])
    for bad in ({"text": 1}, {"nope": "x"}):
        assert requests.post(f"{tiny_server.inference}/predictions/ner_model", json=bad, timeout=60).status_code == 400

    def moved():
        # Metrics reach /metrics asynchronously: the frontend reads them from the worker's log.
        samples = scrape(tiny_server.metrics)
        client_errors = value(samples, "NerRequests", Outcome="client_error", **NAME)
        return samples if client_errors - value(before, "NerRequests", Outcome="client_error", **NAME) >= 2 else None

    after = wait_until(moved, 30, "both client errors on TorchServe's /metrics", interval=0.5)

    def delta(name, **labels):
        return value(after, name, **labels, **NAME) - value(before, name, **labels, **NAME)

    assert delta("NerRequests", Outcome="ok") == 3
    assert delta("NerRequests", Outcome="client_error") == 2
    assert delta("NerEntitiesPerRequest_count") == 3
    assert delta("NerEntitiesPerRequest_sum") == entities
    assert delta("NerWordPiecesPerRequest_sum") == sum(pieces)
    assert delta("NerWindowsPerRequest_sum") == sum(windows) and sum(windows) > 3
    assert delta("NerRequestsPerBatch_count") == 5
    assert delta("NerRequestsPerBatch_sum") == 5
    for stage in ("Preprocess", "Inference", "Postprocess"):
        assert delta(f"Ner{stage}Seconds_count") == 5
        assert delta(f"Ner{stage}Seconds_sum") > 0
    assert value(after, "ts_inference_requests_total", model_name="ner_model") >= 5


def test_prometheus_text_parser():
    samples = parse('# HELP x\nfoo{a="1",b="x\\"y"} 3.0\nbar 2\nfoo{a="2"} 4\n')
    assert value(samples, "foo") == 7.0 and value(samples, "foo", a="1") == 3.0 and value(samples, "bar") == 2.0
