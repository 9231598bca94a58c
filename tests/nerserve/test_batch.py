"""Batch planning and the way back: hand-built word pieces and logits, no tokenizer and no model."""

import dataclasses

import numpy as np
import pytest

from nerserve.batch import (
    PACKED_MIN_PADDING,
    PACKED_PAD_FREELY_UP_TO,
    WindowRef,
    build_responses,
    logits_by_document,
    plan_sub_batches,
    prepare_batch,
)
from nerserve.protocol import Aggregation, OutputFormat, error_body
from nerserve.requests import NerRequest, RequestError
from nerserve.settings import ForwardMode, HandlerSettings
from nerserve.tokenization import WordPieces

CLS, SEP, PAD = 2, 3, 0
ID2LABEL = {0: "O", 1: "B-LOC", 2: "I-LOC", 3: "B-PER"}
# Windows of 6 word pieces (8 with [CLS]/[SEP]) overlapping by 2; at most 16 padded tokens per forward pass.
SETTINGS = HandlerSettings(max_length=8, window_overlap=2, tokens_per_forward=16)
MODES = list(ForwardMode)


def document(first_id, words, output_format=OutputFormat.ENTITIES):
    """A request whose text is one word piece per word, with ids first_id, first_id + 1, ..."""
    text = " ".join(words)
    offsets, cursor = [], 0
    for word in words:
        offsets.append((cursor, cursor + len(word)))
        cursor += len(word) + 1
    ids = list(range(first_id, first_id + len(words)))
    request = NerRequest(text, Aggregation.FIRST, output_format)
    return request, WordPieces(ids=ids, offsets=offsets, is_subword=[False] * len(words))


LONG = [f"w{i}" for i in range(14)]  # windows (0, 6), (4, 10), (8, 14)
SHORT = ["Anna", "sings", "here"]
TINY = ["hi", "there"]
ERROR = RequestError(400, "field 'text' is required")


def mixed_batch(mode=ForwardMode.PADDED):
    """Request 0 short, 1 a client error, 2 a three-window document, 3 a two-piece text asking for segments."""
    docs = {0: document(300, SHORT), 2: document(100, LONG), 3: document(200, TINY, OutputFormat.SEGMENTS)}
    return prepare_batch(
        4,
        {index: request for index, (request, _) in docs.items()},
        {index: pieces for index, (_, pieces) in docs.items()},
        {1: ERROR},
        dataclasses.replace(SETTINGS, forward=mode),
        CLS,
        SEP,
        PAD,
    )


def labels_as_logits(batch, labels_of_piece_id):
    """Per forward pass, logits whose argmax is the label of each row's word piece (by its id), and whose first
    column repeats the input id, so a test can see which piece each returned row came from: (rows, padded_len,
    labels) for a padded pass, (total_tokens, labels) for a packed one, as the model answers each."""
    out = []
    for forward in batch.passes:
        ids = forward.packed_ids if forward.packed else forward.input_ids
        logits = np.zeros((*ids.shape, len(ID2LABEL)), dtype=np.float32)
        for place, piece_id in np.ndenumerate(ids):
            logits[(*place, labels_of_piece_id.get(int(piece_id), 0))] = 1000.0 + piece_id
        out.append(logits)
    return out


def test_documents_keep_request_order_and_each_window_is_planned():
    batch = mixed_batch()
    assert (batch.size, batch.errors) == (4, {1: ERROR})
    assert [doc.request_index for doc in batch.documents] == [0, 2, 3]
    assert [doc.spans for doc in batch.documents] == [[(0, 3)], [(0, 6), (4, 10), (8, 14)], [(0, 2)]]
    assert batch.window_refs == [WindowRef(0, 0), WindowRef(1, 0), WindowRef(1, 1), WindowRef(1, 2), WindowRef(2, 0)]


