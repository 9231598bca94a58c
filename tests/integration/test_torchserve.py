"""The real thing: scripts/archive.py's .mar in a real TorchServe, over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import requests

from tests.support.handler_harness import load_handler, run_batch

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


def predict(server, body=None, **kwargs):
    if body is not None:
        kwargs["json"] = body
    return requests.post(f"{server.inference}/predictions/ner_model", timeout=120, **kwargs)


def expected_entities(checkpoint, texts):
    handler = load_handler(checkpoint)
    responses, _ = run_batch(handler, [{"body": {"text": t}} for t in texts])
    return [r["entities"] for r in responses]


def strip_scores(entities):
    return [(e["label"], e["text"], e["start"], e["end"]) for e in entities]


def test_single_requests_in_every_body_form(tiny_server, tiny_checkpoint):
    text = SENTENCES[0]
    (expected,) = expected_entities(tiny_checkpoint, [text])
    as_json = predict(tiny_server, {"text": text})
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    assert strip_scores(as_json.json()["entities"]) == strip_scores(expected)
    plain = predict(tiny_server, data=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"})
    raw = predict(tiny_server, data=text.encode(), headers={"Content-Type": "application/octet-stream"})
    multipart = predict(tiny_server, files={"data": ("doc.txt", text.encode())})
    for response in (plain, raw, multipart):
        assert response.status_code == 200, response.text
        assert strip_scores(response.json()["entities"]) == strip_scores(expected)
    assert predict(tiny_server, {"text": ""}).json() == {"entities": []}


def test_concurrent_requests_are_batched_and_equal_single_results(tiny_server, tiny_checkpoint):
    texts = (SENTENCES * 4)[:32]
    expected = expected_entities(tiny_checkpoint, texts)
    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda t: predict(tiny_server, {"text": t}), texts))
    assert [r.status_code for r in responses] == [200] * len(texts)
    batch_sizes = [int(r.headers["X-NER-Batch-Size"]) for r in responses]
    assert max(batch_sizes) > 1, f"no dynamic batching observed: {batch_sizes}"
    for response, want in zip(responses, expected, strict=True):
        got = response.json()["entities"]
        assert strip_scores(got) == strip_scores(want)
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(got, want, strict=True))


def test_bad_requests_in_a_batch_fail_alone(tiny_server):
    bad = [
        dict(data=b"\xff\xfe\xfd", headers={"Content-Type": "application/octet-stream"}),
        dict(data=b'{"text": ', headers={"Content-Type": "application/json"}),
        dict(json={"text": 5}),
        dict(json={"no_text": "x"}),
        dict(json={"text": "x", "aggregation": "mean"}),
        dict(json={"text": "y" * 100_001}),
    ]
    good = [dict(json={"text": t}) for t in SENTENCES[:6]]
    calls = [x for pair in zip(good, bad, strict=True) for x in pair]
    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda kwargs: predict(tiny_server, **kwargs), calls))
    statuses = [r.status_code for r in responses]
    assert statuses[0::2] == [200] * 6
    assert statuses[1::2] == [400, 400, 400, 400, 400, 413]
    for response in responses[1::2]:
        body = response.json()
        assert body["code"] == response.status_code and body["message"]
    assert max(int(r.headers.get("X-NER-Batch-Size", 1)) for r in responses) > 1


def test_a_50000_character_document(tiny_server):
    sentence = "john smith flew from new york to paris with mary and aspirin. "
    text = (sentence * (50_000 // len(sentence) + 1))[:50_000]
    response = predict(tiny_server, {"text": text, "format": "segments"})
    assert response.status_code == 200, response.text[:500]
    segments = response.json()["segments"]
    assert "".join(s["text"] for s in segments) == text
    entities = predict(tiny_server, {"text": text}).json()["entities"]
    assert entities and entities[-1]["end"] > 49_000
    assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    assert all(a["end"] <= b["start"] for a, b in pairwise(entities))
    assert [e for e in (s for s in segments if s["label"] != "other")] == entities


def test_segments_format(tiny_server):
    text = SENTENCES[0]
    entities = predict(tiny_server, {"text": text}).json()["entities"]
    segments = predict(tiny_server, {"text": text, "format": "segments"}).json()["segments"]
    assert "".join(s["text"] for s in segments) == text
    assert [s for s in segments if s["label"] != "other"] == entities
    assert all(a["end"] == b["start"] for a, b in pairwise(segments))
    others = [s for s in segments if s["label"] == "other"]
    assert others and all(s["score"] is None for s in others)


def test_project_log_config_keeps_the_access_log_and_drops_per_request_debug_lines(tiny_server):
    """log4j2.xml is in effect: requests reach the access log once each, TorchServe's per-request DEBUG lines and
    its echo of every metric line are gone (its built-in configuration writes them, three times each)."""
    marker = "/predictions/ner_model"
    logs = tiny_server.workdir / "logs"
    before = (logs / "access_log.log").read_text().count(marker)
    for _ in range(3):
        assert predict(tiny_server, {"text": SENTENCES[0]}).status_code == 200
    assert (logs / "access_log.log").read_text().count(marker) == before + 3
    ts_log = (logs / "ts_log.log").read_text()
    assert "Torchserve version" in ts_log
    assert "Waiting time ns" not in ts_log and "result=[METRICS]" not in ts_log
