"""The request/response protocol shared by the handler and the gateway: option enums, error bodies."""

import pytest

from nerserve.protocol import JSON_FIELDS, Aggregation, OutputFormat, error_body, error_type, json_type_name


@pytest.mark.parametrize(
    "status,type_name",
    [(400, "BadRequest"), (413, "PayloadTooLarge"), (404, "NotFound"), (503, "ServiceUnavailable"), (599, "Error")],
)
def test_error_types_are_reason_phrases_without_spaces(status, type_name):
    assert error_type(status) == type_name


def test_error_bodies_have_torchserves_shape():
    assert error_body(400, "field 'text' is required") == {
        "code": 400,
        "type": "BadRequest",
        "message": "field 'text' is required",
    }
    assert error_body(503, "no worker", "ServiceUnavailableException")["type"] == "ServiceUnavailableException"


def test_option_enums_are_the_strings_clients_send():
    assert [member.value for member in Aggregation] == ["first", "simple", "average", "max"]
    assert [member.value for member in OutputFormat] == ["entities", "segments"]
    assert Aggregation("max") is Aggregation.MAX and f"{OutputFormat.SEGMENTS}" == "segments"
    assert JSON_FIELDS == ("text", "aggregation", "format")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({}, "object"),
        ([1], "array"),
        ("x", "string"),
        (1, "number"),
        (1.5, "number"),
        (True, "boolean"),
        (None, "null"),
    ],
)
def test_json_type_name_names_every_json_type(value, name):
    assert json_type_name(value) == name
