"""One TorchServe request item -> its texts: the single-text forms, KServe v1 and the Open Inference Protocol v2.

The handler parses these bodies itself, with TorchServe's ``service_envelope`` off: TorchServe 0.12's ``kserve``
and ``kservev2`` envelopes unwrap only the first request of a dynamic batch (pytorch/serve#2158, #1302, never
fixed), so with them every other request of the batch is lost. The body says which protocol it speaks
(``instances``: v1, ``inputs``: v2, anything else: one text), so ``/predictions/ner_model`` and TorchServe's own
``/v1/models/ner_model:predict`` and ``/v2/models/ner_model/infer`` routes answer alike, and requests of every
kind share one dynamic batch. Shapes and limits: ``nerserve.protocol``.

Per text, a problem (not a string, too long, an unpaired surrogate, an unknown option) is a ``RequestError`` in
that text's slot; the request's other texts are served. Problems of the whole body raise ``RequestError``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nerserve.protocol import (
    V1_FIELDS,
    V1_INSTANCES,
    V2_CONTENT_TYPE,
    V2_DATATYPE,
    V2_FIELDS,
    V2_INPUT_FIELDS,
    V2_INPUT_PARAMETERS,
    V2_INPUTS,
    V2_OUTPUT_NAME,
    V2_PARAMETERS,
    Aggregation,
    BodyKind,
    OutputFormat,
    error_body,
    json_type_name,
    v1_instance_where,
    v1_response,
    v2_response,
)
from nerserve.requests import (
    NerRequest,
    RequestError,
    decoded_payload,
    quote_client_value,
    request_from_fields,
    request_from_payload,
    request_options,
    text_request,
)

if TYPE_CHECKING:
    from nerserve.settings import HandlerSettings

TextSlot = NerRequest | RequestError


@dataclasses.dataclass(frozen=True)
class Body:
    """The texts of one request, each a valid request or its own error, in the order the client sent them."""

    kind: BodyKind
    texts: list[TextSlot]
    request_id: str | None = None  # v2's "id", echoed in the response


def parse_body(item: Mapping[str, Any] | None, content_type: str | None, settings: HandlerSettings) -> Body:
    """The request's texts; raises RequestError (400, 413) when the body as a whole cannot be served."""
    payload = decoded_payload(item, content_type, settings.max_request_bytes)
    if isinstance(payload, Mapping) and V1_INSTANCES in payload:
        return _v1_body(payload, settings)
    if isinstance(payload, Mapping) and V2_INPUTS in payload:
        return _v2_body(payload, settings)
    return Body(BodyKind.SINGLE, [request_from_payload(payload, settings)])


def _check_fields(body: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(map(str, body)) - set(allowed))
    if unknown:
        shown = [quote_client_value(name) for name in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        raise RequestError(400, f"unknown field(s) {', '.join(shown)} in {where}; allowed fields are {list(allowed)}")


def _check_limits(texts: Sequence[Any], settings: HandlerSettings) -> None:
    """413 for a request over the text count or the total character limit; non-strings count 0 characters (they
    get their own 400)."""
    if len(texts) > settings.max_texts_per_request:
        raise RequestError(
            413,
            f"the request has {len(texts)} texts, the limit is {settings.max_texts_per_request}; "
            "send them in several requests",
        )
    total = sum(len(text) for text in texts if isinstance(text, str))
    if total > settings.max_request_chars:
        raise RequestError(
            413,
            f"the request's texts have {total} characters in all, the limit is {settings.max_request_chars}; "
            "send them in several requests",
        )


def _in_slot(where: str, parse: Any, *args: Any) -> TextSlot:
    """``parse(*args)``, or its RequestError with the slot named in the message."""
    try:
        request: NerRequest = parse(*args)
    except RequestError as error:
        return RequestError(error.status, f"{where}: {error.message}")
    return request


# --- KServe v1 ---------------------------------------------------------------------------------------------------


def _v1_body(payload: Mapping[str, Any], settings: HandlerSettings) -> Body:
    _check_fields(payload, V1_FIELDS, "a KServe v1 request")
    instances = payload[V1_INSTANCES]
    if not isinstance(instances, list):
        raise RequestError(400, f"'instances' must be an array, got {json_type_name(instances)}")
    _check_limits([_v1_text(instance) for instance in instances], settings)
    return Body(BodyKind.KSERVE_V1, [_v1_instance(index, value, settings) for index, value in enumerate(instances)])


def _v1_text(instance: Any) -> Any:
    return instance.get("text") if isinstance(instance, Mapping) else instance


def _v1_instance(index: int, instance: Any, settings: HandlerSettings) -> TextSlot:
    where = v1_instance_where(index)
    if isinstance(instance, str):
        return _in_slot(where, text_request, instance, settings.default_aggregation, settings.default_format, settings)
    if isinstance(instance, Mapping):
        return _in_slot(where, request_from_fields, instance, settings)
    return RequestError(
        400, f'{where}: an instance is a string or an object {{"text": ...}}, got {json_type_name(instance)}'
    )


# --- Open Inference Protocol (KServe v2) -------------------------------------------------------------------------


def _v2_body(payload: Mapping[str, Any], settings: HandlerSettings) -> Body:
    _check_fields(payload, V2_FIELDS, "an inference request")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, f"'id' must be a string, got {json_type_name(request_id)}")
    aggregation, output_format = _v2_options(payload.get("parameters"), settings)
    _check_requested_outputs(payload.get("outputs"))
    inputs = payload[V2_INPUTS]
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], Mapping):
        raise RequestError(400, f"'inputs' must be an array of exactly one input (a {V2_DATATYPE} tensor of the texts)")
    data = _v2_data(inputs[0])
    _check_limits(data, settings)
    texts: list[TextSlot] = []
    for index, text in enumerate(data):
        where = f"inputs[0].data[{index}]"
        if isinstance(text, str):
            texts.append(_in_slot(where, text_request, text, aggregation, output_format, settings))
        else:
            texts.append(RequestError(400, f"{where}: a text must be a string, got {json_type_name(text)}"))
    return Body(BodyKind.KSERVE_V2, texts, request_id)


