"""One request's trouble stays its own: hostile bodies, our own bugs on one text, and word-piece limits, each in a
batch of normal requests that must all be answered as if alone (tiny random BERT, TorchServe's own Context)."""

from __future__ import annotations

import logging
import sys

import pytest

import nerserve.batch
from tests.support.handler_harness import load_handler, run_batch

NORMAL = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew from new york to paris today"]
DEPTH = 1_000
SECRET = "Zanzibar-7731"  # a client's text that must never reach the log


def deep_array(depth: int = DEPTH) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def deep_object(depth: int = DEPTH) -> dict:
    value: dict = {"a": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def alone(handler, text: str) -> dict:
    responses, statuses = run_batch(handler, [{"body": {"text": text}}])
    assert statuses == [(200, None)]
    return responses[0]


def check_normals_answered(handler, responses, statuses, normal_indices):
    for index, text in zip(normal_indices, NORMAL * len(normal_indices), strict=False):
        assert statuses[index] == (200, None), statuses
        assert responses[index]["entities"] == alone(handler, text)["entities"]


def test_deep_json_as_bytes_and_as_parsed_values_is_400_beside_normal_requests(tiny_handler):
    hostile = [
        ({"body": bytearray(b"[" * DEPTH + b"]" * DEPTH)}, "application/json"),  # TorchServe's parser gave up
        ({"body": bytearray(b'{"a":' * DEPTH + b"1" + b"}" * DEPTH)}, "application/json; charset=utf-8"),
        ({"body": deep_array()}, "application/json"),  # parsed by TorchServe: a list 1,000 deep
        ({"body": deep_object()}, "application/json"),
        ({"body": {"text": "x", "aggregation": deep_array()}}, "application/json"),  # deep where a string belongs
        ({"body": {"instances": [deep_object()]}}, "application/json"),  # KServe v1
        ({"body": {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": deep_array()}]}}, None),
    ]
    items, content_types, normal_indices = [], [], []
    for item, content_type in hostile:
        normal_indices.append(len(items))
        items.append({"body": {"text": NORMAL[len(normal_indices) % 2]}})
        content_types.append("application/json")
        items.append(item)
        content_types.append(content_type)
    responses, statuses = run_batch(tiny_handler, items, content_types)
    for index in range(1, len(items), 2):
        assert statuses[index][0] == 400, (index, statuses[index])
        assert responses[index]["code"] == 400 and "nested more than 64 levels" in responses[index]["message"]
    for index in normal_indices:
        assert statuses[index] == (200, None)
        assert responses[index]["entities"] == alone(tiny_handler, items[index]["body"]["text"])["entities"]


def test_a_body_within_the_depth_limit_is_still_parsed(tiny_handler):
    body = b'{"instances": [{"text": "paris"}]}'
    responses, statuses = run_batch(tiny_handler, [{"body": bytearray(body)}], ["application/json; charset=utf-8"])
    assert statuses == [(200, None)] and "predictions" in responses[0]


@pytest.mark.parametrize(
    ("target", "stage"), [("decode_entities", "decoding"), ("plan_windows", "windowing")], ids=["decode", "window"]
)
def test_our_failure_on_one_text_is_its_own_500(tiny_handler, monkeypatch, caplog, target, stage):
    real = getattr(nerserve.batch, target)

    def failing(*args, **kwargs):
        text = args[0] if target == "decode_entities" else None
        if (text is not None and SECRET in text) or (text is None and args[0] == len(SECRET_PIECES)):
            raise RuntimeError(f"boom on {SECRET}")
        return real(*args, **kwargs)

    monkeypatch.setattr(nerserve.batch, target, failing)
    items = [{"body": {"text": NORMAL[0]}}, {"body": {"text": SECRET_TEXT}}, {"body": {"text": NORMAL[1]}}]
    with caplog.at_level(logging.ERROR):
        responses, statuses = run_batch(tiny_handler, items)
    assert statuses[1][0] == 500 and responses[1]["code"] == 500
    assert responses[1]["message"] == f"internal error while {stage} this text; the server logged it"
    monkeypatch.setattr(nerserve.batch, target, real)
    check_normals_answered(tiny_handler, responses, statuses, [0, 2])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError" in logged and "Stack" in logged
    assert SECRET not in logged


SECRET_TEXT = f"{SECRET} " * 7
SECRET_PIECES: list = []  # filled once by the fixture below: the word pieces of SECRET_TEXT on the tiny model


@pytest.fixture(autouse=True)
def _secret_pieces(tiny_handler):
    if not SECRET_PIECES:
        from nerserve.tokenization import encode_batch

        SECRET_PIECES.extend(encode_batch(tiny_handler.tokenizer, [SECRET_TEXT])[0].ids)
        assert len(SECRET_PIECES) not in {len(p.ids) for p in encode_batch(tiny_handler.tokenizer, NORMAL)}


def test_our_failure_parsing_one_body_is_its_own_500(tiny_handler, monkeypatch):
    module = sys.modules[type(tiny_handler).__module__]
    real = module.parse_body

    def failing(item, content_type, settings):
        if item.get("body") == {"text": SECRET}:
            raise KeyError("a bug")
        return real(item, content_type, settings)

    monkeypatch.setattr(module, "parse_body", failing)
    items = [{"body": {"text": NORMAL[0]}}, {"body": {"text": SECRET}}, {"body": {"text": NORMAL[1]}}]
    responses, statuses = run_batch(tiny_handler, items)
    monkeypatch.setattr(module, "parse_body", real)
    assert statuses[1][0] == 500 and "internal error while parsing" in responses[1]["message"]
    check_normals_answered(tiny_handler, responses, statuses, [0, 2])


@pytest.fixture(scope="module")
def limited_handler(tiny_checkpoint):
    return load_handler(tiny_checkpoint, {"handler": {"max_text_pieces": 50, "max_request_pieces": 80}})


def test_a_text_over_the_word_piece_limit_is_413_with_the_numbers(limited_handler):
    items = [{"body": {"text": NORMAL[0]}}, {"body": {"text": "a," * 30}}, {"body": {"text": NORMAL[1]}}]
    batch = limited_handler.preprocess(items)
    assert all(doc.request.text in NORMAL for doc in batch.documents), "no window may be planned for it"
    responses, statuses = run_batch(limited_handler, items)
    assert statuses[1] == (413, "the text has 60 word pieces, the limit is 50; split it")
    assert responses[1]["code"] == 413 and responses[1]["message"] == statuses[1][1]
    check_normals_answered(limited_handler, responses, statuses, [0, 2])


def test_the_word_piece_limits_of_a_request_of_several_texts(limited_handler):
    over_in_all = {"instances": ["a," * 20, "b," * 20, "c," * 10]}  # 40 + 40 + 20 pieces > 80 in all
    one_over = {"instances": ["paris", "a," * 30]}  # the second text alone is over 50
    items = [{"body": over_in_all}, {"body": {"text": NORMAL[0]}}, {"body": one_over}, {"body": {"text": NORMAL[1]}}]
    responses, statuses = run_batch(limited_handler, items)
    assert statuses[0] == (
        413,
        "the request's texts have 100 word pieces in all, the limit is 80; send them in several requests",
    )
    assert statuses[2] == (200, None)
    assert "entities" in responses[2]["predictions"][0]
    assert responses[2]["predictions"][1]["code"] == 413
    assert (
        responses[2]["predictions"][1]["message"]
        == "instances[1]: the text has 60 word pieces, the limit is 50; split it"
    )
    check_normals_answered(limited_handler, responses, statuses, [1, 3])
