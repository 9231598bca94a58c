"""Request validation: the handler's fields and options pass, with any case; problems are one readable line each."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.schemas import NerMessage, PredictBody, validate_predict_body
from nerserve.protocol import JSON_FIELDS, Aggregation, OutputFormat


@pytest.mark.parametrize("aggregation", list(Aggregation))
@pytest.mark.parametrize("output_format", list(OutputFormat))
def test_every_option_the_handler_takes_passes_in_any_case(aggregation, output_format):
    body = {"text": "Doc", "aggregation": aggregation.value.upper(), "format": output_format.value.title()}
    assert set(body) == set(JSON_FIELDS)  # every field of the protocol, and no other
    request = validate_predict_body(body, PredictBody, 100)
    assert request.payload() == {"text": "Doc", "aggregation": aggregation.value, "format": output_format.value}


def test_payload_leaves_unset_options_to_the_handler():
    request = validate_predict_body({"text": "Doc", "format": "Segments"}, PredictBody, 100)
    assert request.payload() == {"text": "Doc", "format": "segments"}
    assert request.payload("chunk") == {"text": "chunk", "format": "segments"}


def test_a_websocket_message_is_a_request_whose_payload_leaves_out_the_id():
    message = validate_predict_body({"id": "q-1", "text": "Doc", "aggregation": "max"}, NerMessage, 100)
    assert message.id == "q-1" and message.payload() == {"text": "Doc", "aggregation": "max"}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"text": 5}, "field 'text'"),
        ({"text": "x", "aggregation": 1}, "field 'aggregation'"),
        ({"text": "x", "aggregation": "best"}, "field 'aggregation': Input should be 'first', 'simple',"),
        ("text", "got a string"),
        ({}, "field 'text' is required"),
        ({"text": "x", "txt": "x"}, "unknown field 'txt'"),
    ],
)
def test_invalid_requests(body, message):
    with pytest.raises(GatewayError, match=message) as error:
        validate_predict_body(body, PredictBody, 100)
    assert error.value.status == 400


def test_a_text_over_the_limit_is_413():
    with pytest.raises(GatewayError, match="text has 101 characters, the limit is 100") as error:
        validate_predict_body({"text": "x" * 101}, PredictBody, 100)
    assert (error.value.status, error.value.type_name) == (413, "PayloadTooLarge")
