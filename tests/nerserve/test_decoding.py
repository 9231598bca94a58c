"""Entity decoding from hand-built scores: BIO boundaries, sub-words, aggregation strategies, segments."""

import numpy as np
import pytest

from nerserve.decoding import decode_entities, softmax, to_segments
from nerserve.protocol import Aggregation

ID2LABEL = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
LABEL2ID = {v: k for k, v in ID2LABEL.items()}


def one_hot(labels, confidence=0.9):
    """Scores where each piece's label has ``confidence`` and the rest share the remainder."""
    n = len(ID2LABEL)
    rows = np.full((len(labels), n), (1 - confidence) / (n - 1), dtype=np.float32)
    for i, label in enumerate(labels):
        rows[i, LABEL2ID[label]] = confidence
    return rows


def word_offsets(text):
    """Offsets of whitespace-separated words, one piece per word."""
    offsets, cursor = [], 0
    for word in text.split(" "):
        offsets.append((cursor, cursor + len(word)))
        cursor += len(word) + 1
    return offsets


def spans(entities):
    return [(e["label"], e["text"], e["start"], e["end"]) for e in entities]


def test_b_i_sequence_and_outside_make_separate_entities():
    text = "Angela Merkel visited Paris"
    result = decode_entities(text, word_offsets(text), [False] * 4, one_hot(["B-PER", "I-PER", "O", "B-LOC"]), ID2LABEL)
    assert spans(result) == [("PER", "Angela Merkel", 0, 13), ("LOC", "Paris", 22, 27)]


def test_adjacent_entities_of_the_same_type_stay_apart_on_b():
    text = "Alice Bob Carol"
    result = decode_entities(text, word_offsets(text), [False] * 3, one_hot(["B-PER", "B-PER", "I-PER"]), ID2LABEL)
    assert spans(result) == [("PER", "Alice", 0, 5), ("PER", "Bob Carol", 6, 15)]


def test_i_after_outside_starts_an_entity_and_type_change_splits():
    text = "x Rome Anna"
    result = decode_entities(text, word_offsets(text), [False] * 3, one_hot(["O", "I-LOC", "I-PER"]), ID2LABEL)
    assert spans(result) == [("LOC", "Rome", 2, 6), ("PER", "Anna", 7, 11)]


def test_entity_at_the_very_end_and_start_of_text():
    text = "Berlin is far from Rome"
    labels = ["B-LOC", "O", "O", "O", "B-LOC"]
    result = decode_entities(text, word_offsets(text), [False] * 5, one_hot(labels), ID2LABEL)
    assert spans(result) == [("LOC", "Berlin", 0, 6), ("LOC", "Rome", 19, 23)]


def test_score_is_mean_of_units():
    text = "Angela Merkel"
    scores = np.concatenate([one_hot(["B-PER"], 0.8), one_hot(["I-PER"], 0.6)])
    (entity,) = decode_entities(text, word_offsets(text), [False, False], scores, ID2LABEL)
    assert entity["score"] == pytest.approx(0.7, abs=1e-6)


# "Schwarzenegger" as three pieces: schwarz ##en ##egger, offsets inside one word.
SUBWORD_TEXT = "Arnold Schwarzenegger"
SUBWORD_OFFSETS = [(0, 6), (7, 14), (14, 16), (16, 21)]
SUBWORD_FLAGS = [False, False, True, True]


def subword_scores():
    rows = one_hot(["B-PER", "I-PER", "O", "B-LOC"])
    rows[2] = one_hot(["I-PER"], 0.4)[0]  # weak I-PER
    rows[3] = one_hot(["B-LOC"], 0.95)[0]  # strongest piece says B-LOC
    return rows


def test_first_strategy_labels_a_word_by_its_first_piece():
    result = decode_entities(
        SUBWORD_TEXT, SUBWORD_OFFSETS, SUBWORD_FLAGS, subword_scores(), ID2LABEL, Aggregation.FIRST
    )
    assert spans(result) == [("PER", "Arnold Schwarzenegger", 0, 21)]


