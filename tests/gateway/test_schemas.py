"""The gateway's request schema stays in step with the handler's, and chunk answers are rebased correctly."""

from __future__ import annotations

import typing

import pytest

from gateway.errors import GatewayError
from gateway.schemas import Aggregation, NerRequest, OutputFormat, parse_request, rebase


def test_options_mirror_the_handler():
    from nerserve.requests import JSON_FIELDS
    from nerserve.settings import Aggregation as HandlerAggregation
    from nerserve.settings import OutputFormat as HandlerFormat

    assert set(typing.get_args(Aggregation)) == {member.value for member in HandlerAggregation}
    assert set(typing.get_args(OutputFormat)) == {member.value for member in HandlerFormat}
    assert set(NerRequest.model_fields) == set(JSON_FIELDS)


def test_payload_leaves_unset_options_to_the_handler():
    request = parse_request({"text": "Doc", "format": "Segments"}, NerRequest, 100)
    assert request.payload() == {"text": "Doc", "format": "segments"}
    assert request.payload("chunk") == {"text": "chunk", "format": "segments"}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"text": 5}, "field 'text'"),
        ({"text": "x", "aggregation": 1}, "field 'aggregation'"),
        ("text", "got a string"),
        ({}, "field 'text' is required"),
    ],
)
def test_invalid_requests(body, message):
    with pytest.raises(GatewayError, match=message) as error:
        parse_request(body, NerRequest, 100)
    assert error.value.status == 400


def test_rebase_moves_offsets_and_keeps_everything_else():
    document = "xxxxHello Paris"
    body = {"entities": [{"label": "PER", "text": "Hello", "start": 0, "end": 5, "score": 0.5}]}
    (entity,) = rebase(body, 4)["entities"]
    assert entity == {"label": "PER", "text": "Hello", "start": 4, "end": 9, "score": 0.5}
    assert document[entity["start"] : entity["end"]] == entity["text"]
    with pytest.raises(GatewayError):
        rebase({"something": []}, 0)
