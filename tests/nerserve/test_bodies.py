"""KServe v1 and Open Inference Protocol v2 bodies: parsing into texts, per-text errors, limits, responses."""

import json

import pytest

from nerserve.bodies import BatchBodies, Body, parse_body
from nerserve.protocol import V2_OUTPUT_NAME, Aggregation, BodyKind, OutputFormat, error_body
from nerserve.requests import NerRequest, RequestError
from nerserve.settings import HandlerSettings

SETTINGS = HandlerSettings.from_mapping({"max_text_chars": 20, "max_texts_per_request": 4, "max_request_chars": 30})
DEFAULTS = (SETTINGS.default_aggregation, SETTINGS.default_format)


def parse(body, content_type="application/json"):
    return parse_body({"body": body}, content_type, SETTINGS)


def refused(body, content_type="application/json"):
    with pytest.raises(RequestError) as caught:
        parse(body, content_type)
    return caught.value


def v2(data, shape=None, **fields):
    tensor = {"name": "text", "shape": [len(data)] if shape is None else shape, "datatype": "BYTES", "data": data}
    tensor.update(fields.pop("tensor", {}))
    return {"inputs": [tensor], **fields}


def slot_errors(body):
    return {i: (t.status, t.message) for i, t in enumerate(body.texts) if isinstance(t, RequestError)}


def test_v1_instances_are_strings_or_objects_each_with_its_options():
    body = parse({"instances": ["Anna", {"text": "Rome", "aggregation": "max", "format": "segments"}, {"text": ""}]})
    assert body.kind is BodyKind.KSERVE_V1 and body.request_id is None
    assert body.texts == [
        NerRequest("Anna", *DEFAULTS),
        NerRequest("Rome", Aggregation.MAX, OutputFormat.SEGMENTS),
        NerRequest("", *DEFAULTS),
    ]


def test_a_bad_v1_instance_gets_its_own_error_naming_its_slot():
    body = parse({"instances": ["ok", 5, {"text": "x", "aggregation": "mean"}, {"txt": "y"}]})
    assert isinstance(body.texts[0], NerRequest)
    errors = slot_errors(body)
    assert set(errors) == {1, 2, 3} and all(status == 400 for status, _ in errors.values())
    assert errors[1][1].startswith("instances[1]: an instance is a string or an object") and "number" in errors[1][1]
    assert errors[2][1].startswith("instances[2]: 'aggregation' must be one of")
    assert errors[3][1].startswith("instances[3]: unknown field(s) 'txt'")


def test_a_text_with_an_unpaired_surrogate_fails_alone():
    body = parse({"instances": ["fine", "bad \ud800"]})
    assert isinstance(body.texts[0], NerRequest)
    assert slot_errors(body)[1][0] == 400 and "U+D800" in slot_errors(body)[1][1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": ["a"] * 5}, "the request has 5 texts, the limit is 4"),
        ({"instances": ["x" * 20, "y" * 11]}, "the request's texts have 31 characters in all, the limit is 30"),
        ({"instances": [{"text": "x" * 20}, {"text": "y" * 11}]}, "31 characters in all, the limit is 30"),
        (v2(["a"] * 5), "the request has 5 texts, the limit is 4"),
        (v2(["x" * 20, "y" * 11]), "the request's texts have 31 characters in all, the limit is 30"),
    ],
)
def test_requests_over_the_limits_are_413_with_the_numbers(body, message):
    error = refused(body)
    assert error.status == 413 and message in error.message


def test_a_text_over_its_own_limit_is_413_in_its_slot():
    body = parse({"instances": ["x" * 21, "ok"]})
    assert slot_errors(body) == {0: (413, "instances[0]: text has 21 characters, the limit is 20; split the document")}
    assert isinstance(body.texts[1], NerRequest)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": "Anna"}, "'instances' must be an array, got string"),
        ({"instances": [], "parameters": {}}, "unknown field(s) 'parameters' in a KServe v1 request"),
        ({"inputs": []}, "exactly one input"),
        ({"inputs": [v2(["a"])["inputs"][0]] * 2}, "exactly one input"),
        (v2(["a"], tensor={"datatype": "FP32"}), "datatype must be 'BYTES'"),
        (v2(["a", "b"], shape=[3]), "shape [3] holds 3 elements, data has 2"),
        (v2(["a"], shape=["1"]), "shape must be an array of non-negative integers"),
        (v2(["a"], tensor={"data": "a"}), "data must be an array of texts, got string"),
        (v2(["a"], tensor={"parameters": {"content_type": "bytes"}}), "content_type must be 'str'"),
        (v2(["a"], tensor={"parameters": {"binary_data_size": 1}}), "unknown field(s) 'binary_data_size'"),
        (v2(["a"], tensor={"extra": 1}), "unknown field(s) 'extra' in inputs[0]"),
        (v2(["a"], id=7), "'id' must be a string, got number"),
        (v2(["a"], parameters={"aggregation": "mean"}), "parameters: 'aggregation' must be one of"),
        (v2(["a"], parameters={"threshold": 0.5}), "unknown field(s) 'threshold' in 'parameters'"),
        (v2(["a"], outputs=[{"name": "logits"}]), f"may only request the output {V2_OUTPUT_NAME!r}"),
        ({"inputs": [{"shape": [1], "datatype": "BYTES", "data": ["a"]}]}, "inputs[0]: field 'name' is required"),
    ],
)
def test_malformed_bodies_are_400_for_the_whole_request(body, fragment):
    error = refused(body)
    assert error.status == 400 and fragment in error.message