def test_max_strategy_labels_a_word_by_its_most_confident_piece():
    result = decode_entities(SUBWORD_TEXT, SUBWORD_OFFSETS, SUBWORD_FLAGS, subword_scores(), ID2LABEL, Aggregation.MAX)
    assert spans(result) == [("PER", "Arnold", 0, 6), ("LOC", "Schwarzenegger", 7, 21)]
    assert result[1]["score"] == pytest.approx(0.95)


def test_average_strategy_averages_piece_scores():
    scores = subword_scores()
    result = decode_entities(SUBWORD_TEXT, SUBWORD_OFFSETS, SUBWORD_FLAGS, scores, ID2LABEL, Aggregation.AVERAGE)
    # Schwarzenegger: I-PER averages (0.9 + 0.4 + 0.0125) / 3 = 0.4375, above B-LOC's (0.025 + 0.15 + 0.95) / 3.
    assert spans(result) == [("PER", "Arnold Schwarzenegger", 0, 21)]
    assert result[0]["score"] == pytest.approx((0.9 + 0.4375) / 2)


def test_simple_strategy_ignores_word_boundaries():
    result = decode_entities(
        SUBWORD_TEXT, SUBWORD_OFFSETS, SUBWORD_FLAGS, subword_scores(), ID2LABEL, Aggregation.SIMPLE
    )
    assert spans(result) == [("PER", "Arnold Schwarzen", 0, 16), ("LOC", "egger", 16, 21)]


def test_no_pieces_no_entities():
    assert decode_entities("", [], [], np.zeros((0, 5), dtype=np.float32), ID2LABEL) == []


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        decode_entities("a b", [(0, 1)], [False, False], one_hot(["O", "O"]), ID2LABEL)


def test_softmax_is_stable_for_large_logits():
    probs = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    assert np.allclose(probs, [[0.5, 0.5, 0.0]])
    assert probs.dtype == np.float32


def test_segments_cover_the_text_and_keep_adjacent_entities_apart():
    text = "Alice Bob went to Rome."
    entities = decode_entities(
        text,
        [(0, 5), (6, 9), (10, 14), (15, 17), (18, 22), (22, 23)],
        [False] * 6,
        one_hot(["B-PER", "B-PER", "O", "O", "B-LOC", "O"]),
        ID2LABEL,
    )
    segments = to_segments(text, entities)
    assert "".join(s["text"] for s in segments) == text
    assert [(s["label"], s["text"]) for s in segments] == [
        ("PER", "Alice"),
        ("other", " "),
        ("PER", "Bob"),
        ("other", " went to "),
        ("LOC", "Rome"),
        ("other", "."),
    ]
    assert all(s["score"] is None for s in segments if s["label"] == "other")
    assert all(text[s["start"] : s["end"]] == s["text"] for s in segments)
    assert to_segments("", []) == []


def test_segments_never_overlap_when_entities_do():
    """With "simple", a character split into several pieces with the same offsets (Hangul jamo) gives one entity
    per piece, as the pipeline does; segments keep the text whole: a covered entity is left out, a partly covered
    one keeps its uncovered part."""
    text = "한국 Seoul"
    entities = [
        {"label": "PER", "text": "한", "start": 0, "end": 1, "score": 0.6},
        {"label": "MISC", "text": "한", "start": 0, "end": 1, "score": 0.5},
        {"label": "LOC", "text": "한국", "start": 0, "end": 2, "score": 0.7},
        {"label": "LOC", "text": "국 Seoul", "start": 1, "end": 8, "score": 0.8},
    ]
    segments = to_segments(text, entities)
    assert "".join(s["text"] for s in segments) == text
    assert [(s["label"], s["start"], s["end"]) for s in segments] == [("LOC", 0, 2), ("LOC", 2, 8)]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in segments)
