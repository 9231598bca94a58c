"""Turn one TorchServe request item into a validated NER request, or a typed client error.

TorchServe hands the handler, per request, ``{"body": dict}`` for JSON, ``{"body": str}`` for text/plain,
``{"body": bytearray}`` for other or missing content types and for JSON it could not decode, ``{"data": bytearray}``
for a multipart field ``data``, and the form's fields when the body was a form (``curl -d`` without a
Content-Type): ``{"text": bytearray}`` for ``-d 'text=...'``, ``{}`` for a JSON string sent as a form.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from nerserve.json_limits import DEFAULT_MAX_DEPTH, JsonBodyError, loads_bounded
from nerserve.protocol import DEFAULT_MAX_REQUEST_BYTES, JSON_FIELDS, Aggregation, OutputFormat, json_type_name
from nerserve.safe_logging import log_failure

if TYPE_CHECKING:  # settings.py imports parse_option from here; at run time only the annotations name it
    from nerserve.settings import HandlerSettings

Option = TypeVar("Option", bound=enum.Enum)

logger = logging.getLogger(__name__)

QUOTED_CHARS = 40


class RequestError(Exception):
    """A problem the client caused; ``status`` is the HTTP status that request gets inside its batch.

    Its response body is ``nerserve.protocol.error_body(status, message)``.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def internal_error(stage: str, error: BaseException) -> RequestError:
    """A bug of ours met while ``stage`` one request or text: logged with its stack (frames only: the exception's
    message, which may quote the client's text, is left out) and answered as that request's or text's own 500,
    so the rest of its batch is served."""
    log_failure(logger, f"{stage} one text failed; that text gets a 500, the rest of the batch is served", error)
    return RequestError(500, f"internal error while {stage.lower()} this text; the server logged it")


@dataclasses.dataclass(frozen=True)
class NerRequest:
    text: str
    aggregation: Aggregation
    output_format: OutputFormat


def quote_client_value(value: Any) -> str:
    """A client's value quoted in an error message, which is also the HTTP reason phrase: repr (so no raw line
    breaks), cut to QUOTED_CHARS characters (a megabyte-long value must not become a megabyte-long status line)."""
    shown = repr(value)
    return shown if len(shown) <= QUOTED_CHARS else shown[: QUOTED_CHARS - 3] + "..."


def parse_option(kind: type[Option], value: Any, field: str) -> Option:
    """The member of ``kind`` whose value is ``value`` (case-insensitive); a ValueError names ``field``."""
    if isinstance(value, str):
        for member in kind:
            if member.value == value.lower():
                return member
    choices = [member.value for member in kind]
    raise ValueError(f"'{field}' must be one of {choices}, got {quote_client_value(value)}")


def parse_request(item: Mapping[str, Any] | None, content_type: str | None, settings: HandlerSettings) -> NerRequest:
    """Validate one single-text request; raises RequestError (400 or 413) with a message the client can act on."""
    return request_from_payload(decoded_payload(item, content_type, settings.max_request_bytes), settings)


def decoded_payload(
    item: Mapping[str, Any] | None, content_type: str | None, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> Any:
    """The request's body as TorchServe parsed it, with bytes decoded: a JSON value when the Content-Type says JSON
    (TorchServe parses only the exact type "application/json"), else a str; RequestError when it cannot be read.

    Whatever the form, the JSON value returned nests at most ``DEFAULT_MAX_DEPTH`` arrays/objects deep, so no code
    after this (repr, formatting, flattening) can recurse past Python's stack on client data: bytes are parsed
    with ``loads_bounded`` (depth checked before the parser runs), and a value TorchServe already parsed (its
    parser stops at ~1,000 levels, far deeper than any body here) is measured without recursion.
    """
    payload = _payload(item)
    if not isinstance(payload, (bytes, bytearray)):
        if nested_deeper_than(payload, DEFAULT_MAX_DEPTH):
            raise RequestError(400, f"the JSON body is nested more than {DEFAULT_MAX_DEPTH} levels deep")
        return payload
    try:
        decoded = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {err.start})") from None
    if content_type and "json" in content_type.lower():
        # Anything else that says JSON ("Application/JSON", "application/json; charset=UTF-8", which KServe's
        # TorchServe wrapper sends) or JSON TorchServe could not parse arrives as bytes.
        try:
            return loads_bounded(decoded, DEFAULT_MAX_DEPTH, max_bytes)
        except JsonBodyError as err:
            raise RequestError(err.status, err.message) from None
    return decoded


