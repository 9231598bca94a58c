"""The request body of the WebSocket and Server-Sent Events endpoints, validated before anything goes upstream.

The fields and options are the handler's own (``nerserve.protocol``: ``JSON_FIELDS``, ``Aggregation``,
``OutputFormat``), checked here so a bad message is answered at once without a round trip. WebSocket messages
add an optional ``id``. ``one_text_payload`` tells the REST bodies of exactly that shape, which the gateway may
coalesce, from everything it passes through as it came.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from gateway.errors import GatewayError, bad_request, format_validation_errors, too_large
from nerserve.json_limits import DEFAULT_MAX_DEPTH, JsonBodyError, loads_bounded
from nerserve.protocol import JSON_FIELDS, Aggregation, OutputFormat, json_type_name

MAX_ID_CHARS = 256


class PredictBody(BaseModel):
    """A prediction request as TorchServe takes it; unset options take the handler's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    text: str
    # Not strict: an option arrives as a JSON string and becomes the enum member of that value.
    aggregation: Aggregation | None = Field(default=None, strict=False)
    format: OutputFormat | None = Field(default=None, strict=False)

    @field_validator("aggregation", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # The handler accepts any case; so does the gateway.
        return value.lower() if isinstance(value, str) else value

    def payload(self, text: str | None = None) -> dict[str, Any]:
        """The JSON body for TorchServe, for ``text`` (a chunk) or the whole request text."""
        body: dict[str, Any] = {"text": self.text if text is None else text}
        if self.aggregation is not None:
            body["aggregation"] = self.aggregation.value
        if self.format is not None:
            body["format"] = self.format.value
        return body


class NerMessage(PredictBody):
    """A WebSocket message in JSON form: a request and the ``id`` its reply carries back."""

    id: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | int | None = Field(default=None)


Body = TypeVar("Body", bound=PredictBody)


def validate_predict_body(body: Any, model: type[Body], max_text_chars: int) -> Body:
    """Validate a decoded JSON value; GatewayError 400 with one readable line per problem, 413 for long text."""
    if not isinstance(body, dict):
        raise bad_request(f'expected a JSON object {{"text": "..."}}, got {json_type(body)}')
    try:
        request = model.model_validate(body)
    except ValidationError as err:
        raise bad_request("; ".join(format_validation_errors(err, field_name))) from None
    ensure_text_fits(request.text, max_text_chars)
    return request


def one_text_payload(value: Any) -> dict[str, Any] | None:
    """``value`` (a decoded JSON body) when it is one text's object as the handler takes it and a WebSocket
    message's payload is: ``{"text": str, "aggregation"?: str, "format"?: str}`` and nothing else; else None (a
    KServe v1 or v2 body, another field, a value that is not a string). Options are not checked: the handler
    answers a bad one in a group exactly as it does alone."""
    if (
        isinstance(value, dict)
        and "text" in value
        and value.keys() <= set(JSON_FIELDS)
        and all(isinstance(field, str) for field in value.values())
    ):
        return value
    return None


def parse_json(content: bytes | str, max_bytes: int) -> Any:
    """A client's JSON, bounded in size and depth (``nerserve.json_limits``, the handler's own rules); GatewayError
    400 (too deep, not UTF-8, not JSON) or 413 (over ``max_bytes``) otherwise, never a RecursionError."""
    try:
        return loads_bounded(content, DEFAULT_MAX_DEPTH, max_bytes)
    except JsonBodyError as err:
        hint = '; expected {"text": "..."}' if err.status == 400 else ""
        raise GatewayError(err.status, err.message + hint) from None


def ensure_text_fits(text: str, max_text_chars: int) -> None:
    """Raises a 413 GatewayError when ``text`` is longer than ``max_text_chars``."""
    if len(text) > max_text_chars:
        raise too_large(f"text has {len(text)} characters, the limit is {max_text_chars}")


def field_name(location: str) -> str:
    return f"field '{location or 'body'}'"


def json_type(value: Any) -> str:
    """``[1]`` -> ``"an array"``: the JSON type's name with its article, for messages."""
    name = json_type_name(value)
    return name if name == "null" else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
