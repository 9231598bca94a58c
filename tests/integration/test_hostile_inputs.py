"""Hostile bodies sent to a real TorchServe at the same time as normal requests: every hostile request gets its own
4xx, every normal one its 200 (TorchServe's 503 "Prediction failed" for a whole batch must never happen)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from nerserve.settings import DEFAULT_MAX_TEXT_PIECES

DEPTH = 1_000
NORMAL = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew from new york to paris today", "rome"]
HOSTILE = [
    # Exact application/json: TorchServe's own parser fails on 1,000 levels and forwards the bytes.
    (dict(data=b"[" * DEPTH + b"]" * DEPTH, headers={"Content-Type": "application/json"}), 400),
    (dict(data=b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, headers={"Content-Type": "application/json"}), 400),
    # Any other JSON type arrives as bytes and is parsed by the handler.
    (dict(data=b"[" * DEPTH + b"]" * DEPTH, headers={"Content-Type": "application/json; charset=utf-8"}), 400),
    (
        dict(data=b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, headers={"Content-Type": "application/json; charset=utf-8"}),
        400,
    ),
    # 900 levels: TorchServe's parser manages them and hands the handler a parsed value that deep.
    (
        dict(
            data=b'{"text": "x", "aggregation": ' + b"[" * 900 + b"]" * 900 + b"}",
            headers={"Content-Type": "application/json"},
        ),
        400,
    ),
    # Within max_text_chars, over max_text_pieces: one word piece per character.
    (dict(json={"text": "a," * (DEFAULT_MAX_TEXT_PIECES // 2 + 1)}), 413),
]


def post(server, kwargs):
    return requests.post(f"{server.inference}/predictions/ner_model", timeout=120, **kwargs)


def test_hostile_bodies_among_normal_requests_fail_alone(tiny_server):
    calls = []
    for round_ in range(3):
        for index, (hostile, status) in enumerate(HOSTILE):
            calls.append((dict(json={"text": NORMAL[(round_ + index) % len(NORMAL)]}), 200))
            calls.append((hostile, status))
            calls.append((dict(json={"text": NORMAL[index % len(NORMAL)]}), 200))
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda call: post(tiny_server, call[0]), calls))
    got = [response.status_code for response in responses]
    assert got == [status for _, status in calls], [r.text[:200] for r in responses if r.status_code >= 500]
    for response, (_, status) in zip(responses, calls, strict=True):
        body = response.json()
        if status == 200:
            assert "entities" in body
        else:
            assert body["code"] == status and body["message"]
    over = [r.json()["message"] for r, (_, status) in zip(responses, calls, strict=True) if status == 413]
    limit = DEFAULT_MAX_TEXT_PIECES
    assert over[0] == f"the text has {limit + 2:,} word pieces, the limit is {limit:,}; split it"
    assert max(int(r.headers.get("X-NER-Batch-Size", 1)) for r in responses) > 1, "no batch mixed them"
