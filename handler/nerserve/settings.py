"""Handler settings and the enums of request options, validated once at load."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any


class Aggregation(str, enum.Enum):
    """Word aggregation strategies, with the semantics of transformers' TokenClassificationPipeline."""

    FIRST = "first"
    SIMPLE = "simple"
    AVERAGE = "average"
    MAX = "max"


class Quantization(str, enum.Enum):
    """Optional faster compute paths; each is kept only where docs/PERFORMANCE.md shows it wins."""

    NONE = "none"
    INT8_DYNAMIC = (
        "int8_dynamic"  # CPU: Linear layers with int8 weights (per channel), activations quantised on the fly
    )


class OutputFormat(str, enum.Enum):
    ENTITIES = "entities"
    SEGMENTS = "segments"


@dataclasses.dataclass(frozen=True)
class HandlerSettings:
    """Knobs read from the ``handler:`` section of the archive's model-config YAML.

    max_text_chars: longer texts are refused with 413 before tokenising (tokenising megabytes takes seconds).
    max_length: word pieces per window including [CLS]/[SEP]; capped by the model's position embeddings.
    window_overlap: word pieces shared by consecutive windows of a long text; each token is labelled by the
        window where it has the most context on both sides.
    tokens_per_forward: budget of padded word pieces per forward pass; windows are length-sorted and cut into
        sub-batches under this budget, so short sentences are never padded to the longest document.
    default_aggregation / default_format: used when a request does not say.
    quantization: "int8_dynamic" runs the Linear layers in int8 on CPU (faster, slightly different scores).
    torch_threads: intra-op threads of this worker's CPU forward passes; 0 keeps torch's default (one per core).
        Keep workers x torch_threads <= cores: on 2 cores, 2 workers of 1 thread each overlap one worker's
        tokenising, decoding and I/O with the other's forward pass and serve ~1.25x more than 1 worker of 2
        threads, whose threads also wait on each other whenever the frontend takes a core (docs/PERFORMANCE.md).
    """

    max_text_chars: int = 100_000
    max_length: int = 512
    window_overlap: int = 128
    tokens_per_forward: int = 16_384
    default_aggregation: Aggregation = Aggregation.FIRST
    default_format: OutputFormat = OutputFormat.ENTITIES
    quantization: Quantization = Quantization.NONE
    torch_threads: int = 0

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ValueError(f"handler.max_text_chars must be >= 1, got {self.max_text_chars}")
        if self.max_length < 8:
            raise ValueError(f"handler.max_length must be >= 8, got {self.max_length}")
        if not 0 <= self.window_overlap <= (self.max_length - 2) // 2:
            raise ValueError(
                f"handler.window_overlap must be between 0 and half a window ({(self.max_length - 2) // 2}), "
                f"got {self.window_overlap}"
            )
        if self.torch_threads < 0:
            raise ValueError(f"handler.torch_threads must be >= 0 (0: torch's default), got {self.torch_threads}")
        if self.tokens_per_forward < self.max_length:
            raise ValueError(
                f"handler.tokens_per_forward ({self.tokens_per_forward}) must hold at least one full window "
                f"(max_length {self.max_length})"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> HandlerSettings:
        """Build from a YAML mapping; unknown keys are an error so a typo cannot silently keep a default."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"handler settings: unknown keys {unknown}; known keys are {sorted(known)}")
        if "default_aggregation" in values:
            values["default_aggregation"] = parse_enum(
                Aggregation, values["default_aggregation"], "default_aggregation"
            )
        if "default_format" in values:
            values["default_format"] = parse_enum(OutputFormat, values["default_format"], "default_format")
        if "quantization" in values:
            values["quantization"] = parse_enum(Quantization, values["quantization"], "quantization")
        for name in ("max_text_chars", "max_length", "window_overlap", "tokens_per_forward", "torch_threads"):
            if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool)):
                raise ValueError(f"handler.{name} must be an integer, got {values[name]!r}")
        return cls(**values)

    def with_model_limit(self, model_max_positions: int) -> HandlerSettings:
        """Cap the window length at what the model's position embeddings allow."""
        if self.max_length <= model_max_positions:
            return self
        overlap = min(self.window_overlap, (model_max_positions - 2) // 2)
        return dataclasses.replace(self, max_length=model_max_positions, window_overlap=overlap)


def parse_enum(kind: type[enum.Enum], value: Any, field: str) -> Any:
    choices = [member.value for member in kind]
    if isinstance(value, str):
        for member in kind:
            if member.value == value.lower():
                return member
    raise ValueError(f"'{field}' must be one of {choices}, got {echo(value)}")


ECHO_CHARS = 40


def echo(value: Any) -> str:
    """A client's value quoted in an error message, which is also the HTTP reason phrase: repr (so no raw line
    breaks), cut to ECHO_CHARS characters (a megabyte-long value must not become a megabyte-long status line)."""
    shown = repr(value)
    return shown if len(shown) <= ECHO_CHARS else shown[: ECHO_CHARS - 3] + "..."
