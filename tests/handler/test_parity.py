"""Parity with transformers' token-classification pipeline for every aggregation strategy (one-window texts), with
forward passes padded and padding-free (``handler.forward``), on oneDNN's and torch's Linear kernels
(``handler.linear_kernels``); and the two modes agree on long texts too."""

import random

import pytest

from nerserve.settings import ForwardMode, LinearKernels
from tests.support.handler_harness import load_handler, run_batch
from tests.support.tiny_models import WORDS

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


@pytest.fixture(scope="module")
def handlers(tiny_checkpoint):
    return {mode: load_handler(tiny_checkpoint, {"handler": {"forward": mode.value}}) for mode in ForwardMode}


@pytest.fixture(scope="module")
def torch_kernel_handlers(tiny_checkpoint):
    return {
        mode: load_handler(tiny_checkpoint, {"handler": {"forward": mode.value, "linear_kernels": "torch"}})
        for mode in ForwardMode
    }


@pytest.mark.parametrize("kernels", list(LinearKernels))
@pytest.mark.parametrize("mode", list(ForwardMode))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_entities_equal_the_pipeline(strategy, mode, kernels, pipelines, handlers, torch_kernel_handlers):
    items = [{"body": {"text": text, "aggregation": strategy}} for text in TEXTS]
    handler = (handlers if kernels is LinearKernels.ONEDNN else torch_kernel_handlers)[mode]
    responses, statuses = run_batch(handler, items)  # one batch: parity holds under batching too
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


def random_texts(seed, count):
    """Texts from the tiny vocabulary in random order: every eighth of 100..150 words (several windows of the tiny
    model's 64 positions), the others of 1..30 words."""
    rng = random.Random(seed)
    sizes = [rng.randint(100, 150) if i % 8 == 0 else rng.randint(1, 30) for i in range(count)]
    rng.shuffle(sizes)
    return [" ".join(rng.choice(WORDS) for _ in range(size)) for size in sizes]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_packed_and_padded_forward_passes_give_the_same_entities(strategy, handlers):
    texts = random_texts(len(strategy), 40)
    items = [{"body": {"text": text, "aggregation": strategy}} for text in texts]
    for mode, handler in handlers.items():
        assert any(forward.packed for forward in handler.preprocess(items).passes) is (mode is ForwardMode.PACKED)
        assert any(len(windows) > 1 for windows in (doc.spans for doc in handler.preprocess(items).documents))
    packed, _ = run_batch(handlers[ForwardMode.PACKED], items)
    padded, _ = run_batch(handlers[ForwardMode.PADDED], items)
    assert sum(len(response["entities"]) for response in padded) > 100
    for a, b in zip(packed, padded, strict=True):
        assert [(e["label"], e["start"], e["end"]) for e in a["entities"]] == [
            (e["label"], e["start"], e["end"]) for e in b["entities"]
        ]
        assert [e["score"] for e in a["entities"]] == pytest.approx([e["score"] for e in b["entities"]], abs=1e-4)


@pytest.mark.parametrize("mode", list(ForwardMode))
def test_int8_serves_close_to_fp32_in_both_forward_modes(mode, tiny_checkpoint, handlers):
    """Int8 activations are quantized per pass, over padding too when padded: either way the labels mostly hold."""
    int8 = load_handler(tiny_checkpoint, {"handler": {"quantization": "int8_dynamic", "forward": mode.value}})
    items = [{"body": {"text": text}} for text in random_texts(5, 30)]
    fp32, _ = run_batch(handlers[ForwardMode.PADDED], items)
    quantized, statuses = run_batch(int8, items)
    assert all(status == (200, None) for status in statuses)
    found = [{(e["label"], e["start"]) for e in response["entities"]} for response in fp32]
    kept = [{(e["label"], e["start"]) for e in response["entities"]} for response in quantized]
    assert sum(len(a & b) for a, b in zip(found, kept, strict=True)) >= 0.9 * sum(len(a) for a in found)
