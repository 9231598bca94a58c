"""The handler in-process on a tiny random BERT, through TorchServe's own Context: batches, errors, long texts."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from nerserve.protocol import BATCH_SIZE_HEADER, MODEL_VERSION_HEADER
from nertools.handler_module import load_handler_module
from tests.support.handler_harness import load_handler, make_context, project_metrics_cache, run_batch

SENTENCES = [
    "Angela Merkel met Tim Cook in Berlin.",
    "john smith flew from new york to paris today",
    "Mary took aspirin in London",
    "",
    "The company of José in Zürich said hello.",
    "東京 and 北京 are a city",
]


def entities_of(handler, text, **options):
    responses, statuses = run_batch(handler, [{"body": {"text": text, **options}}])
    assert statuses == [(200, None)]
    return responses[0]["entities"]


def assert_same_entities(ours, expected):
    """The same entities; scores equal up to float rounding (a pass of other rows rounds differently)."""
    assert [{**e, "score": None} for e in ours] == [{**e, "score": None} for e in expected]
    assert [e["score"] for e in ours] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_batched_results_equal_single_request_results(tiny_handler):
    singles = [entities_of(tiny_handler, text) for text in SENTENCES]
    responses, statuses = run_batch(tiny_handler, [{"body": {"text": t}} for t in SENTENCES])
    assert statuses == [(200, None)] * len(SENTENCES)
    assert len(responses) == len(SENTENCES)
    for single, batched in zip(singles, responses, strict=True):
        assert [(e["label"], e["start"], e["end"]) for e in single] == [
            (e["label"], e["start"], e["end"]) for e in batched["entities"]
        ]
        for a, b in zip(single, batched["entities"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    assert any(r["entities"] for r in responses), "the tiny model should tag something, or this test proves nothing"


def test_entity_text_is_the_original_slice(tiny_handler):
    for text in SENTENCES:
        for entity in entities_of(tiny_handler, text):
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert set(entity) == {"label", "text", "start", "end", "score"}
            assert 0.0 < entity["score"] <= 1.0


def test_bad_requests_get_their_own_status_and_the_rest_are_served(tiny_handler):
    items = [
        {"body": {"text": SENTENCES[0]}},
        {"body": bytearray(b"\xc3\x28")},
        {"body": {"text": 42}},
        {"body": SENTENCES[1]},
        {},
        {"body": bytearray(b'{"text": "unterminated')},
        {"data": bytearray(SENTENCES[2].encode())},
    ]
    content_types = [None, None, None, "text/plain", None, "application/json", "multipart/form-data"]
    responses, statuses = run_batch(tiny_handler, items, content_types)
    assert [s[0] for s in statuses] == [200, 400, 400, 200, 400, 400, 200]
    for index in (1, 2, 4, 5):
        assert responses[index]["code"] == 400 and responses[index]["message"] == statuses[index][1]
    assert responses[0]["entities"] == entities_of(tiny_handler, SENTENCES[0])
    assert responses[3]["entities"] == entities_of(tiny_handler, SENTENCES[1])
    assert responses[6]["entities"] == entities_of(tiny_handler, SENTENCES[2])


def test_empty_and_whitespace_text_give_no_entities(tiny_handler):
    assert entities_of(tiny_handler, "") == []
    assert entities_of(tiny_handler, " \n\t ") == []


def test_text_over_the_limit_is_413_and_does_not_fail_the_batch(tiny_checkpoint):
    handler = load_handler(tiny_checkpoint, {"handler": {"max_text_chars": 50}})
    responses, statuses = run_batch(handler, [{"body": {"text": "x" * 51}}, {"body": {"text": "paris"}}])
    assert statuses[0][0] == 413 and responses[0]["code"] == 413
    assert statuses[1] == (200, None) and "entities" in responses[1]


def test_long_text_is_windowed_without_truncation_duplicates_or_cuts(tiny_handler):
    sentence = "john smith flew from new york to paris with mary. "
    text = sentence * 40  # ~500 word pieces, windows of 62 on the tiny model
    batch = tiny_handler.preprocess([{"body": {"text": text}}])
    assert len(batch.window_refs) > 5
    responses, statuses = run_batch(tiny_handler, [{"body": {"text": text, "format": "segments"}}])
    segments = responses[0]["segments"]
    assert statuses == [(200, None)]
    assert "".join(s["text"] for s in segments) == text  # every character is covered, in order
    entities = entities_of(tiny_handler, text)
    assert [(e["start"], e["end"]) for e in entities] == sorted({(e["start"], e["end"]) for e in entities})
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(entities))  # no overlaps, no duplicates
    assert entities[-1]["end"] > len(text) - 2 * len(sentence)  # the tail was labelled: nothing truncated


def test_a_long_text_and_short_ones_share_a_batch(tiny_handler, tiny_checkpoint):
    long_text = "paris and london and rome. " * 60
    items = [{"body": {"text": t}} for t in (SENTENCES[0], long_text, SENTENCES[2])]
    responses, _ = run_batch(tiny_handler, items)
    assert_same_entities(responses[0]["entities"], entities_of(tiny_handler, SENTENCES[0]))
    assert_same_entities(responses[1]["entities"], entities_of(tiny_handler, long_text))
    # With packed passes (the default) the short sentences' pass computes no padding at all; padded passes must not
    # pad short sentences to the long document's windows.
    assert any(forward.packed for forward in tiny_handler.preprocess(items).passes)
    padded = load_handler(tiny_checkpoint, {"handler": {"forward": "padded"}})
    widths = [p.input_ids.shape[1] for p in padded.preprocess(items).passes]
    assert min(widths) < max(widths), "short sentences must not be padded to the long document's windows"


def test_segments_format_matches_entities(tiny_handler):
    text = SENTENCES[0]
    entities = entities_of(tiny_handler, text)
    responses, _ = run_batch(tiny_handler, [{"body": {"text": text, "format": "segments"}}])
    segments = responses[0]["segments"]
    assert [s for s in segments if s["label"] != "other"] == entities
    assert "".join(s["text"] for s in segments) == text


def test_classic_checkpoint_is_served(classic_checkpoint):
    handler = load_handler(classic_checkpoint)
    responses, statuses = run_batch(handler, [{"body": {"text": SENTENCES[0]}}])
    assert statuses == [(200, None)]
    assert all(e["label"] in {"DRUG", "PER", "CITY"} for e in responses[0]["entities"])
    assert responses[0]["entities"], "the classic tiny model should tag something"


def test_initialize_refuses_a_tokenizer_bigger_than_the_embeddings(tiny_checkpoint, tmp_path):
    import shutil

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (ckpt / name).unlink(missing_ok=True)
    with (ckpt / "vocab.txt").open("a") as vocab:
        vocab.write("".join(f"extra{i}\n" for i in range(10)))
    with pytest.raises(ValueError, match=r"vocab\.txt\) hold \d+ tokens but the model config's field 'vocab_size'"):
        load_handler(ckpt)


def test_metrics_match_the_declared_dimensions(tiny_handler, caplog):
    """Every metric the handler emits is declared in handler/metrics.yaml with the same dimensions."""
    import logging

    cache = project_metrics_cache()
    cache.set_request_ids({0: "a", 1: "b"})
    with caplog.at_level(logging.INFO):
        run_batch(tiny_handler, [{"body": {"text": SENTENCES[0]}}, {"body": {"text": 1}}], metrics=cache)
    emitted = "\n".join(r.getMessage() for r in caplog.records if "[METRICS]" in r.getMessage())
    for name in (
        "NerRequests",
        "NerEntitiesPerRequest",
        "NerWordPiecesPerRequest",
        "NerWindowsPerRequest",
        "NerRequestsPerBatch",
        "NerPreprocessSeconds",
        "NerInferenceSeconds",
        "NerPostprocessSeconds",
    ):
        assert f"[METRICS]{name}." in emitted, name
    assert "Outcome:ok" in emitted and "Outcome:client_error" in emitted and "ModelVersion:1.0" in emitted


def test_int8_quantization_switch_serves_close_scores(tiny_checkpoint, tiny_handler):
    """The CPU int8 path: same response schema, argmax labels mostly kept, scores close to fp32."""
    import torch

    handler = load_handler(tiny_checkpoint, {"handler": {"quantization": "int8_dynamic"}})
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in handler.model.modules())
    fp32, _ = run_batch(tiny_handler, [{"body": {"text": t}} for t in SENTENCES])
    int8, statuses = run_batch(handler, [{"body": {"text": t}} for t in SENTENCES])
    assert all(s == (200, None) for s in statuses)
    same = sum(
        a["entities"] == []
        or set((e["label"], e["start"]) for e in a["entities"]) == set((e["label"], e["start"]) for e in b["entities"])
        for a, b in zip(fp32, int8, strict=True)
    )
    assert same >= len(SENTENCES) - 2


def linear_kinds(handler):
    import torch

    from nerserve.linear_kernels import PrepackedLinear

    kinds = {"torch": torch.nn.Linear, "onednn": PrepackedLinear, "int8": torch.ao.nn.quantized.dynamic.Linear}
    return {name for name, kind in kinds.items() for m in handler.model.modules() if type(m) is kind}


def test_linear_kernels_onednn_by_default_torch_on_request_and_never_with_int8(tiny_checkpoint, tiny_handler, caplog):
    import logging

    assert linear_kinds(tiny_handler) == {"onednn"}
    with caplog.at_level(logging.INFO):
        torch_kernels = load_handler(tiny_checkpoint, {"handler": {"linear_kernels": "torch"}})
    assert linear_kinds(torch_kernels) == {"torch"}
    assert "Linear layers: torch's" in caplog.text
    int8 = load_handler(tiny_checkpoint, {"handler": {"quantization": "int8_dynamic"}})
    assert linear_kinds(int8) == {"int8"}
    items = [{"body": {"text": t}} for t in SENTENCES]
    for a, b in zip(run_batch(tiny_handler, items)[0], run_batch(torch_kernels, items)[0], strict=True):
        assert_same_entities(a["entities"], b["entities"])


def test_linear_kernels_fall_back_to_torch_where_onednn_cannot_run(tiny_checkpoint, tiny_handler, monkeypatch, caplog):
    import logging

    module = load_handler_module()
    monkeypatch.setattr(module, "onednn_linear_unavailable", lambda: "this torch build has no oneDNN")
    with caplog.at_level(logging.INFO):
        handler = load_handler(tiny_checkpoint)
    assert linear_kinds(handler) == {"torch"}
    assert "handler.linear_kernels onednn: this torch build has no oneDNN; the Linear layers run torch's" in caplog.text
    assert "Linear layers: torch's, as this torch build has no oneDNN" in caplog.text
    assert_same_entities(entities_of(handler, SENTENCES[0]), entities_of(tiny_handler, SENTENCES[0]))


def test_torch_threads_setting_sets_the_workers_intra_op_threads(tiny_checkpoint):
    import torch

    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    try:
        load_handler(tiny_checkpoint, {"handler": {"torch_threads": wanted}})
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_one_unreadable_text_fails_alone_in_its_batch(tiny_handler):
    """A lone surrogate (valid JSON "\\ud800") used to reach the tokenizer and fail the whole batch with 503."""
    items = [{"body": {"text": SENTENCES[0]}}, {"body": {"text": "bad \ud800"}}, {"body": {"text": SENTENCES[2]}}]
    responses, statuses = run_batch(tiny_handler, items)
    assert [s[0] for s in statuses] == [200, 400, 200]
    assert "unpaired surrogate" in responses[1]["message"]
    assert responses[0]["entities"] == entities_of(tiny_handler, SENTENCES[0])


def test_a_tokenizer_failure_on_one_text_fails_only_that_request(tiny_handler, monkeypatch):
    ner_handler = load_handler_module()
    real = ner_handler.encode_batch

    def picky(tokenizer, texts):
        if any("poison" in t for t in texts):
            raise TypeError("the tokenizer refuses this input")
        return real(tokenizer, texts)

    monkeypatch.setattr(ner_handler, "encode_batch", picky)
    items = [
        {"body": {"text": SENTENCES[0]}},
        {"body": {"text": "poison"}},
        {"body": {"text": 5}},
        {"body": {"text": SENTENCES[1]}},
    ]
    responses, statuses = run_batch(tiny_handler, items)
    assert [s[0] for s in statuses] == [200, 400, 400, 200]
    assert "tokenizer cannot read this text (TypeError)" in responses[1]["message"]
    monkeypatch.setattr(ner_handler, "encode_batch", real)
    assert responses[3]["entities"] == entities_of(tiny_handler, SENTENCES[1])


def test_initialize_refuses_a_tokenizer_without_a_vocabulary(tiny_checkpoint, tmp_path):
    """transformers builds a tokenizer from tokenizer_config.json alone; every word would be [UNK]."""
    import shutil

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    for name in ("tokenizer.json", "vocab.txt"):
        (ckpt / name).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no vocabulary beyond its \\d+ special tokens"):
        load_handler(ckpt)


def test_every_response_gets_json_the_batch_size_and_the_model_version(tiny_handler):
    items = [{"body": {"text": SENTENCES[0]}}, {"body": {"text": 1}}]
    context = make_context(Path("model_dir_unused_by_handle"), [{}, {}])
    tiny_handler.handle(items, context)
    assert [context.get_response_status(i)[0] for i in range(2)] == [200, 400]
    for index in range(2):
        assert context.get_response_content_type(index) == "application/json"
        assert context.get_response_headers(index)[BATCH_SIZE_HEADER] == "2"
        assert context.get_response_headers(index)[MODEL_VERSION_HEADER] == "1.0"


def test_the_stages_compose_without_a_context(tiny_handler):
    """preprocess -> inference (logits only) -> postprocess, as the warm-up and the bench call them."""
    items = [{"body": {"text": SENTENCES[0]}}, {"body": bytearray(b'{"text": "paris"}')}]
    batch = tiny_handler.preprocess(items, content_types=[None, "application/json"])
    logits = tiny_handler.inference(batch)
    assert len(logits) == len(batch.passes)
    assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in logits)
    responses = tiny_handler.postprocess(batch, logits)
    assert_same_entities(responses[0]["entities"], entities_of(tiny_handler, SENTENCES[0]))
    assert_same_entities(responses[1]["entities"], entities_of(tiny_handler, "paris"))
    # Without content types, a JSON body TorchServe left as bytes is read as plain text.
    plain = tiny_handler.preprocess(items[1:])
    assert plain.documents[0].request.text == '{"text": "paris"}'


# --- KServe v1 and Open Inference Protocol v2 bodies ------------------------------------------------------------


def v2_body(texts, **fields):
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **fields}


def v2_results(response):
    (output,) = response["outputs"]
    assert output["shape"] == [len(output["data"])] and output["datatype"] == "BYTES"
    return [json.loads(text) for text in output["data"]]


def assert_same_spans(batched, single):
    """Same labels and spans; scores equal up to float noise (padding in a batch changes the last digits)."""
    assert [(e["label"], e["start"], e["end"]) for e in batched] == [(e["label"], e["start"], e["end"]) for e in single]
    for a, b in zip(batched, single, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_kserve_bodies_and_single_texts_share_one_tokenizer_call_and_the_forward_passes(tiny_handler, monkeypatch):
    ner_handler = load_handler_module()
    real, calls = ner_handler.encode_batch, []

    def counting(tokenizer, texts):
        calls.append(len(texts))
        return real(tokenizer, texts)

    monkeypatch.setattr(ner_handler, "encode_batch", counting)
    items = [
        {"body": {"instances": [SENTENCES[0], {"text": SENTENCES[1], "format": "segments"}, 5]}},
        {"body": {"text": SENTENCES[2]}},
        {"body": v2_body([SENTENCES[4], None, SENTENCES[5]], id="r1", parameters={"aggregation": "max"})},
    ]
    responses, statuses = run_batch(tiny_handler, items, ["application/json"] * 3)
    assert calls == [5], "the 5 valid texts (of 7) of every request of every request in one tokenizer call"
    batch = tiny_handler.preprocess(items)
    assert len(batch.passes) < 5 and {ref.doc_index for p in batch.passes for ref in p.rows} == set(range(5))
    monkeypatch.setattr(ner_handler, "encode_batch", real)

    assert statuses == [(200, None)] * 3
    predictions = responses[0]["predictions"]
    assert_same_spans(predictions[0]["entities"], entities_of(tiny_handler, SENTENCES[0]))
    single_segments, _ = run_batch(tiny_handler, [{"body": {"text": SENTENCES[1], "format": "segments"}}])
    assert_same_spans(predictions[1]["segments"], single_segments[0]["segments"])
    assert predictions[2]["code"] == 400 and predictions[2]["message"].startswith("instances[2]:")
    assert_same_spans(responses[1]["entities"], entities_of(tiny_handler, SENTENCES[2]))
    assert (responses[2]["model_name"], responses[2]["model_version"], responses[2]["id"]) == ("ner_model", "1.0", "r1")
    first, bad, last = v2_results(responses[2])
    assert_same_spans(first["entities"], entities_of(tiny_handler, SENTENCES[4], aggregation="max"))
    assert bad == {"code": 400, "type": "BadRequest", "message": "inputs[0].data[1]: a text must be a string, got null"}
    assert_same_spans(last["entities"], entities_of(tiny_handler, SENTENCES[5], aggregation="max"))


def test_kserve_requests_over_the_limits_get_413_alone(tiny_checkpoint):
    handler = load_handler(
        tiny_checkpoint, {"handler": {"max_text_chars": 10, "max_request_chars": 12, "max_texts_per_request": 2}}
    )
    items = [
        {"body": {"instances": ["a", "b", "c"]}},
        {"body": v2_body(["x" * 10, "y" * 3])},
        {"body": {"instances": ["paris", "x" * 11]}},
        {"body": {"text": "rome"}},
    ]
    responses, statuses = run_batch(handler, items)
    assert [s[0] for s in statuses] == [413, 413, 413, 200]
    assert "the request has 3 texts, the limit is 2" in statuses[0][1] and responses[0]["code"] == 413
    assert "the request's texts have 13 characters in all, the limit is 12" in statuses[1][1]
    assert "16 characters in all" in responses[2]["message"]
    assert "entities" in responses[3]


def test_a_kserve_text_over_its_own_limit_is_413_in_its_slot(tiny_checkpoint):
    handler = load_handler(tiny_checkpoint, {"handler": {"max_text_chars": 10, "max_request_chars": 100}})
    responses, statuses = run_batch(handler, [{"body": {"instances": ["x" * 11, "paris"]}}])
    assert statuses == [(200, None)]
    too_long, fine = responses[0]["predictions"]
    assert too_long["code"] == 413 and "text has 11 characters, the limit is 10" in too_long["message"]
    assert "entities" in fine


def test_the_batch_size_header_and_metric_count_requests_not_texts(tiny_handler, caplog):
    import logging

    items = [{"body": {"instances": SENTENCES[:3]}}, {"body": v2_body(SENTENCES[:2])}]
    context = make_context(Path("model_dir_unused_by_handle"), [{}, {}], metrics=project_metrics_cache())
    context.metrics.set_request_ids({0: "a", 1: "b"})
    with caplog.at_level(logging.INFO):
        tiny_handler.handle(items, context)
    assert [context.get_response_headers(i)[BATCH_SIZE_HEADER] for i in range(2)] == ["2", "2"]
    emitted = [r.getMessage() for r in caplog.records if "[METRICS]NerRequestsPerBatch." in r.getMessage()]
    assert emitted and all("NerRequestsPerBatch.Count:2|" in line for line in emitted)
    per_text = [r.getMessage() for r in caplog.records if "[METRICS]NerWordPiecesPerRequest." in r.getMessage()]
    assert len(per_text) == 5


def test_a_failing_tokenizer_call_fails_only_the_texts_it_cannot_read(tiny_handler, monkeypatch):
    ner_handler = load_handler_module()
    real = ner_handler.encode_batch

    def picky(tokenizer, texts):
        if any("poison" in t for t in texts):
            raise TypeError("the tokenizer refuses this input")
        return real(tokenizer, texts)

    monkeypatch.setattr(ner_handler, "encode_batch", picky)
    responses, statuses = run_batch(tiny_handler, [{"body": {"instances": ["paris", "poison"]}}])
    assert statuses == [(200, None)]
    fine, failed = responses[0]["predictions"]
    assert "entities" in fine and failed["code"] == 400 and "tokenizer cannot read" in failed["message"]