def test_each_row_of_a_pass_is_its_window_between_cls_and_sep():
    batch = mixed_batch()
    # Longest first; the short text joins the last long window (not more than half padding), the tiny one not.
    assert [forward.rows for forward in batch.passes] == [
        [WindowRef(1, 0), WindowRef(1, 1)],
        [WindowRef(1, 2), WindowRef(0, 0)],
        [WindowRef(2, 0)],
    ]
    for forward in batch.passes:
        assert forward.input_ids.shape[0] * forward.input_ids.shape[1] <= SETTINGS.tokens_per_forward
        for row, (ref, length) in enumerate(zip(forward.rows, forward.lengths, strict=True)):
            doc = batch.documents[ref.doc_index]
            start, end = doc.spans[ref.window_index]
            ids = forward.input_ids[row].tolist()
            assert ids[:length] == [CLS, *doc.pieces.ids[start:end], SEP]
            assert ids[length:] == [PAD] * (len(ids) - length)
            assert forward.attention_mask[row].tolist() == [1] * length + [0] * (len(ids) - length)


@pytest.mark.parametrize("mode", MODES)
def test_logits_go_back_to_their_document_and_window_in_order(mode):
    batch = mixed_batch(mode)
    # Packed mode: every pass runs packed, those of one length (8 + 8, and 4) too, as their rows are short.
    assert [forward.packed for forward in batch.passes] == [mode is ForwardMode.PACKED] * 3
    per_document = logits_by_document(batch, labels_as_logits(batch, {}))
    returned_ids = [[(window[:, 0] - 1000).astype(int).tolist() for window in windows] for windows in per_document]
    assert returned_ids == [
        [[300, 301, 302]],
        [list(range(100, 106)), list(range(104, 110)), list(range(108, 114))],
        [[200, 201]],
    ]


@pytest.mark.parametrize("mode", MODES)
def test_responses_come_back_in_request_order_with_errors_in_place(mode):
    batch = mixed_batch(mode)
    # "Anna" is a person; w5..w8 a place that crosses two window seams.
    labels = {300: 3, 105: 1, 106: 2, 107: 2, 108: 2}
    responses = build_responses(batch, labels_as_logits(batch, labels), ID2LABEL)
    assert responses[1] == error_body(400, "field 'text' is required")
    assert [(e["label"], e["text"]) for e in responses[0]["entities"]] == [("PER", "Anna")]
    assert [(e["label"], e["text"]) for e in responses[2]["entities"]] == [("LOC", "w5 w6 w7 w8")]
    assert responses[3] == {"segments": [{"label": "other", "text": "hi there", "start": 0, "end": 8, "score": None}]}


def test_an_empty_text_has_no_window_and_no_entities():
    request, pieces = document(100, [])
    batch = prepare_batch(1, {0: request}, {0: pieces}, {}, SETTINGS, CLS, SEP, PAD)
    assert (batch.window_refs, batch.passes) == ([], [])
    assert build_responses(batch, [], ID2LABEL) == [{"entities": []}]


def test_a_request_neither_tokenized_nor_refused_is_a_bug():
    request, pieces = document(100, SHORT)
    with pytest.raises(ValueError, match="do not make a batch of 3"):
        prepare_batch(3, {0: request}, {0: pieces}, {1: ERROR}, SETTINGS, CLS, SEP, PAD)
    batch = mixed_batch()
    with pytest.raises(ValueError, match="3 forward passes but 2 logits arrays"):
        logits_by_document(batch, labels_as_logits(batch, {})[:2])


def test_sub_batches_respect_the_budget_and_sort_by_length():
    lengths = [5, 300, 7, 40, 300, 6, 41, 512]
    batches = plan_sub_batches(lengths, 1024)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 1024 or len(batch) == 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    for batch in batches:  # no row is more than half padding
        assert all(2 * lengths[i] >= lengths[batch[0]] for i in batch)
    assert [[lengths[i] for i in b] for b in batches] == [[512, 300], [300], [41, 40], [7, 6, 5]]
    assert plan_sub_batches([], 100) == []


def test_a_packed_pass_is_its_rows_tokens_end_to_end():
    batch = mixed_batch(ForwardMode.PACKED)
    assert any(forward.packed for forward in batch.passes)
    for forward in batch.passes:
        cu = forward.cu_seqlens
        assert cu.tolist() == np.cumsum([0, *forward.lengths]).tolist()
        assert forward.packed_ids.shape == (sum(forward.lengths),)
        for row, length in enumerate(forward.lengths):
            assert forward.packed_ids[cu[row] : cu[row + 1]].tolist() == forward.input_ids[row, :length].tolist()


