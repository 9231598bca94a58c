"""One TorchServe batch: requests -> windows -> length-sorted forward passes -> one response per request.

Pure functions of word pieces and logits; the handler only adds the tokenizer, the model and TorchServe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nerserve.decoding import decode_entities, softmax, to_segments
from nerserve.requests import NerRequest, RequestError
from nerserve.settings import HandlerSettings, OutputFormat
from nerserve.tokenization import WordPieces
from nerserve.windows import plan_sub_batches, plan_windows, stitch_scores


@dataclasses.dataclass(frozen=True)
class Document:
    request_index: int
    request: NerRequest
    pieces: WordPieces
    windows: list[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class ForwardPass:
    """Padded inputs of one forward pass and which window each row is."""

    window_indices: list[int]
    input_ids: np.ndarray  # (rows, padded_len) int64
    attention_mask: np.ndarray  # (rows, padded_len) int64
    lengths: list[int]


@dataclasses.dataclass(frozen=True)
class PreparedBatch:
    size: int
    errors: dict[int, RequestError]
    documents: list[Document]
    windows: list[tuple[int, int, int]]  # (document index, first piece, end piece)
    passes: list[ForwardPass]

    @property
    def word_pieces(self) -> int:
        return sum(len(doc.pieces) for doc in self.documents)


def prepare_batch(
    parsed: Sequence[NerRequest | RequestError],
    pieces: Sequence[WordPieces],
    settings: HandlerSettings,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> PreparedBatch:
    """Plan windows for every valid request and pack all windows into length-sorted forward passes.

    ``pieces`` holds the word pieces of the valid requests, in order.
    """
    errors = {i: item for i, item in enumerate(parsed) if isinstance(item, RequestError)}
    valid = [(i, item) for i, item in enumerate(parsed) if not isinstance(item, RequestError)]
    if len(valid) != len(pieces):
        raise ValueError(f"{len(valid)} valid requests but {len(pieces)} tokenised texts")
    body = settings.max_length - 2
    documents, windows = [], []
    for doc_index, ((request_index, request), doc_pieces) in enumerate(zip(valid, pieces)):
        spans = plan_windows(len(doc_pieces), body, settings.window_overlap)
        documents.append(Document(request_index, request, doc_pieces, spans))
        windows.extend((doc_index, start, end) for start, end in spans)
    lengths = [end - start + 2 for _, start, end in windows]
    passes = []
    for group in plan_sub_batches(lengths, settings.tokens_per_forward):
        width = max(lengths[w] for w in group)
        input_ids = np.full((len(group), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(group), width), dtype=np.int64)
        for row, w in enumerate(group):
            doc_index, start, end = windows[w]
            input_ids[row, 0] = cls_id
            input_ids[row, 1 : 1 + end - start] = documents[doc_index].pieces.ids[start:end]
            input_ids[row, 1 + end - start] = sep_id
            mask[row, : lengths[w]] = 1
        passes.append(ForwardPass(group, input_ids, mask, [lengths[w] for w in group]))
    return PreparedBatch(len(parsed), errors, documents, windows, passes)


def window_logits(batch: PreparedBatch, pass_logits: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per window, the logits of its word pieces (special tokens and padding cut off)."""
    out: list[np.ndarray | None] = [None] * len(batch.windows)
    for forward, logits in zip(batch.passes, pass_logits):
        for row, (w, length) in enumerate(zip(forward.window_indices, forward.lengths)):
            out[w] = logits[row, 1 : length - 1]
    return out  # type: ignore[return-value]


def build_responses(
    batch: PreparedBatch, per_window_logits: Sequence[np.ndarray], id2label: Mapping[int, str]
) -> list[dict[str, Any]]:
    """One JSON-ready body per request of the batch, in request order (errors included)."""
    responses: list[dict[str, Any] | None] = [None] * batch.size
    for index, error in batch.errors.items():
        responses[index] = error.to_body()
    cursor = 0
    num_labels = len(id2label)
    for doc in batch.documents:
        n_windows = len(doc.windows)
        logits = per_window_logits[cursor : cursor + n_windows]
        cursor += n_windows
        scores = (
            stitch_scores(len(doc.pieces), doc.windows, [softmax(x) for x in logits])
            if n_windows
            else np.zeros((0, num_labels), dtype=np.float32)
        )
        entities = decode_entities(
            doc.request.text, doc.pieces.offsets, doc.pieces.is_subword, scores, id2label, doc.request.aggregation
        )
        if doc.request.output_format is OutputFormat.SEGMENTS:
            responses[doc.request_index] = {"segments": to_segments(doc.request.text, entities)}
        else:
            responses[doc.request_index] = {"entities": entities}
    return responses  # type: ignore[return-value]