def nested_deeper_than(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value holds arrays/objects more than ``max_depth`` levels deep; an explicit stack,
    never recursion, and it stops at the first container past the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (Mapping, list)) else []
    while stack:
        current, depth = stack.pop()
        if depth > max_depth:
            return True
        children = current.values() if isinstance(current, Mapping) else current
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list)))
    return False


def request_from_payload(payload: Any, settings: HandlerSettings) -> NerRequest:
    """The single-text request of a decoded body (``decoded_payload``)."""
    if isinstance(payload, Mapping):
        return request_from_fields(payload, settings)
    if isinstance(payload, list):
        raise RequestError(400, 'expected a JSON object {"text": "..."}, got a JSON array')
    if isinstance(payload, str):
        return text_request(payload, settings.default_aggregation, settings.default_format, settings)
    raise RequestError(400, f"unsupported body of type {type(payload).__name__}")


def _payload(item: Mapping[str, Any] | None) -> Any:
    if not item:
        raise RequestError(
            400,
            'empty request body; send JSON {"text": "..."} with Content-Type: application/json, or plain text '
            "(a form-encoded body, curl -d without a Content-Type, reaches the model empty)",
        )
    for key in ("body", "data", "text"):  # raw body, multipart field, form field
        if item.get(key) is not None:
            return item[key]
    raise RequestError(
        400, f"no body, multipart field 'data' or form field 'text'; got form fields {sorted(map(str, item))[:5]}"
    )


def request_from_fields(body: Mapping[str, Any], settings: HandlerSettings) -> NerRequest:
    """A request from the JSON object ``{"text", "aggregation"?, "format"?}`` (``JSON_FIELDS``)."""
    unknown = sorted(set(body) - set(JSON_FIELDS))
    if unknown:
        shown = [quote_client_value(name) for name in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        raise RequestError(400, f"unknown field(s) {', '.join(shown)}; allowed fields are {list(JSON_FIELDS)}")
    if "text" not in body:
        raise RequestError(400, "field 'text' is required")
    text = body["text"]
    if not isinstance(text, str):
        raise RequestError(400, f"field 'text' must be a string, got {json_type_name(text)}")
    try:
        aggregation, output_format = request_options(body, settings)
    except ValueError as err:
        raise RequestError(400, str(err)) from None
    return text_request(text, aggregation, output_format, settings)


def request_options(values: Mapping[str, Any], settings: HandlerSettings) -> tuple[Aggregation, OutputFormat]:
    """``aggregation`` and ``format`` of a request body (or v2 ``parameters``), the settings' defaults when unset;
    ValueError naming the field for an unknown value."""
    aggregation = values.get("aggregation")
    output_format = values.get("format")
    return (
        settings.default_aggregation if aggregation is None else parse_option(Aggregation, aggregation, "aggregation"),
        settings.default_format if output_format is None else parse_option(OutputFormat, output_format, "format"),
    )


def text_request(
    text: str, aggregation: Aggregation, output_format: OutputFormat, settings: HandlerSettings
) -> NerRequest:
    """The request, once its text is within the limit and valid Unicode."""
    if len(text) > settings.max_text_chars:
        raise RequestError(
            413, f"text has {len(text)} characters, the limit is {settings.max_text_chars}; split the document"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        # JSON may escape a lone surrogate ("\ud800"); it is not a character, and the tokenizer would fail on it.
        raise RequestError(
            400,
            f"text has an unpaired surrogate (U+{ord(text[err.start]):04X}) at character {err.start}; "
            "send valid Unicode",
        ) from None
    return NerRequest(text=text, aggregation=aggregation, output_format=output_format)
