"""Word-piece scores -> entities, with the semantics of transformers' TokenClassificationPipeline.

The steps mirror the pipeline's (softmax -> word aggregation -> BIO grouping -> drop "O") but are pure functions
of the text, the word pieces' character offsets, their sub-word flags, the scores and ``id2label``. The entity
``text`` is always ``original[start:end]``; it is never rebuilt from word pieces.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import NamedTuple, TypedDict

import numpy as np

from nerserve.protocol import OTHER_SEGMENT, OUTSIDE, Aggregation, Entity


class Segment(TypedDict):
    label: str
    text: str
    start: int
    end: int
    score: float | None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, subtracting the row max first (as the pipeline does)."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return probabilities


def _split_tag(label: str) -> tuple[str, str]:
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


class WordUnit(NamedTuple):
    """A word (or, for SIMPLE, a word piece) with its label: the unit that BIO grouping joins into entities."""

    label_id: int
    score: float
    first_piece: int
    last_piece: int


def _word_units(scores: np.ndarray, is_subword: Sequence[bool], strategy: Aggregation) -> list[WordUnit]:
    """One unit per word piece for SIMPLE, else one per word."""
    n = scores.shape[0]
    if strategy is Aggregation.SIMPLE:
        ids = scores.argmax(axis=-1)
        return [WordUnit(int(ids[i]), float(scores[i, ids[i]]), i, i) for i in range(n)]
    starts = [i for i in range(n) if i == 0 or not is_subword[i]]
    units = []
    for first, stop in itertools.pairwise([*starts, n]):
        if strategy is Aggregation.FIRST:
            row = scores[first]
        elif strategy is Aggregation.MAX:
            row = scores[first + int(scores[first:stop].max(axis=-1).argmax())]
        elif strategy is Aggregation.AVERAGE:
            row = np.nanmean(scores[first:stop], axis=0)
        else:
            raise ValueError(f"unknown aggregation strategy {strategy!r}")
        label_id = int(row.argmax())
        units.append(WordUnit(label_id, float(row[label_id]), first, stop - 1))
    return units


def decode_entities(
    text: str,
    offsets: Sequence[tuple[int, int]],
    is_subword: Sequence[bool],
    scores: np.ndarray,
    id2label: Mapping[int, str],
    strategy: Aggregation = Aggregation.FIRST,
) -> list[Entity]:
    """Entities of one text from its word pieces' probabilities (n_pieces x num_labels, special tokens excluded).

    Adjacent units join one entity when they share a type and the later one is not a "B-" (lenient IOB2, as the
    pipeline: an "I-X" after "O" starts an entity). The score is the mean of the joined units' scores.
    """
    if len(offsets) != scores.shape[0] or len(is_subword) != scores.shape[0]:
        raise ValueError(f"{len(offsets)} offsets, {len(is_subword)} flags and {scores.shape[0]} score rows")
    if scores.shape[0] == 0:
        return []
    entities: list[Entity] = []
    group: list[WordUnit] = []

    def flush() -> None:
        label = id2label[group[0].label_id].split("-", 1)[-1]
        if label == OUTSIDE:
            return
        start, end = offsets[group[0].first_piece][0], offsets[group[-1].last_piece][1]
        score = float(np.mean(np.asarray([unit.score for unit in group], dtype=np.float32)))
        entities.append(Entity(label=label, text=text[start:end], start=int(start), end=int(end), score=score))

    for unit in _word_units(scores, is_subword, strategy):
        if group:
            bi, tag = _split_tag(id2label[unit.label_id])
            _, last_tag = _split_tag(id2label[group[-1].label_id])
            if tag == last_tag and bi != "B":
                group.append(unit)
                continue
            flush()
        group = [unit]
    flush()
    return entities


def to_segments(text: str, entities: Sequence[Entity]) -> list[Segment]:
    """The whole text as consecutive segments: each entity its own segment, the gaps labelled "other".

    Adjacent entities stay separate segments (two people in a row are two segments), and the segments' texts
    concatenate to the original text. Entities can overlap with ``simple``: a character the tokenizer splits into
    several pieces with the same offsets (a Hangul syllable in an uncased vocabulary is 2-3 jamo pieces) yields
    one entity per piece, as in the pipeline. Segments cannot overlap: an entity already covered is left out and
    one that starts inside the previous one keeps only its uncovered part.
    """
    segments: list[Segment] = []
    cursor = 0
    for entity in sorted(entities, key=lambda e: (e["start"], -e["end"])):
        if entity["end"] <= cursor:
            continue
        if entity["start"] < cursor:
            entity = Entity(
                label=entity["label"],
                text=text[cursor : entity["end"]],
                start=cursor,
                end=entity["end"],
                score=entity["score"],
            )
        if entity["start"] > cursor:
            segments.append(_other(text, cursor, entity["start"]))
        segments.append(Segment(**entity))
        cursor = entity["end"]
    if cursor < len(text):
        segments.append(_other(text, cursor, len(text)))
    return segments


def _other(text: str, start: int, end: int) -> Segment:
    return Segment(label=OTHER_SEGMENT, text=text[start:end], start=start, end=end, score=None)