def _v2_options(parameters: Any, settings: HandlerSettings) -> tuple[Aggregation, OutputFormat]:
    if parameters is None:
        return settings.default_aggregation, settings.default_format
    if not isinstance(parameters, Mapping):
        raise RequestError(400, f"'parameters' must be an object, got {json_type_name(parameters)}")
    _check_fields(parameters, V2_PARAMETERS, "'parameters'")
    try:
        return request_options(parameters, settings)
    except ValueError as err:
        raise RequestError(400, f"parameters: {err}") from None


def _check_requested_outputs(outputs: Any) -> None:
    if outputs is None:
        return
    names = (
        [output.get("name") for output in outputs if isinstance(output, Mapping)] if isinstance(outputs, list) else []
    )
    if not isinstance(outputs, list) or len(names) != len(outputs) or any(name != V2_OUTPUT_NAME for name in names):
        raise RequestError(400, f"'outputs' may only request the output {V2_OUTPUT_NAME!r}")


def _v2_data(tensor: Mapping[str, Any]) -> list[Any]:
    """The input's elements in row-major order, once its datatype, shape and parameters say "N strings"."""
    _check_fields(tensor, V2_INPUT_FIELDS, "inputs[0]")
    for field in ("name", "shape", "datatype", "data"):
        if field not in tensor:
            raise RequestError(400, f"inputs[0]: field '{field}' is required")
    if tensor["datatype"] != V2_DATATYPE:
        raise RequestError(
            400, f"inputs[0]: datatype must be {V2_DATATYPE!r} (texts), got {quote_client_value(tensor['datatype'])}"
        )
    parameters = tensor.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, Mapping):
            raise RequestError(400, f"inputs[0].parameters must be an object, got {json_type_name(parameters)}")
        _check_fields(parameters, V2_INPUT_PARAMETERS, "inputs[0].parameters")
        if parameters.get("content_type", V2_CONTENT_TYPE) != V2_CONTENT_TYPE:
            raise RequestError(
                400,
                f"inputs[0].parameters.content_type must be {V2_CONTENT_TYPE!r} (UTF-8 texts), got "
                f"{quote_client_value(parameters['content_type'])}",
            )
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise RequestError(400, "inputs[0]: shape must be an array of non-negative integers, e.g. [3]")
    data = tensor["data"]
    if not isinstance(data, list):
        raise RequestError(400, f"inputs[0]: data must be an array of texts, got {json_type_name(data)}")
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise RequestError(400, f"inputs[0]: shape {shape} holds {math.prod(shape)} elements, data has {len(flat)}")
    return flat


def _flatten(data: list[Any]) -> list[Any]:
    """The protocol lets a client nest data by the shape ([[a], [b]] for [2, 1]) or send it flat."""
    flat: list[Any] = []
    pending = [iter(data)]
    while pending:
        for element in pending[-1]:
            if isinstance(element, list):
                pending.append(iter(element))
                break
            flat.append(element)
        else:
            pending.pop()
    return flat


# --- the way back ------------------------------------------------------------------------------------------------


def response_body(body: Body, results: Sequence[dict[str, Any]], model_name: str, model_version: str) -> dict[str, Any]:
    """The response to one request from the results of its texts, in order (a text's error is its
    ``error_body``); a single text's result is the response itself."""
    if len(results) != len(body.texts):
        raise ValueError(f"a request of {len(body.texts)} texts got {len(results)} results")
    if body.kind is BodyKind.KSERVE_V1:
        return v1_response(results)
    if body.kind is BodyKind.KSERVE_V2:
        return v2_response(model_name, model_version, body.request_id, results)
    return results[0]


