"""Parity with transformers' token-classification pipeline for every aggregation strategy (one-window texts)."""

import pytest

from tests.support.handler_harness import run_batch

TEXTS = [
    "Angela Merkel met Tim Cook in Berlin.",
    "angela merkel",  # entity at the very start and end
    "Café in Zürich with José and naïve über straße",
    "東京 met 北京 in 中国人",
    "John  Smith\tmet\nMary\n\nin Rome",  # double spaces, tab, newlines
    "Hello 😀 world 😀😀 paris",  # emoji -> [UNK]
    "ibuprofen aspirin ibuprofenaspirin",  # sub-words
    "Zu\u0308rich and e\u0301cole",  # decomposed accents: the pipeline's sub-word quirk
    "new york, paris, london and rome.",
    "Dr. Smith's company (Paris) — 3 cities!",
    "x",
    "",
]
STRATEGIES = ["first", "simple", "average", "max"]


@pytest.fixture(scope="module")
def pipelines(tiny_checkpoint):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    model = AutoModelForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    return {
        s: pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy=s, device=-1)
        for s in STRATEGIES
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_entities_equal_the_pipeline(strategy, pipelines, tiny_handler):
    items = [{"body": {"text": text, "aggregation": strategy}} for text in TEXTS]
    responses, statuses = run_batch(tiny_handler, items)  # one batch: parity holds under batching too
    assert all(s == (200, None) for s in statuses)
    compared = 0
    for text, response in zip(TEXTS, responses, strict=True):
        expected = pipelines[strategy](text) if text else []
        ours = response["entities"]
        assert [(e["label"], e["start"], e["end"]) for e in ours] == [
            (e["entity_group"], e["start"], e["end"]) for e in expected
        ], text
        for a, b in zip(ours, expected, strict=True):
            assert a["score"] == pytest.approx(float(b["score"]), abs=1e-4)
            assert a["text"] == text[a["start"] : a["end"]]
        compared += len(expected)
    assert compared > 10, "too few entities to compare; the fixture model should tag many pieces"
