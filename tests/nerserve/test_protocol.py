"""The request/response protocol shared by the handler and the gateway: option enums, error bodies."""

import pytest

from nerserve.protocol import (
    JSON_FIELDS,
    Aggregation,
    OutputFormat,
    document_lane,
    error_body,
    error_type,
    is_document_lane,
    json_type_name,
)


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


def test_body_kinds_and_v1_responses_keep_one_result_per_instance():
    from nerserve.protocol import BodyKind, v1_response

    assert [kind.value for kind in BodyKind] == ["single", "kserve_v1", "kserve_v2"]
    assert v1_response([{"entities": []}, error_body(400, "bad")]) == {
        "predictions": [{"entities": []}, {"code": 400, "type": "BadRequest", "message": "bad"}]
    }


def test_v2_responses_carry_each_result_as_its_json_text_in_one_bytes_output():
    import json

    from nerserve.protocol import V2_OUTPUT_NAME, v2_response

    results = [
        {"entities": [{"label": "CITY", "text": "Zürich", "start": 0, "end": 6, "score": 0.5}]},
        {"segments": []},
    ]
    response = v2_response("ner_model", "1.0", None, results)
    assert "id" not in response and (response["model_name"], response["model_version"]) == ("ner_model", "1.0")
    (output,) = response["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == (V2_OUTPUT_NAME, [2], "BYTES")
    assert [json.loads(text) for text in output["data"]] == results
    assert "Zürich" in output["data"][0]  # UTF-8 as is, not \u escapes
    assert v2_response("m", "1", "abc", [])["id"] == "abc"


def test_a_document_lane_is_known_by_its_name():
    assert is_document_lane(document_lane("ner_model"))
    assert not is_document_lane("ner_model")
    assert not is_document_lane("_documents")  # a suffix alone names no model's lane
