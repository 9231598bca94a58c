"""The request/response protocol of the model: one home, imported by the handler and the gateway.

Dependency-free (standard library only) so that the gateway, its image and the tools import it without torch.

One text (``POST /predictions/ner_model``): ``{"text": str, "aggregation"?: Aggregation, "format"?: OutputFormat}``
(``JSON_FIELDS``), or the text itself as plain text, bytes or a multipart field. Its result is
``{"entities": [{label, text, start, end, score}, ...]}`` or ``{"segments": [...]}``, where every ``text`` equals
``original[start:end]`` (Python string indices).

Several texts in one request (``BodyKind``), on ``/predictions/ner_model``, ``/v1/models/ner_model:predict`` and
``/v2/models/ner_model/infer`` alike (the body says which protocol it speaks, not the route):

* KServe v1: ``{"instances": [text or {"text", "aggregation"?, "format"?}, ...]}`` ->
  ``{"predictions": [result, ...]}`` (``v1_response``), one result per instance, in order.
* Open Inference Protocol v2: ``{"id"?, "parameters"?: {"aggregation"?, "format"?}, "inputs": [{"name",
  "shape": [N], "datatype": "BYTES", "data": [text, ...], "parameters"?: {"content_type": "str"}}], "outputs"?}``
  -> ``{"model_name", "model_version", "id"?, "outputs": [{"name": V2_OUTPUT_NAME, "shape": [N], "datatype":
  "BYTES", "parameters": {"content_type": "str"}, "data": [json.dumps(result), ...]}]}`` (``v2_response``): BYTES
  elements are strings, so each result travels as its JSON text, in input order.

A text that cannot be served (not a string, too long, invalid Unicode) gets ``error_body`` in its own slot and the
other texts are answered (status 200). Whole-request problems (a malformed body, more than the text or character
limit: 413 naming both numbers) get ``error_body`` as the whole response with that status.

Every error a client can cause is ``{"code": <status>, "type": <error_type(status)>, "message": str}``
(``error_body``), TorchServe's own shape (TorchServe answers its own errors, 404 or 503, with it on every route).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, TypedDict


class Aggregation(enum.StrEnum):
    """How word pieces become words, with the semantics of transformers' ``TokenClassificationPipeline``.

    For "Mi ##cro ##soft" tagged B-ORG (0.9), I-ORG (0.6), B-PER (0.7):
    """

    FIRST = "first"
    """The word takes the label of its first word piece: ORG "Microsoft" (score 0.9)."""
    SIMPLE = "simple"
    """No word grouping: each word piece keeps its own label; B-/I- tags then join pieces into entities."""
    AVERAGE = "average"
    """Scores are averaged over the word's pieces, then the best label wins (the score is that average)."""
    MAX = "max"
    """The word takes the label of its most confident piece: ORG "Microsoft" (0.9)."""


class OutputFormat(enum.StrEnum):
    """The shape of a response; its key is the format's name, whatever the other options."""

    ENTITIES = "entities"
    """Only the entities found: ``{"entities": [{label, text, start, end, score}, ...]}``."""
    SEGMENTS = "segments"
    """The whole text tiled: entities plus the gaps between them labelled ``OTHER_SEGMENT``."""


JSON_FIELDS = ("text", "aggregation", "format")


class BodyKind(enum.StrEnum):
    """The protocol a request body speaks, told by its top-level field."""

    SINGLE = "single"
    """One text: ``{"text": ...}``, plain text, bytes or a multipart field; answered with its result."""
    KSERVE_V1 = "kserve_v1"
    """``{"instances": [...]}``: answered with ``{"predictions": [...]}``."""
    KSERVE_V2 = "kserve_v2"
    """``{"inputs": [...]}`` (Open Inference Protocol): answered with ``{"model_name", ..., "outputs": [...]}``."""


V1_INSTANCES = "instances"
V1_PREDICTIONS = "predictions"
V1_FIELDS = (V1_INSTANCES,)
V2_INPUTS = "inputs"
V2_FIELDS = ("id", "parameters", V2_INPUTS, "outputs")
V2_INPUT_FIELDS = ("name", "shape", "datatype", "data", "parameters")
V2_PARAMETERS = ("aggregation", "format")  # request-level "parameters": the options of every text
V2_INPUT_PARAMETERS = ("content_type",)  # what KServe's clients put on a BYTES input; only "str" is read
V2_CONTENT_TYPE = "str"
V2_DATATYPE = "BYTES"
V2_OUTPUT_NAME = "ner"

