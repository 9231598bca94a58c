"""Request schemas shared by the WebSocket and Server-Sent Events endpoints, and their validation messages.

The fields are TorchServe's (``text``, ``aggregation``, ``format``; see handler/nerserve/requests.py), checked
here so a bad message is answered at once without a round trip. WebSocket messages add an optional ``id``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from gateway.errors import GatewayError, bad_request, too_large

# Mirror the handler's enums (handler/nerserve/settings.py); tests/gateway/test_schemas.py keeps them in step.
Aggregation = Literal["first", "simple", "average", "max"]
OutputFormat = Literal["entities", "segments"]
MAX_ID_CHARS = 256


class NerRequest(BaseModel):
    """A prediction request as TorchServe takes it; unset options take the handler's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    text: str
    aggregation: Aggregation | None = None
    format: OutputFormat | None = None

    @field_validator("aggregation", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # The handler accepts any case; so does the gateway.
        return value.lower() if isinstance(value, str) else value

    def payload(self, text: str | None = None) -> dict[str, Any]:
        """The JSON body for TorchServe, for ``text`` (a chunk) or the whole request text."""
        body: dict[str, Any] = {"text": self.text if text is None else text}
        if self.aggregation is not None:
            body["aggregation"] = self.aggregation
        if self.format is not None:
            body["format"] = self.format
        return body


class NerMessage(NerRequest):
    """A WebSocket message in JSON form: a request and the ``id`` its reply carries back."""

    id: Annotated[str, StringConstraints(max_length=MAX_ID_CHARS)] | int | None = Field(default=None)


def parse_request(body: Any, model: type[NerRequest], max_text_chars: int) -> NerRequest:
    """Validate a decoded JSON value; GatewayError 400 with one readable line per problem, 413 for long text."""
    if not isinstance(body, dict):
        raise bad_request(f'expected a JSON object {{"text": "..."}}, got {json_type(body)}')
    try:
        request = model.model_validate(body)
    except ValidationError as err:
        raise bad_request(describe(err)) from None
    check_length(request.text, max_text_chars)
    return request


def parse_json(content: bytes | str) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as err:
        message = f'the body is not valid JSON ({err.__class__.__name__}); expected {{"text": "..."}}'
        raise bad_request(message) from None


def check_length(text: str, max_text_chars: int) -> None:
    if len(text) > max_text_chars:
        raise too_large(f"text has {len(text)} characters, the limit is {max_text_chars}")


def describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        if problem["type"] == "extra_forbidden":
            problems.append(f"unknown field '{field}'")
        elif problem["type"] == "missing":
            problems.append(f"field '{field}' is required")
        else:
            problems.append(f"field '{field}': {problem['msg']}")
    return "; ".join(problems)


def json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def rebase(body: dict[str, Any], offset: int) -> dict[str, Any]:
    """A TorchServe answer for a chunk with every ``start``/``end`` moved by the chunk's offset in the document."""
    rebased: dict[str, Any] = {}
    for key in ("entities", "segments"):
        if key in body:
            items = body[key]
            if not isinstance(items, list):
                raise GatewayError(502, f"TorchServe answered a non-list '{key}'")
            rebased[key] = [{**item, "start": item["start"] + offset, "end": item["end"] + offset} for item in items]
    if not rebased:
        raise GatewayError(502, "TorchServe's answer has neither 'entities' nor 'segments'")
    return rebased
