"""Handler settings, validated once at load (the request options' enums are the protocol's)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from nerserve.memory import DEFAULT_RELEASE_MEMORY_AFTER_PIECES
from nerserve.priority import DEFAULT_DOCUMENT_LANE_NICENESS, MAX_NICENESS
from nerserve.protocol import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_REQUEST_CHARS,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TEXTS_PER_REQUEST,
    Aggregation,
    OutputFormat,
)
from nerserve.requests import parse_option

# Word pieces, not characters, are what a text costs (windows, forward passes): "a," * 50_000 is 100,000 characters
# and 100,000 pieces, an English document of 100,000 characters ~21,000. The sizing rule that sets this default
# (batchSize texts of this many pieces finish well inside responseTimeout): docs/PERFORMANCE.md, "Sizing".
DEFAULT_MAX_TEXT_PIECES = 24_576


class Quantization(enum.StrEnum):
    """Optional faster compute paths; each is kept only where docs/PERFORMANCE.md shows it wins."""

    NONE = "none"
    # CPU: Linear layers with int8 weights (per channel), activations quantized on the fly.
    INT8_DYNAMIC = "int8_dynamic"


class ForwardMode(enum.StrEnum):
    """How a forward pass feeds the model its rows (docs/PERFORMANCE.md, "Padding-free forward")."""

    # The rows' tokens end to end: every per-token layer skips the padding, only attention sees rows.
    PACKED = "packed"
    # Rows padded to the pass's longest (transformers' own forward).
    PADDED = "padded"


class LinearKernels(enum.StrEnum):
    """Which kernels run the fp32 Linear layers on CPU (docs/PERFORMANCE.md, "Linear kernels")."""

    # oneDNN's GEMM on weights reordered once at load (nerserve.linear_kernels); where the op is missing or fails its
    # check at load, torch's own, said in the ready log line.
    ONEDNN = "onednn"
    # torch's nn.Linear as it is (MKL's sgemm on x86 builds).
    TORCH = "torch"


@dataclasses.dataclass(frozen=True)
class HandlerSettings:
    """Knobs read from the ``handler:`` section of the archive's model-config YAML.

    max_text_chars: longer texts are refused with 413 before tokenizing (tokenizing megabytes takes seconds).
    max_texts_per_request: the most texts one KServe v1 / v2 request may hold (more: 413 for the request).
    max_request_chars: the most characters all texts of one request may hold together (more: 413 for the request).
        At least max_text_chars; it defaults to max_text_chars, so a batch of batchSize requests is never more
        work than batchSize longest texts, the worst case responseTimeout is sized for (docs/PERFORMANCE.md).
    max_text_pieces: a text of more word pieces is refused with 413 after tokenizing (cheap) and before any window
        or forward pass: characters do not bound the cost, word pieces do (docs/PERFORMANCE.md, "Sizing").
    max_request_pieces: the most word pieces all texts of one request may hold together (more: 413 for the
        request); at least max_text_pieces, and it defaults to it, as max_request_chars does.
    max_request_bytes: a body that arrives as bytes and says JSON is parsed only up to this size (413 beyond);
        keep it equal to config.properties' max_request_size, which TorchServe applies to every body.
    max_length: word pieces per window including [CLS]/[SEP]; capped by the model's position embeddings.
    window_overlap: word pieces shared by consecutive windows of a long text; each token is labelled by the
        window where it has the most context on both sides.
    tokens_per_forward: budget of padded word pieces per forward pass; windows are length-sorted and cut into
        sub-batches under this budget, so short sentences are never padded to the longest document.
    default_aggregation / default_format: used when a request does not say.
    quantization: "int8_dynamic" runs the Linear layers in int8 on CPU (faster, slightly different scores).
    forward: "packed" runs each forward pass padding-free (the per-token layers on the rows' tokens end to end, only
        attention on rows; the same logits within float rounding), "padded" pads each pass's rows to its longest.
        Measurements: docs/PERFORMANCE.md, "Padding-free forward".
    linear_kernels: "onednn" runs the fp32 Linear layers on CPU as oneDNN GEMMs on weights reordered at load (the
        same arithmetic; 1.6-2.1x faster forward passes on an AMD EPYC where MKL's sgemm is slow); "torch" keeps
        nn.Linear. Not used on GPU or with int8 (their own kernels). docs/PERFORMANCE.md, "Linear kernels".
    torch_threads: intra-op threads of this worker's CPU forward passes; 0 keeps torch's default (one per core).
        How to choose it with the worker count: docs/PERFORMANCE.md.
    release_memory_after_pieces: after a batch of more than this many padded word pieces the worker hands its
        freed memory back to the OS (glibc malloc_trim), so its RSS returns near its baseline; 0 never does.
        Measurements: docs/PERFORMANCE.md, "Memory".
    document_lane_niceness: how much lower the CPU priority (Unix nice) of this archive's workers is when it is
        served as a document lane (``nerserve.protocol.document_lane``), so that while both lanes want the cores
        the workers of short texts get them first; 0 keeps the lanes equal. 19 at most. docs/PERFORMANCE.md,
        "Mixed load".
    """

    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_texts_per_request: int = DEFAULT_MAX_TEXTS_PER_REQUEST
    max_request_chars: int = DEFAULT_MAX_REQUEST_CHARS
    max_text_pieces: int = DEFAULT_MAX_TEXT_PIECES
    max_request_pieces: int = DEFAULT_MAX_TEXT_PIECES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_length: int = 512
    window_overlap: int = 128
    tokens_per_forward: int = 16_384
    default_aggregation: Aggregation = Aggregation.FIRST
    default_format: OutputFormat = OutputFormat.ENTITIES
    quantization: Quantization = Quantization.NONE
    forward: ForwardMode = ForwardMode.PACKED
    linear_kernels: LinearKernels = LinearKernels.ONEDNN
    torch_threads: int = 0
    release_memory_after_pieces: int = DEFAULT_RELEASE_MEMORY_AFTER_PIECES
    document_lane_niceness: int = DEFAULT_DOCUMENT_LANE_NICENESS

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ValueError(f"handler.max_text_chars must be >= 1, got {self.max_text_chars}")
        if self.max_texts_per_request < 1:
            raise ValueError(f"handler.max_texts_per_request must be >= 1, got {self.max_texts_per_request}")
        if self.max_request_chars < self.max_text_chars:
            raise ValueError(
                f"handler.max_request_chars ({self.max_request_chars}) must be >= handler.max_text_chars "
                f"({self.max_text_chars}): a text accepted alone must be accepted in a request of several"
            )
        if self.max_text_pieces < 1:
            raise ValueError(f"handler.max_text_pieces must be >= 1, got {self.max_text_pieces}")
        if self.max_request_pieces < self.max_text_pieces:
            raise ValueError(
                f"handler.max_request_pieces ({self.max_request_pieces}) must be >= handler.max_text_pieces "
                f"({self.max_text_pieces}): a text accepted alone must be accepted in a request of several"
            )
        if self.max_request_bytes < 1024:
            raise ValueError(f"handler.max_request_bytes must be >= 1024, got {self.max_request_bytes}")
        if self.max_length < 8:
            raise ValueError(f"handler.max_length must be >= 8, got {self.max_length}")
        if not 0 <= self.window_overlap <= (self.max_length - 2) // 2:
            raise ValueError(
                f"handler.window_overlap must be between 0 and half a window ({(self.max_length - 2) // 2}), "
                f"got {self.window_overlap}"
            )
        if self.torch_threads < 0:
            raise ValueError(f"handler.torch_threads must be >= 0 (0: torch's default), got {self.torch_threads}")
        if self.release_memory_after_pieces < 0:
            raise ValueError(
                f"handler.release_memory_after_pieces must be >= 0 (0: never), got {self.release_memory_after_pieces}"
            )
        if not 0 <= self.document_lane_niceness <= MAX_NICENESS:
            raise ValueError(
                f"handler.document_lane_niceness must be between 0 and {MAX_NICENESS}, "
                f"got {self.document_lane_niceness}"
            )
        if self.tokens_per_forward < self.max_length:
            raise ValueError(
                f"handler.tokens_per_forward ({self.tokens_per_forward}) must hold at least one full window "
                f"(max_length {self.max_length})"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> HandlerSettings:
        """Build from a YAML mapping; unknown keys are an error so a typo cannot silently keep a default."""
        values = dict(values or {})
        if "max_text_chars" in values and "max_request_chars" not in values:
            values["max_request_chars"] = values["max_text_chars"]  # its default follows max_text_chars
        if "max_text_pieces" in values and "max_request_pieces" not in values:
            values["max_request_pieces"] = values["max_text_pieces"]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"handler settings: unknown keys {unknown}; known keys are {sorted(known)}")
        if "default_aggregation" in values:
            values["default_aggregation"] = parse_option(
                Aggregation, values["default_aggregation"], "default_aggregation"
            )
        if "default_format" in values:
            values["default_format"] = parse_option(OutputFormat, values["default_format"], "default_format")
        if "quantization" in values:
            values["quantization"] = parse_option(Quantization, values["quantization"], "quantization")
        if "forward" in values:
            values["forward"] = parse_option(ForwardMode, values["forward"], "forward")
        if "linear_kernels" in values:
            values["linear_kernels"] = parse_option(LinearKernels, values["linear_kernels"], "linear_kernels")
        for name in (
            "max_text_chars",
            "max_texts_per_request",
            "max_request_chars",
            "max_text_pieces",
            "max_request_pieces",
            "max_request_bytes",
            "max_length",
            "window_overlap",
            "tokens_per_forward",
            "torch_threads",
            "release_memory_after_pieces",
            "document_lane_niceness",
        ):
            if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool)):
                raise ValueError(f"handler.{name} must be an integer, got {values[name]!r}")
        return cls(**values)

    def with_model_limit(self, model_max_positions: int) -> HandlerSettings:
        """Cap the window length at what the model's position embeddings allow."""
        if self.max_length <= model_max_positions:
            return self
        overlap = min(self.window_overlap, (model_max_positions - 2) // 2)
        return dataclasses.replace(self, max_length=model_max_positions, window_overlap=overlap)
