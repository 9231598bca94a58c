"""Request bodies in every form TorchServe delivers them, the option parser and the quoting of client values."""

import pytest

from nerserve.protocol import Aggregation, OutputFormat, error_body
from nerserve.requests import QUOTED_CHARS, RequestError, parse_option, parse_request, quote_client_value
from nerserve.settings import HandlerSettings

SETTINGS = HandlerSettings(max_text_chars=20)


def error_of(item, content_type=None):
    with pytest.raises(RequestError) as caught:
        parse_request(item, content_type, SETTINGS)
    return caught.value


def test_json_text_plain_bytes_and_multipart_are_accepted():
    assert parse_request({"body": {"text": "Hi Rome"}}, "application/json", SETTINGS).text == "Hi Rome"
    assert parse_request({"body": "Hi Rome"}, "text/plain", SETTINGS).text == "Hi Rome"
    assert parse_request({"body": bytearray("Zürich".encode())}, None, SETTINGS).text == "Zürich"
    assert parse_request({"data": bytearray(b"Hi")}, "multipart/form-data", SETTINGS).text == "Hi"
    form = parse_request({"text": bytearray(b"Hi Rome")}, "application/x-www-form-urlencoded", SETTINGS)
    assert form.text == "Hi Rome"


def test_options_are_parsed_and_defaulted():
    request = parse_request({"body": {"text": "x", "aggregation": "MAX", "format": "segments"}}, None, SETTINGS)
    assert (request.aggregation, request.output_format) == (Aggregation.MAX, OutputFormat.SEGMENTS)
    request = parse_request({"body": {"text": "x", "aggregation": None}}, None, SETTINGS)
    assert (request.aggregation, request.output_format) == (Aggregation.FIRST, OutputFormat.ENTITIES)


def test_empty_text_is_valid():
    assert parse_request({"body": {"text": ""}}, None, SETTINGS).text == ""


@pytest.mark.parametrize(
    "item,content_type,needle",
    [
        ({}, None, "empty request body"),
        ({"txt": bytearray(b"x")}, "application/x-www-form-urlencoded", "got form fields ['txt']"),
        ({"body": bytearray(b"\xff\xfe")}, None, "not valid UTF-8"),
        ({"body": bytearray(b'{"text": ')}, "application/json", "not valid JSON"),
        ({"body": {"txt": "x"}}, None, "unknown field"),
        ({"body": {"aggregation": "first"}}, None, "'text' is required"),
        ({"body": {"text": 3}}, None, "must be a string, got number"),
        ({"body": {"text": None}}, None, "must be a string, got null"),
        ({"body": {"text": "x", "aggregation": "mean"}}, None, "'aggregation' must be one of"),
        ({"body": {"text": "x", "format": "xml"}}, None, "'format' must be one of"),
        ({"body": [{"text": "x"}]}, None, "JSON array"),
    ],
)
def test_bad_requests_get_400_with_a_message(item, content_type, needle):
    error = error_of(item, content_type)
    assert error.status == 400
    assert needle in error.message
    assert error_body(error.status, error.message) == {"code": 400, "type": "BadRequest", "message": error.message}


def test_text_over_the_limit_gets_413_before_tokenizing():
    assert parse_request({"body": {"text": "x" * 20}}, None, SETTINGS).text == "x" * 20
    error = error_of({"body": {"text": "x" * 21}})
    assert error.status == 413 and "21 characters" in error.message
    assert error_body(error.status, error.message)["type"] == "PayloadTooLarge"
    assert error_of({"body": bytearray(b"y" * 21)}).status == 413


def test_a_lone_surrogate_is_a_400_not_a_tokenizer_crash():
    """JSON can escape half a surrogate pair ("\\ud800"); json.loads makes it a str the tokenizer cannot read."""
    error = error_of({"body": {"text": "bad \ud800 text"}})
    assert error.status == 400 and "unpaired surrogate (U+D800) at character 4" in error.message
    assert parse_request({"body": {"text": "ok \U0001f600"}}, None, SETTINGS).text == "ok \U0001f600"


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/json; charset=utf-8", "text/json"])
def test_json_that_torchserve_left_as_bytes_is_parsed(content_type):
    """TorchServe parses JSON only for the exact type application/json; media types are case-insensitive."""
    request = parse_request(
        {"body": bytearray('{"text": "Zürich", "format": "segments"}'.encode())}, content_type, SETTINGS
    )
    assert (request.text, request.output_format) == ("Zürich", OutputFormat.SEGMENTS)
    assert (
        error_of({"body": bytearray(b'{"text": 1}')}, content_type).message
        == "field 'text' must be a string, got number"
    )


def test_client_values_in_messages_are_bounded():
    """Messages become the HTTP reason phrase: a huge or multi-line value must not become the status line."""
    huge = error_of({"body": {"text": "x", "aggregation": "a\r\n" * 100_000}})
    assert len(huge.message) < 200 and "\n" not in huge.message and "..." in huge.message
    fields = error_of({"body": {"text": "x", **{f"field{i}" * 50: 1 for i in range(9)}}})
    assert len(fields.message) < 400 and fields.message.count("...") >= 1


def test_options_parse_case_insensitively_and_name_the_field():
    assert parse_option(Aggregation, "Average", "aggregation") is Aggregation.AVERAGE
    with pytest.raises(ValueError, match=r"^'format' must be one of \['entities', 'segments'\], got 3$"):
        parse_option(OutputFormat, 3, "format")


def test_quoted_client_values_are_reprs_cut_to_the_limit():
    assert quote_client_value("a\nb") == "'a\\nb'"
    long = quote_client_value("x" * 1000)
    assert len(long) == QUOTED_CHARS and long.endswith("...") and long.startswith("'xxx")


def nested(depth, make):
    value = "x"
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize(
    "item",
    [
        {"body": bytearray(b"[" * 1000 + b"]" * 1000)},
        {"body": bytearray(b'{"a":' * 1000 + b"1" + b"}" * 1000)},
        {"body": nested(1000, lambda v: [v])},
        {"body": nested(1000, lambda v: {"a": v})},
        {"body": {"text": "x", "format": nested(65, lambda v: [v])}},
    ],
    ids=["array-bytes", "object-bytes", "array-parsed", "object-parsed", "65-deep-option"],
)
def test_json_nested_too_deep_is_400_whatever_parsed_it(item):
    error = error_of(item, "application/json; charset=utf-8")
    assert (error.status, error.message) == (400, "the JSON body is nested more than 64 levels deep")


def test_json_within_the_depth_limit_is_served_and_an_oversized_one_is_413():
    assert parse_request({"body": {"text": "x", "format": None, "aggregation": None}}, None, SETTINGS).text == "x"
    small = HandlerSettings(max_text_chars=20, max_request_bytes=1024)
    with pytest.raises(RequestError) as caught:
        parse_request({"body": bytearray(b'{"text": "' + b"x" * 2000 + b'"}')}, "application/json; v=1", small)
    assert caught.value.status == 413 and "over the limit of 1024" in caught.value.message