# Response headers set by the handler on every answer, passed through by the gateway.
BATCH_SIZE_HEADER = "X-NER-Batch-Size"
MODEL_VERSION_HEADER = "X-NER-Model-Version"
RESPONSE_HEADERS = (BATCH_SIZE_HEADER, MODEL_VERSION_HEADER)

# The document lane: the same archive served under a second model name with batching of its own, so that short
# texts never wait in a batch behind long documents (docs/PERFORMANCE.md, "Mixed load"). Bodies over
# DEFAULT_DOCUMENT_BYTES go there through the gateway; scripts/manage.py keeps its versions in step with the model's.
DOCUMENT_LANE_SUFFIX = "_documents"
DEFAULT_DOCUMENT_BYTES = 2048  # ~one 512-piece window of English text


def document_lane(model: str) -> str:
    """The name under which ``model``'s archive serves long documents."""
    return model + DOCUMENT_LANE_SUFFIX


def is_document_lane(model: str) -> bool:
    """Whether ``model`` is a model's document lane (``document_lane`` of some name)."""
    return model.endswith(DOCUMENT_LANE_SUFFIX) and model != DOCUMENT_LANE_SUFFIX


OUTSIDE = "O"  # the tag of a word piece outside every entity
OTHER_SEGMENT = "other"  # the label of a segment between entities (format "segments")

# Default limits, in step with config.properties' max_request_size (tests/test_serving_config.py checks it).
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_REQUEST_BYTES = 1_300_000  # DEFAULT_MAX_TEXT_CHARS JSON-escaped at up to 12 bytes each, plus envelope
# A request of several texts holds at most this many characters in all: by default one longest text, so the worst
# TorchServe batch (batchSize requests) costs what it cost with one text per request and responseTimeout holds.
DEFAULT_MAX_REQUEST_CHARS = DEFAULT_MAX_TEXT_CHARS
DEFAULT_MAX_TEXTS_PER_REQUEST = 64


class Entity(TypedDict):
    label: str
    text: str
    start: int
    end: int
    score: float


# Statuses whose type name differs from the reason phrase in some Python version (HTTPStatus 413 was renamed).
_TYPE_NAMES = {413: "PayloadTooLarge"}


def error_type(status: int) -> str:
    """``400`` -> ``"BadRequest"``: the reason phrase without spaces, as TorchServe names its error types."""
    if status in _TYPE_NAMES:
        return _TYPE_NAMES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return "".join(word.capitalize() if word.islower() else word for word in phrase.split())


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages: ``[1]`` -> ``"array"``, ``None`` -> ``"null"``."""
    if value is None:
        return "null"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def error_body(status: int, message: str, type_name: str | None = None) -> dict[str, Any]:
    """The JSON body of every error a client sees, from the handler, the gateway or TorchServe itself."""
    return {"code": status, "type": type_name or error_type(status), "message": message}


def error_fields_of(value: Any) -> tuple[int, str, str] | None:
    """(status, type, message) when ``value`` is an ``error_body`` (a whole answer, or one text's result of a
    multi-text answer), else None."""
    if (
        isinstance(value, dict)
        and set(value) == {"code", "type", "message"}
        and isinstance(value["code"], int)
        and isinstance(value["type"], str)
        and isinstance(value["message"], str)
    ):
        return value["code"], value["type"], value["message"]
    return None


def v1_instance_where(index: int) -> str:
    """How an error message names the instance it is about: ``instances[3]: <message>``."""
    return f"{V1_INSTANCES}[{index}]"


def v1_response(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """KServe v1's response: one result (or ``error_body``) per instance, in order."""
    return {V1_PREDICTIONS: list(results)}


def v2_response(
    model_name: str, model_version: str, request_id: str | None, results: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The Open Inference Protocol's response: one BYTES output of shape [N] whose elements are the JSON texts of
    the N results (or ``error_body``), in input order; ``id`` is echoed when the request had one."""
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = [
        {
            "name": V2_OUTPUT_NAME,
            "shape": [len(results)],
            "datatype": V2_DATATYPE,
            "parameters": {"content_type": V2_CONTENT_TYPE},
            "data": [json.dumps(result, ensure_ascii=False) for result in results],
        }
    ]
    return response
