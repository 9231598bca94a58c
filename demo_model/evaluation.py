"""Entity-level evaluation of an NER predictor on the hand-written evaluation set.

Why exact match on (label, start, end): that is what a client of the service sees. A prediction with the
right label but a boundary off by one character (e.g. "Berlin." instead of "Berlin") is wrong for the user,
so it counts as one false positive and one false negative, as in the CoNLL-2003 scorer.

The predictor is injected (predict_fn), so the same metric scores transformers' pipeline (demo_model.build, when it
builds or re-evaluates the model) and the project's own handler (nertools/bench.py reports its F1, and
tests/demo_model/test_served_evaluation.py checks that the served model reproduces the build's numbers).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

EVAL_SET_PATH = Path(__file__).resolve().parent / "data" / "eval_sentences.jsonl"


class EntityDict(TypedDict):
    """An entity as predict_fn returns it and as the evaluation set stores it."""

    label: str
    start: int
    end: int


class EvalExample(TypedDict):
    """One line of eval_sentences.jsonl."""

    text: str
    entities: list[EntityDict]


PredictFn = Callable[[list[str]], list[list[EntityDict]]]


class Scores(TypedDict):
    """Exact-match entity scores of one label, or micro-averaged over all labels."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    support: int


class Metrics(TypedDict):
    """What evaluate() and score_entities() return."""

    micro: Scores
    per_label: dict[str, Scores]
    num_sentences: int


def load_eval_set(path: Path = EVAL_SET_PATH) -> list[EvalExample]:
    """Read and validate the evaluation set.

    Raises ValueError naming the line when an entity span is out of range, empty, overlapping another one, or
    surrounded by whitespace: a wrong gold offset would silently cap the achievable F1.
    """
    examples: list[EvalExample] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            text, entities = record["text"], record["entities"]
            previous_end = 0
            for entity in sorted(entities, key=lambda e: e["start"]):
                start, end = entity["start"], entity["end"]
                surface = text[start:end]
                if not 0 <= start < end <= len(text) or start < previous_end or surface != surface.strip():
                    raise ValueError(f"{path}:{line_number}: invalid entity span {entity} in {text!r}")
                previous_end = end
            examples.append(
                EvalExample(
                    text=text,
                    entities=[EntityDict(label=e["label"], start=e["start"], end=e["end"]) for e in entities],
                )
            )
    return examples


def _scores(tp: int, fp: int, fn: int) -> Scores:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision=precision, recall=recall, f1=f1, tp=tp, fp=fp, fn=fn, support=tp + fn)


def score_entities(gold: Sequence[Sequence[EntityDict]], predicted: Sequence[Sequence[EntityDict]]) -> Metrics:
    """Exact-match entity P/R/F1, micro-averaged and per label, for aligned lists of gold and predictions."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} sentences")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for gold_entities, predicted_entities in zip(gold, predicted, strict=True):
        gold_set = {(e["label"], e["start"], e["end"]) for e in gold_entities}
        predicted_set = {(e["label"], e["start"], e["end"]) for e in predicted_entities}
        for label, _, _ in gold_set & predicted_set:
            tp[label] += 1
        for label, _, _ in predicted_set - gold_set:
            fp[label] += 1
        for label, _, _ in gold_set - predicted_set:
            fn[label] += 1
    labels = sorted(set(tp) | set(fp) | set(fn))
    return Metrics(
        micro=_scores(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        per_label={label: _scores(tp[label], fp[label], fn[label]) for label in labels},
        num_sentences=len(gold),
    )


def evaluate(predict_fn: PredictFn, examples: Sequence[EvalExample]) -> Metrics:
    """Run predict_fn on all texts in one call (so it can batch) and score the result against the gold spans."""
    texts = [example["text"] for example in examples]
    predicted = predict_fn(texts)
    return score_entities([example["entities"] for example in examples], predicted)


def format_table(metrics: Metrics) -> str:
    """A fixed-width table of per-label and micro scores, for terminal output."""
    rows = [f"{'label':<8}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for label, scores in [*metrics["per_label"].items(), ("micro", metrics["micro"])]:
        rows.append(
            f"{label:<8}{scores['precision']:>10.3f}{scores['recall']:>10.3f}{scores['f1']:>10.3f}"
            f"{scores['support']:>9}"
        )
    return "\n".join(rows)