def test_v2_texts_share_the_request_parameters_and_keep_the_id():
    body = parse(
        v2(
            ["Anna", "", "Rome"],
            id="req-1",
            parameters={"aggregation": "average", "format": "segments"},
            tensor={"parameters": {"content_type": "str"}},
            outputs=[{"name": V2_OUTPUT_NAME}],
        )
    )
    assert body.kind is BodyKind.KSERVE_V2 and body.request_id == "req-1"
    assert [t.text for t in body.texts] == ["Anna", "", "Rome"]
    assert {(t.aggregation, t.output_format) for t in body.texts} == {(Aggregation.AVERAGE, OutputFormat.SEGMENTS)}


def test_v2_data_may_be_nested_by_its_shape():
    assert [t.text for t in parse(v2([["a"], ["b"]], shape=[2, 1])).texts] == ["a", "b"]


def test_a_bad_v2_element_gets_its_own_error():
    body = parse(v2(["ok", None, "x" * 21]))
    assert isinstance(body.texts[0], NerRequest)
    errors = slot_errors(body)
    assert errors[1] == (400, "inputs[0].data[1]: a text must be a string, got null")
    assert errors[2][0] == 413 and errors[2][1].startswith("inputs[0].data[2]: text has 21 characters")


def test_bodies_in_bytes_with_a_json_content_type_are_read_too():
    """KServe's TorchServe wrapper sends "application/json; charset=UTF-8", which TorchServe leaves as bytes."""
    raw = bytearray(json.dumps({"instances": ["Anna"]}).encode())
    body = parse_body({"body": raw}, "application/json; charset=UTF-8", SETTINGS)
    assert body.kind is BodyKind.KSERVE_V1 and body.texts == [NerRequest("Anna", *DEFAULTS)]


def test_json_nested_too_deeply_is_a_400_not_a_failed_batch():
    raw = bytearray(b"[" * 100_000 + b"]" * 100_000)
    error = refused(raw, "application/json; charset=UTF-8")
    assert error.status == 400 and "nested more than 64 levels deep" in error.message


def test_single_text_forms_are_unchanged():
    assert parse({"text": "Anna"}) == Body(BodyKind.SINGLE, [NerRequest("Anna", *DEFAULTS)])
    assert parse("Anna", "text/plain").texts == [NerRequest("Anna", *DEFAULTS)]
    assert refused({"text": "x" * 21}).status == 413
    assert "unknown field(s) 'instance'" in refused({"instance": ["a"]}).message


def test_batch_bodies_place_every_text_and_answer_in_each_protocol():
    single = parse({"text": "a"})
    v1 = parse({"instances": ["b", 5, "c"]})
    failed = RequestError(413, "too many")
    oip = parse(v2(["d", "e"], id="x"))
    bodies = BatchBodies.of([single, v1, failed, oip])
    assert (bodies.size, bodies.text_count, bodies.first_text) == (4, 6, [0, 1, 4, 4])
    slots = bodies.text_slots()
    assert [getattr(slots[i], "text", None) for i in range(6)] == ["a", "b", None, "c", "d", "e"]
    results = [{"entities": [i]} for i in range(6)]
    results[2] = error_body(400, "instances[1]: bad")
    responses = bodies.responses(results, "ner_model", "2.0")
    assert responses[0] == {"entities": [0]}
    assert responses[1] == {"predictions": [{"entities": [1]}, error_body(400, "instances[1]: bad"), {"entities": [3]}]}
    assert responses[2] == error_body(413, "too many")
    assert responses[3] == {
        "model_name": "ner_model",
        "model_version": "2.0",
        "id": "x",
        "outputs": [
            {
                "name": V2_OUTPUT_NAME,
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"content_type": "str"},
                "data": ['{"entities": [4]}', '{"entities": [5]}'],
            }
        ],
    }


def test_request_errors_are_whole_request_failures_and_failed_single_texts_only():
    bodies = BatchBodies.of([parse({"text": "a"}), parse({"instances": ["b", "c"]}), RequestError(400, "bad")])
    tokenizer_failed = {0: RequestError(400, "tokenizer"), 2: RequestError(400, "tokenizer")}
    errors = bodies.request_errors(tokenizer_failed)
    assert {index: error.message for index, error in errors.items()} == {0: "tokenizer", 2: "bad"}
