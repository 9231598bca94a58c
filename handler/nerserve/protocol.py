"""The request/response protocol of ``POST /predictions/ner_model``: one home, imported by the handler and the gateway.

Dependency-free (standard library only) so that the gateway, its image and the tools import it without torch.

Request body: ``{"text": str, "aggregation"?: Aggregation, "format"?: OutputFormat}`` (``JSON_FIELDS``).
Response body: ``{"entities": [{label, text, start, end, score}, ...]}`` or ``{"segments": [...]}``, where every
``text`` equals ``original[start:end]`` (Python string indices). Every error a client can cause is
``{"code": <status>, "type": <error_type(status)>, "message": str}`` (``error_body``), TorchServe's own shape.
"""

from __future__ import annotations

import enum
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

# Response headers set by the handler on every answer, passed through by the gateway.
BATCH_SIZE_HEADER = "X-NER-Batch-Size"
MODEL_VERSION_HEADER = "X-NER-Model-Version"
RESPONSE_HEADERS = (BATCH_SIZE_HEADER, MODEL_VERSION_HEADER)

OUTSIDE = "O"  # the tag of a word piece outside every entity
OTHER_SEGMENT = "other"  # the label of a segment between entities (format "segments")

# Default limits, in step with config.properties' max_request_size (tests/test_serving_config.py checks it).
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_REQUEST_BYTES = 1_300_000  # DEFAULT_MAX_TEXT_CHARS JSON-escaped at up to 12 bytes each, plus envelope


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
