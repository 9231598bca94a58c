"""The demo model served through our handler and a real TorchServe (needs scripts/build_demo_model.py's output).

scripts/test.sh builds the demo model first, so these run in CI; a bare `pytest` without it skips them.
"""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import requests

from demo_model.evaluation import EntityDict, evaluate, load_eval_set
from tests.support.handler_harness import load_handler, run_batch
from tests.support.paths import DEMO_MODEL_DIR

METRICS = DEMO_MODEL_DIR / "demo_model_metrics.json"
MERKEL = "Angela Merkel met Tim Cook in Berlin."
MERKEL_ENTITIES = [("PER", "Angela Merkel", 0, 13), ("PER", "Tim Cook", 18, 26), ("LOC", "Berlin", 30, 36)]

pytestmark = [
    pytest.mark.demo,
    pytest.mark.skipif(not METRICS.is_file(), reason="no demo model: run scripts/build_demo_model.py"),
]


@pytest.fixture(scope="module")
def demo_handler():
    return load_handler(DEMO_MODEL_DIR)


def spans(entities):
    return [(e["label"], e["text"], e["start"], e["end"]) for e in entities]


def test_the_readme_sentence(demo_handler):
    responses, _ = run_batch(demo_handler, [{"body": {"text": MERKEL}}])
    assert spans(responses[0]["entities"]) == MERKEL_ENTITIES


def test_our_serving_path_reproduces_the_build_evaluation(demo_handler):
    """The build evaluated with transformers' pipeline; our handler must score the same on the held-out set."""

    def predict(texts: list[str]) -> list[list[EntityDict]]:
        responses, _ = run_batch(demo_handler, [{"body": {"text": t}} for t in texts])
        return [[{"label": e["label"], "start": e["start"], "end": e["end"]} for e in r["entities"]] for r in responses]

    ours = evaluate(predict, load_eval_set())
    recorded = json.loads(METRICS.read_text())
    assert ours["micro"]["tp"] == recorded["micro"]["tp"]
    assert ours["micro"]["fp"] == recorded["micro"]["fp"]
    assert ours["micro"]["fn"] == recorded["micro"]["fn"]
    assert ours["micro"]["f1"] >= 0.9, ours["micro"]


@pytest.mark.integration  # a real TorchServe, like everything under an integration/ folder
def test_demo_archive_in_torchserve(tmp_path, java_available):
    from tests.support.torchserve import TorchServe, build_archive

    store = tmp_path / "store"
    build_archive(DEMO_MODEL_DIR, store)
    server = TorchServe(tmp_path, store, "ner_model=ner_model.mar").start()
    try:
        response = requests.post(f"{server.inference}/predictions/ner_model", json={"text": MERKEL}, timeout=60)
        assert response.status_code == 200
        assert spans(response.json()["entities"]) == MERKEL_ENTITIES
        long_doc = " ".join([MERKEL] * 400)  # ~15,000 characters, 10 windows of 512 word pieces
        entities = requests.post(
            f"{server.inference}/predictions/ner_model", json={"text": long_doc}, timeout=120
        ).json()["entities"]
        step = len(MERKEL) + 1
        expected = {
            (label, i * step + start, i * step + end) for i in range(400) for label, _, start, end in MERKEL_ENTITIES
        }
        found = {(e["label"], e["start"], e["end"]) for e in entities}
        # A model is not perfectly stable on 400 repetitions (it splits "Angela Merkel" a few times), so require
        # near-complete recall rather than equality; the structure must hold exactly.
        assert len(found & expected) >= 0.98 * len(expected)
        assert all(long_doc[e["start"] : e["end"]] == e["text"] for e in entities)
        assert all(a["end"] <= b["start"] for a, b in pairwise(entities))
    finally:
        server.stop()


@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_segments_of_multi_piece_characters_cover_the_text(demo_handler, aggregation):
    """The demo model's uncased vocabulary splits a Hangul syllable into 2-3 jamo pieces with the same offsets;
    with "simple" each piece is its own unit, and overlapping entities used to crash the segments format (503 for
    the whole batch)."""
    text = "서울에서 김민수 씨가 삼성전자를 방문했다. Seoul 한국"
    responses, statuses = run_batch(
        demo_handler, [{"body": {"text": text, "aggregation": aggregation, "format": "segments"}}]
    )
    assert statuses == [(200, None)]
    segments = responses[0]["segments"]
    assert "".join(s["text"] for s in segments) == text
    assert all(a["end"] == b["start"] for a, b in pairwise(segments))