@dataclasses.dataclass(frozen=True)
class BatchBodies:
    """The requests of one TorchServe batch, each parsed (``Body``) or failed as a whole (``RequestError``), and
    where their texts sit in the batch's flat list of texts, which is tokenized in one call and shares forward
    passes whatever request a text came from."""

    bodies: list[Body | RequestError]
    first_text: list[int]  # per request, the flat index of its first text (its texts are consecutive)
    text_count: int

    @classmethod
    def of(cls, bodies: Sequence[Body | RequestError]) -> BatchBodies:
        first_text, count = [], 0
        for body in bodies:
            first_text.append(count)
            count += len(body.texts) if isinstance(body, Body) else 0
        return cls(list(bodies), first_text, count)

    @property
    def size(self) -> int:
        """The number of requests (TorchServe's batch size)."""
        return len(self.bodies)

    def text_slots(self) -> dict[int, TextSlot]:
        """Every text of every parsed request by flat index."""
        return {
            self.first_text[index] + offset: slot
            for index, body in enumerate(self.bodies)
            if isinstance(body, Body)
            for offset, slot in enumerate(body.texts)
        }

    def request_errors(self, text_errors: Mapping[int, RequestError]) -> dict[int, RequestError]:
        """The requests answered with an error status: those failed as a whole, and single-text requests whose
        text failed (a text of a KServe request keeps its error in its slot and the request answers 200)."""
        errors: dict[int, RequestError] = {}
        for index, body in enumerate(self.bodies):
            if isinstance(body, RequestError):
                errors[index] = body
            elif body.kind is BodyKind.SINGLE and self.first_text[index] in text_errors:
                errors[index] = text_errors[self.first_text[index]]
        return errors

    def responses(
        self, text_results: Sequence[dict[str, Any]], model_name: str, model_version: str
    ) -> list[dict[str, Any]]:
        """One response body per request, in request order, from the flat per-text results."""
        if len(text_results) != self.text_count:
            raise ValueError(f"{self.text_count} texts but {len(text_results)} results")
        out = []
        for index, body in enumerate(self.bodies):
            if isinstance(body, RequestError):
                out.append(error_body(body.status, body.message))
            else:
                first = self.first_text[index]
                out.append(
                    response_body(body, text_results[first : first + len(body.texts)], model_name, model_version)
                )
        return out


# --- limits known only after tokenizing --------------------------------------------------------------------------


def slot_name(kind: BodyKind, offset: int) -> str | None:
    """How an error message names text ``offset`` of a request (None: a single-text request, the request itself)."""
    if kind is BodyKind.KSERVE_V1:
        return v1_instance_where(offset)
    if kind is BodyKind.KSERVE_V2:
        return f"inputs[0].data[{offset}]"
    return None


def piece_limit_errors(
    bodies: BatchBodies, piece_counts: Mapping[int, int], settings: HandlerSettings
) -> tuple[dict[int, RequestError], dict[int, RequestError]]:
    """The texts over ``max_text_pieces`` (413 in their slot, by text index) and the requests whose other texts
    hold more than ``max_request_pieces`` in all (413 for the request, by request index); ``piece_counts`` holds
    the word pieces of every tokenized text by text index. Checked before any window is planned, so a text
    within the character limits but degenerate ("a," * 50_000: one piece per character) costs only its
    tokenization."""
    text_errors: dict[int, RequestError] = {}
    request_errors: dict[int, RequestError] = {}
    for request_index, body in enumerate(bodies.bodies):
        if isinstance(body, RequestError):
            continue
        total = 0
        for offset in range(len(body.texts)):
            index = bodies.first_text[request_index] + offset
            if index not in piece_counts:
                continue
            count = piece_counts[index]
            if count > settings.max_text_pieces:
                message = f"the text has {count:,} word pieces, the limit is {settings.max_text_pieces:,}; split it"
                where = slot_name(body.kind, offset)
                text_errors[index] = RequestError(413, f"{where}: {message}" if where else message)
            else:
                total += count
        if total > settings.max_request_pieces:
            request_errors[request_index] = RequestError(
                413,
                f"the request's texts have {total:,} word pieces in all, the limit is "
                f"{settings.max_request_pieces:,}; send them in several requests",
            )
    return text_errors, request_errors


def fail_requests(bodies: BatchBodies, failed: Mapping[int, RequestError]) -> tuple[BatchBodies, dict[int, int]]:
    """``bodies`` with the requests of ``failed`` (by request index) answered by their error as a whole, and the
    new text index of every text of the other requests, by its old text index."""
    kept = [failed.get(index, body) for index, body in enumerate(bodies.bodies)]
    new = BatchBodies.of(kept)
    moved: dict[int, int] = {}
    for index, body in enumerate(kept):
        if isinstance(body, Body):
            for offset in range(len(body.texts)):
                moved[bodies.first_text[index] + offset] = new.first_text[index] + offset
    return new, moved
