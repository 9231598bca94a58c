"""Bounded JSON: size and depth refused before parsing, with the status each deserves, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from nerserve.json_limits import DEFAULT_MAX_DEPTH, JsonBodyError, deeper_than, loads_bounded


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("data", [b'{"text": "Hi"}', '{"text": "Hi"}', bytearray(b'{"text": "Hi"}')])
def test_a_normal_body_parses_from_bytes_or_text(data):
    assert loads_bounded(data, 8, 1024) == {"text": "Hi"}


def test_the_kserve_v2_shape_is_well_within_the_default_depth():
    body = {"id": "r", "inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["Hi"], "parameters": {}}]}
    assert loads_bounded(json.dumps(body), DEFAULT_MAX_DEPTH, 1024) == body


@pytest.mark.parametrize("make", [nested_arrays, nested_objects], ids=["arrays", "objects"])
@pytest.mark.parametrize("depth", [65, 1_000, 1_000_000])
def test_deep_nesting_is_a_400_naming_the_limit_not_a_recursion_error(make, depth):
    with pytest.raises(JsonBodyError) as error:
        loads_bounded(make(depth), DEFAULT_MAX_DEPTH, 16 << 20)
    assert error.value.status == 400
    assert error.value.message == "the JSON body is nested more than 64 levels deep"


@pytest.mark.parametrize("make", [nested_arrays, nested_objects], ids=["arrays", "objects"])
def test_nesting_exactly_at_the_limit_parses(make):
    assert loads_bounded(make(64), 64, 1 << 20) is not None


def test_brackets_inside_strings_do_not_count():
    text = "[" * 200 + '\\"' + "]" * 3
    body = json.dumps({"text": text, "more": ["{" * 100]})
    assert loads_bounded(body, 2, 1 << 20) == {"text": text, "more": ["{" * 100]}


def test_many_shallow_brackets_are_not_deep():
    body = "[" + ",".join(["[1]"] * 10_000) + "]"
    assert not deeper_than(body, 2) and deeper_than(body, 1)
    assert len(loads_bounded(body, 2, 1 << 20)) == 10_000


@pytest.mark.parametrize(
    "text, max_depth, deeper",
    [
        ('[[1],{"a":[2]}]', 2, True),
        ('[[1],{"a":[2]}]', 3, False),
        ("[[]" * 100 + "]" * 100, 64, True),  # siblings between the levels: no long run of '['
        ("[[]" * 60 + "]" * 60, 64, False),
        ("]]]" + "[" * 10, 64, False),  # unbalanced and shallow: left to the parser's error
        ("[" * 65, 64, True),  # unbalanced and deep: the parser would recurse before failing
    ],
)
def test_deeper_than(text, max_depth, deeper):
    assert deeper_than(text, max_depth) is deeper


def test_an_unbalanced_shallow_body_is_a_syntax_error():
    with pytest.raises(JsonBodyError, match=r"not valid JSON \(Expecting value at line 1 column 1\)") as error:
        loads_bounded("]]][[[", 64, 1024)
    assert error.value.status == 400


@pytest.mark.parametrize(
    "data, size", [(b"[" + b"1," * 600 + b"1]", 1203), ("[" + '"\u00e9",' * 300 + "1]", 1503)], ids=["bytes", "text"]
)
def test_a_body_over_the_size_limit_is_413_in_utf8_bytes(data, size):
    with pytest.raises(JsonBodyError) as error:
        loads_bounded(data, 64, 1000)
    assert error.value.status == 413
    assert error.value.message == f"the JSON body is {size} bytes, over the limit of 1000"


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"text": "\xff"}', r"not valid UTF-8 \(byte 10\)"),
        ('{"text": }', r"not valid JSON \(Expecting value at line 1 column 10\)"),
        ("", r"not valid JSON \(Expecting value at line 1 column 1\)"),
        ("1" * 5000, r"not valid JSON \(ValueError\)"),  # over Python's integer digit limit
    ],
)
def test_encoding_and_syntax_errors_are_400(data, message):
    with pytest.raises(JsonBodyError, match=message) as error:
        loads_bounded(data, 64, 1 << 20)
    assert error.value.status == 400 and isinstance(error.value, ValueError)


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="must be positive"):
        loads_bounded("1", 0, 10)
