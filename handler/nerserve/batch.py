"""One TorchServe batch: texts -> windows -> length-sorted forward passes -> one result per text.

Pure functions of word pieces and logits; the handler only adds the tokenizer, the model and TorchServe. The
texts are every text of every request of the batch in one flat list (``nerserve.bodies.BatchBodies`` says which
request each came from): a request of one text is one entry, a KServe request of N texts N entries. Every row of
a forward pass names its window by ``WindowRef`` (document, window), so its logits go straight back to their
document whatever order the length sort put the rows in.

A pass runs padded (``input_ids`` and ``attention_mask``, logits (rows, padded_len, num_labels)) or, with the
``forward: packed`` setting, padding-free: its rows' tokens end to end (``packed_ids``, ``lengths``), logits
(total_tokens, num_labels) from ``BertTokenClassifier.forward_packed``. That setting also plans passes differently:
rows of at most ``PACKED_PAD_FREELY_UP_TO`` tokens share a pass whatever their lengths, and run packed even without
padding; a pass of longer rows that would be less than ``PACKED_MIN_PADDING`` padding runs padded all the same
(measurements: docs/PERFORMANCE.md, "Padding-free forward").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from nerserve.bodies import BatchBodies, Body
from nerserve.decoding import decode_entities, softmax, to_segments
from nerserve.protocol import BodyKind, OutputFormat, error_body
from nerserve.requests import NerRequest, RequestError, internal_error
from nerserve.settings import ForwardMode, HandlerSettings
from nerserve.tokenization import WordPieces
from nerserve.windows import plan_windows, stitch_scores

# Rows up to this many tokens share a packed pass whatever their lengths (a packed pass has no padding to waste):
# fewer, larger passes of short sentences measured faster; a longer row keeps the padded planner's half-padding
# rule, as joining short sentences to 512-piece windows measured slower (docs/PERFORMANCE.md).
PACKED_PAD_FREELY_UP_TO = 64
# A pass of rows longer than PACKED_PAD_FREELY_UP_TO with less padding than this (a fraction of its padded tokens)
# gains less from packing than packing costs (full 512-piece windows measured 0.87-0.95x packed with int8,
# 1.00-1.04x in fp32): it runs padded. Short rows run packed even with no padding at all: there the padded forward's
# own overhead (the attention mask) costs more (one sentence of 14-64 pieces 1.09-1.18x packed, 32 of 16 pieces
# 1.03-1.04x).
PACKED_MIN_PADDING = 0.1


class WindowRef(NamedTuple):
    """One window of the batch: ``PreparedBatch.documents[doc_index].spans[window_index]``."""

    doc_index: int
    window_index: int


@dataclasses.dataclass(frozen=True)
class Document:
    """A valid text of the batch, its word pieces and the (start, end) piece ranges of its windows."""

    request_index: int  # the text's index in the batch's flat list of texts
    request: NerRequest
    pieces: WordPieces
    spans: list[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class ForwardPass:
    """Inputs of one forward pass; row ``r`` is window ``rows[r]``, ``lengths[r]`` tokens with [CLS]/[SEP].

    ``packed``: the handler runs it padding-free on ``packed_ids`` and ``lengths`` and gets logits of shape
    (total_tokens, num_labels), row after row (row ``r`` from ``cu_seqlens[r]``); otherwise padded on
    ``input_ids`` and ``attention_mask``, logits (rows, padded_len, num_labels). The padded arrays are kept either
    way: they bound the pass's memory.
    """

    rows: list[WindowRef]
    input_ids: np.ndarray  # (rows, padded_len) int64
    attention_mask: np.ndarray  # (rows, padded_len) int64
    lengths: list[int]
    packed: bool = False

    @property
    def packed_ids(self) -> np.ndarray:
        """(total_tokens,) int64: every row's tokens without padding, one row after another."""
        ids: np.ndarray = self.input_ids[self.attention_mask.astype(bool)]
        return ids

    @property
    def cu_seqlens(self) -> np.ndarray:
        """(rows + 1,) int64: row ``r`` is ``packed_ids[cu_seqlens[r]:cu_seqlens[r + 1]]``."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class PreparedBatch:
    size: int  # texts
    errors: dict[int, RequestError]  # the texts that cannot be served, by text index
    documents: list[Document]
    window_refs: list[WindowRef]  # every window of the batch, in document order
    passes: list[ForwardPass]
    bodies: BatchBodies  # the requests the texts came from


def prepare_batch(
    size: int,
    requests: Mapping[int, NerRequest],
    pieces: Mapping[int, WordPieces],
    errors: Mapping[int, RequestError],
    settings: HandlerSettings,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    bodies: BatchBodies | None = None,
) -> PreparedBatch:
    """Plan windows for every tokenized text and pack all windows into length-sorted forward passes.

    Each text index in ``range(size)`` is in exactly one of ``pieces`` (then also in ``requests``) and ``errors``;
    the keys of all three mappings are text indices. ``bodies`` says which request each text came from; without
    it every text is a request of its own.
    """
    if sorted([*pieces, *errors]) != list(range(size)):
        raise ValueError(f"{len(pieces)} tokenized texts and {len(errors)} errors do not make a batch of {size}")
    if bodies is None:
        bodies = BatchBodies.of(
            [Body(BodyKind.SINGLE, [requests[index] if index in requests else errors[index]]) for index in range(size)]
        )
    if bodies.text_count != size:
        raise ValueError(f"the requests hold {bodies.text_count} texts, the batch {size}")
    body = settings.max_length - 2
    packed = settings.forward is ForwardMode.PACKED
    errors = dict(errors)
    documents: list[Document] = []
    window_refs: list[WindowRef] = []
    lengths: list[int] = []  # per window of window_refs, with [CLS] and [SEP]
    for request_index in sorted(pieces):
        doc_pieces = pieces[request_index]
        try:
            spans = plan_windows(len(doc_pieces), body, settings.window_overlap)
        except Exception as error:  # one text's failure is that text's 500, never its batch's
            errors[request_index] = internal_error("Windowing", error)
            continue
        doc_index = len(documents)
        documents.append(Document(request_index, requests[request_index], doc_pieces, spans))
        window_refs.extend(WindowRef(doc_index, window_index) for window_index in range(len(spans)))
        lengths.extend(end - start + 2 for start, end in spans)
    passes = []
    pad_freely_up_to = PACKED_PAD_FREELY_UP_TO if packed else 0
    for group in plan_sub_batches(lengths, settings.tokens_per_forward, pad_freely_up_to):
        width = max(lengths[w] for w in group)
        input_ids = np.full((len(group), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(group), width), dtype=np.int64)
        for row, w in enumerate(group):
            doc = documents[window_refs[w].doc_index]
            start, end = doc.spans[window_refs[w].window_index]
            input_ids[row, 0] = cls_id
            input_ids[row, 1 : 1 + end - start] = doc.pieces.ids[start:end]
            input_ids[row, 1 + end - start] = sep_id
            mask[row, : lengths[w]] = 1
        rows = [window_refs[w] for w in group]
        row_lengths = [lengths[w] for w in group]
        padding = 1 - sum(row_lengths) / input_ids.size
        pack = packed and (padding >= PACKED_MIN_PADDING or width <= PACKED_PAD_FREELY_UP_TO)
        passes.append(ForwardPass(rows, input_ids, mask, row_lengths, pack))
    return PreparedBatch(size, errors, documents, window_refs, passes, bodies)


def plan_sub_batches(lengths: Sequence[int], tokens_per_forward: int, pad_freely_up_to: int = 0) -> list[list[int]]:
    """Group sequence indices into forward passes of similar length, each under a padded-token budget.

    Indices are sorted by length (longest first, so the first pass shows the worst memory at once); a pass holds
    as many sequences as fit when all are padded to its longest one, and a new pass starts where a sequence would
    be more than half padding (a sentence next to a document's 512-piece windows), unless the pass's longest
    sequence has at most ``pad_freely_up_to`` tokens (packed passes: ``PACKED_PAD_FREELY_UP_TO``).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        padded_len = lengths[current[0]] if current else lengths[index]
        over_budget = (len(current) + 1) * padded_len > tokens_per_forward
        too_much_padding = 2 * lengths[index] < padded_len and padded_len > pad_freely_up_to
        if current and (over_budget or too_much_padding):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def logits_by_document(batch: PreparedBatch, pass_logits: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Per document, per window in order, the logits of the window's word pieces ([CLS], [SEP], padding cut off).

    ``pass_logits[p]`` holds the logits of ``batch.passes[p]``: shape (rows, padded_len, num_labels), or
    (total_tokens, num_labels) with the rows end to end for a packed pass.
    """
    if len(pass_logits) != len(batch.passes):
        raise ValueError(f"{len(batch.passes)} forward passes but {len(pass_logits)} logits arrays")
    found: list[dict[int, np.ndarray]] = [{} for _ in batch.documents]
    for index, (forward, logits) in enumerate(zip(batch.passes, pass_logits, strict=True)):
        expected = (sum(forward.lengths),) if forward.packed else forward.input_ids.shape
        if logits.shape[: len(expected)] != expected or logits.ndim != len(expected) + 1:
            raise ValueError(
                f"forward pass {index} ({'packed' if forward.packed else 'padded'}) needs logits of shape "
                f"{(*expected, 'num_labels')}, got {logits.shape}"
            )
        starts = forward.cu_seqlens if forward.packed else None
        for row, (ref, length) in enumerate(zip(forward.rows, forward.lengths, strict=True)):
            if starts is not None:
                window = logits[starts[row] + 1 : starts[row] + length - 1]
            else:
                window = logits[row, 1 : length - 1]
            found[ref.doc_index][ref.window_index] = window
    return [[windows[w] for w in range(len(doc.spans))] for doc, windows in zip(batch.documents, found, strict=True)]


def build_responses(
    batch: PreparedBatch, pass_logits: Sequence[np.ndarray], id2label: Mapping[int, str]
) -> list[dict[str, Any]]:
    """One JSON-ready result per text of the batch, in text order (a text's error as its ``error_body``);
    ``batch.bodies.responses`` turns them into one response per request.

    A text whose decoding fails (a bug: no client input should) gets a 500 in its slot, also added to
    ``batch.errors`` so its request's status says so; the other texts are answered."""
    num_labels = len(id2label)
    results: dict[int, dict[str, Any]] = {}
    for doc, logits in zip(batch.documents, logits_by_document(batch, pass_logits), strict=True):
        try:
            result = _decode_document(doc, logits, id2label, num_labels)
        except Exception as error:
            batch.errors[doc.request_index] = internal_error("Decoding", error)
        else:
            results[doc.request_index] = result
    bodies = {index: error_body(error.status, error.message) for index, error in batch.errors.items()}
    return [bodies[index] if index in bodies else results[index] for index in range(batch.size)]


def _decode_document(
    doc: Document, logits: Sequence[np.ndarray], id2label: Mapping[int, str], num_labels: int
) -> dict[str, Any]:
    scores = (
        stitch_scores(len(doc.pieces), doc.spans, [softmax(x) for x in logits])
        if doc.spans
        else np.zeros((0, num_labels), dtype=np.float32)
    )
    entities = decode_entities(
        doc.request.text, doc.pieces.offsets, doc.pieces.is_subword, scores, id2label, doc.request.aggregation
    )
    if doc.request.output_format is OutputFormat.SEGMENTS:
        return {"segments": to_segments(doc.request.text, entities)}
    return {"entities": entities}