def test_logits_of_the_wrong_shape_for_the_pass_are_refused():
    packed = mixed_batch(ForwardMode.PACKED)
    padded = mixed_batch(ForwardMode.PADDED)
    with pytest.raises(ValueError, match=r"forward pass 0 \(packed\) needs logits of shape \(16, 'num_labels'\)"):
        logits_by_document(packed, labels_as_logits(padded, {}))
    with pytest.raises(ValueError, match=r"forward pass 0 \(padded\) needs logits of shape \(2, 8, 'num_labels'\)"):
        logits_by_document(padded, labels_as_logits(packed, {}))


def test_packed_passes_let_short_rows_of_any_length_share_a_pass():
    lengths = [40, 10, 300, 100, 12, PACKED_PAD_FREELY_UP_TO, 20]
    as_lengths = lambda batches: [[lengths[i] for i in b] for b in batches]  # noqa: E731
    assert as_lengths(plan_sub_batches(lengths, 4096)) == [[300], [100, 64], [40, 20], [12, 10]]
    # Short rows join whatever the padding; longer ones keep the half-padding rule, and the budget still holds.
    packed = plan_sub_batches(lengths, 4096, PACKED_PAD_FREELY_UP_TO)
    assert as_lengths(packed) == [[300], [100, 64], [40, 20, 12, 10]]
    assert as_lengths(plan_sub_batches(lengths, 130, PACKED_PAD_FREELY_UP_TO)) == [[300], [100], [64, 40], [20, 12, 10]]


def test_the_forward_setting_decides_how_each_pass_runs_and_is_planned():
    docs = {i: document(100 + 10 * i, ["w"] * n) for i, n in enumerate([1, 5, 2])}  # rows of 3, 7 and 4 tokens
    settings = HandlerSettings(max_length=8, window_overlap=2, tokens_per_forward=64)

    def plan(mode):
        batch = prepare_batch(
            3,
            {i: r for i, (r, _) in docs.items()},
            {i: p for i, (_, p) in docs.items()},
            {},
            dataclasses.replace(settings, forward=mode),
            CLS,
            SEP,
            PAD,
        )
        return [(forward.packed, forward.lengths) for forward in batch.passes]

    assert plan(ForwardMode.PADDED) == [(False, [7, 4]), (False, [3])]
    assert plan(ForwardMode.PACKED) == [(True, [7, 4, 3])]


def test_a_packed_pass_of_long_rows_with_little_padding_runs_padded_and_short_rows_always_pack():
    """Packing costs a little; a pass of long rows of one length, or nearly, has less padding to save than that. A
    pass of short rows runs packed even with no padding (the padded forward's own overhead costs more there)."""
    settings = HandlerSettings(max_length=100, window_overlap=2, tokens_per_forward=1000, forward=ForwardMode.PACKED)

    def packed(words_per_row):
        docs = {i: document(100 * (i + 1), ["w"] * n) for i, n in enumerate(words_per_row)}
        requests, pieces = {i: r for i, (r, _) in docs.items()}, {i: p for i, (_, p) in docs.items()}
        [forward] = prepare_batch(len(docs), requests, pieces, {}, settings, CLS, SEP, PAD).passes
        assert forward.input_ids.shape == (len(docs), max(words_per_row) + 2)
        return forward.packed

    assert not packed([90, 90, 90])
    assert not packed([90, 90, 90 - int(PACKED_MIN_PADDING * 3 * 92) + 1])  # just under the threshold
    assert packed([90, 90, 90 - int(PACKED_MIN_PADDING * 3 * 92) - 1])
    short = PACKED_PAD_FREELY_UP_TO - 2  # words: with [CLS] and [SEP], rows of PACKED_PAD_FREELY_UP_TO tokens
    assert packed([short, short, short]) and packed([short]) and packed([5])
    assert not packed([short + 1])  # one token longer: a long row, no padding
