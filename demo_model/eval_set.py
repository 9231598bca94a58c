"""The hand-written evaluation set: build it from its inline-markup source, check it, emit it as IOB2.

Why a checker: a wrong gold offset silently caps the F1 any model can reach, and a sentence the generator also
produces would measure the generator, not the model. The one source of truth is data/eval_handwritten.src.txt
(sentences with "[PER Angela Merkel]" markup, so offsets are computed, never typed); data/eval_handwritten.jsonl is
generated from it (--write) for demo_model.evaluation.load_eval_set, and the check fails when the two disagree.
data/EVAL_SET.md holds the annotation guidelines and the styles.

    python -m demo_model.eval_set            # check source, jsonl and every rule; exit 1 naming line and reason
    python -m demo_model.eval_set --write    # regenerate the jsonl from the source, then check
    python -m demo_model.eval_set --iob2     # check, then print IOB2 tags with character offsets
    python -m demo_model.eval_set --dev      # the same for the development set (data/dev_handwritten.*)

The development set is a smaller set in the same styles and markup, written apart from the evaluation set: the
corpus is improved by reading the model's errors on it, while only the evaluation set's aggregate scores are read,
so that the evaluation set keeps measuring text nobody tuned for.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo_model import corpus
from demo_model.evaluation import EntityDict, EvalExample, Metrics, PredictFn, score_entities

DATA_DIR = Path(__file__).resolve().parent / "data"
SOURCE_PATH = DATA_DIR / "eval_handwritten.src.txt"
JSONL_PATH = DATA_DIR / "eval_handwritten.jsonl"
DEV_SOURCE_PATH = DATA_DIR / "dev_handwritten.src.txt"
DEV_JSONL_PATH = DATA_DIR / "dev_handwritten.jsonl"

# What users paste, each kind tagged on every sentence (descriptions repeated in EVAL_SET.md).
STYLES: dict[str, str] = {
    "news": "news paragraphs of two or three sentences",
    "headline_title": "headlines in Title Case",
    "headline_caps": "headlines in ALL CAPS",
    "sports": "sports results, score lines and table rows",
    "chat": "lower-case chat messages",
    "list": "lists and bullet lines, some over several lines",
    "quote": "quotations with their speaker",
    "honorific": "titles and honorifics before names (excluded from PER)",
    "sentence_start": "capitalised non-entities at the start of a sentence",
    "dates": "dates, months, days and times (never entities)",
    "product": "named products, events and works (MISC)",
    "nationality": "nationalities, demonyms, languages and religions (MISC)",
    "multiword": "multi-word names",
    "possessive": "possessives (the 's is not part of the entity)",
    "accented": "hyphenated and accented names",
    "org_wordlike": "organisations named like common words, and those words as non-entities",
    "no_entity": "texts without any entity",
}
MIN_SENTENCES = 300
DEV_MIN_SENTENCES = 100
MIN_ENTITY_FREE_SHARE = 0.10
# Generated sentences compared with the set: more than the build trains on, from the build's seed.
TRAINING_SAMPLE = 20_000

# A trailing full stop belongs to an entity only when it ends an abbreviation: "U.S.", "Acme Inc.".
_ABBREVIATION_RE = re.compile(r"(?:\b[A-Za-z]\.){2,}$|\b(?:Inc|Corp|Co|Ltd|Jr|Sr|St|Bros)\.$")
_MARKUP_OPEN_RE = re.compile(r"\[([A-Za-z]*) ")
_ESCAPES = {"n": "\n", "[": "[", "]": "]", "\\": "\\"}
_STYLE_DIRECTIVE = "@style "


class HandwrittenExample(EvalExample):
    """One line of eval_handwritten.jsonl: an evaluation example plus the kind of text it is."""

    style: str


@dataclass(frozen=True)
class Located:
    """An example with where it came from ("path:line"), for messages."""

    where: str
    example: HandwrittenExample


@dataclass(frozen=True)
class Problem:
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class SourceError(ValueError):
    """A line of the markup source cannot be parsed; where names the line once parse_source() knows it."""

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where


# ----------------------------------------------------------------------------------------------------------
# Source (inline markup) -> examples -> jsonl
# ----------------------------------------------------------------------------------------------------------


def parse_markup(line: str) -> tuple[str, list[EntityDict]]:
    """The text and entity spans of one markup line ("[PER Angela Merkel] met ..."); spans are not validated here."""
    chars: list[str] = []
    entities: list[EntityDict] = []
    open_label: str | None = None
    open_start = 0
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            escaped = line[i + 1 : i + 2]
            if escaped not in _ESCAPES:
                raise SourceError(f"unknown escape \\{escaped} (use \\n, \\[, \\] or \\\\)")
            chars.append(_ESCAPES[escaped])
            i += 2
        elif char == "[":
            match = _MARKUP_OPEN_RE.match(line, i)
            if match is None:
                raise SourceError(r"'[' must open an entity such as [PER Name]; write \[ for a literal bracket")
            if open_label is not None:
                raise SourceError("an entity inside another entity")
            if match.group(1) not in corpus.ENTITY_TYPES:
                raise SourceError(f"unknown label {match.group(1)!r} (use {', '.join(corpus.ENTITY_TYPES)})")
            open_label, open_start = match.group(1), len(chars)
            i = match.end()
        elif char == "]":
            if open_label is None:
                raise SourceError(r"']' without an open entity; write \] for a literal bracket")
            entities.append(EntityDict(label=open_label, start=open_start, end=len(chars)))
            open_label = None
            i += 1
        else:
            chars.append(char)
            i += 1
    if open_label is not None:
        raise SourceError(f"entity [{open_label} ... is not closed")
    return "".join(chars), entities


def parse_source(path: Path = SOURCE_PATH) -> list[Located]:
    """The examples of a markup source, each located at its source line; SourceError names the first bad line."""
    located: list[Located] = []
    style: str | None = None
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{line_number}"
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(_STYLE_DIRECTIVE):
            style = line[len(_STYLE_DIRECTIVE) :].strip()
            continue
        if style is None:
            raise SourceError("a sentence before the first '@style' line", where)
        try:
            text, entities = parse_markup(line)
        except SourceError as error:
            raise SourceError(error.reason, where) from None
        located.append(Located(where, HandwrittenExample(text=text, entities=entities, style=style)))
    return located


def to_jsonl(examples: Sequence[HandwrittenExample]) -> str:
    """The jsonl text of examples: one object per line, keys in a fixed order, UTF-8 kept readable."""
    lines = []
    for example in examples:
        record = {
            "text": example["text"],
            "entities": [{"label": e["label"], "start": e["start"], "end": e["end"]} for e in example["entities"]],
            "style": example["style"],
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def read_jsonl(path: Path = JSONL_PATH) -> tuple[list[Located], list[Problem]]:
    """The examples of a jsonl file, and a problem for each line that is not a well-formed record."""
    located: list[Located] = []
    problems: list[Problem] = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{line_number}"
        try:
            located.append(Located(where, _record(json.loads(line))))
        except (json.JSONDecodeError, ValueError) as error:
            problems.append(Problem(where, f"malformed record: {error}"))
    return located, problems


def _record(value: Any) -> HandwrittenExample:
    if not isinstance(value, dict) or set(value) != {"text", "entities", "style"}:
        raise ValueError('expected an object with exactly the keys "text", "entities" and "style"')
    text, entities, style = value["text"], value["entities"], value["style"]
    if not isinstance(text, str) or not isinstance(style, str) or not isinstance(entities, list):
        raise ValueError("text and style must be strings, entities a list")
    for entity in entities:
        if not isinstance(entity, dict) or set(entity) != {"label", "start", "end"}:
            raise ValueError('each entity needs exactly the keys "label", "start" and "end"')
        if not isinstance(entity["label"], str) or not all(
            isinstance(entity[key], int) and not isinstance(entity[key], bool) for key in ("start", "end")
        ):
            raise ValueError("an entity's label must be a string, its start and end integers")
    return HandwrittenExample(
        text=text,
        entities=[EntityDict(label=e["label"], start=e["start"], end=e["end"]) for e in entities],
        style=style,
    )


def load_handwritten(path: Path = JSONL_PATH) -> list[HandwrittenExample]:
    """The examples of the jsonl, style included; ValueError when a line is malformed (run the checker for why)."""
    located, problems = read_jsonl(path)
    if problems:
        raise ValueError(str(problems[0]))
    return [item.example for item in located]


# ----------------------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """The form in which two texts count as the same sentence: case and runs of whitespace ignored."""
    return " ".join(text.split()).casefold()


def training_texts(sample: int = TRAINING_SAMPLE) -> frozenset[str]:
    """Normalised texts of the first `sample` (at least the build's number of) sentences the build's seed generates."""
    from demo_model.build import Hyperparameters  # build imports the evaluation code; keep this module importable

    hp = Hyperparameters()
    return frozenset(normalise(e.text) for e in corpus.generate_corpus(max(sample, hp.num_sentences), hp.seed))


def entity_problems(text: str, entity: EntityDict, word_starts: Collection[int], word_ends: Collection[int]) -> str:
    """Why an entity span is not valid gold in text, or "" when it is."""
    start, end, label = entity["start"], entity["end"], entity["label"]
    if label not in corpus.ENTITY_TYPES:
        return f"label {label!r} is not one of {', '.join(corpus.ENTITY_TYPES)}"
    if not 0 <= start < end <= len(text):
        return f"span {start}-{end} is empty or outside the text (length {len(text)})"
    surface = text[start:end]
    if surface != surface.strip():
        return f"{label} {surface!r} has leading or trailing whitespace"
    if "\n" in surface:
        return f"{label} {surface!r} crosses a line break"
    if not surface[0].isalnum():
        return f"{label} {surface!r} starts with punctuation"
    if not surface[-1].isalnum() and not (surface[-1] == "." and _ABBREVIATION_RE.search(surface)):
        return f"{label} {surface!r} ends with punctuation (only an abbreviation keeps its full stop)"
    if start not in word_starts or end not in word_ends:
        return f"{label} {surface!r} ({start}-{end}) starts or ends inside a word"
    return ""


def example_problems(example: HandwrittenExample) -> list[str]:
    """Why one example is not valid, each reason on its own; empty when it is valid."""
    text, entities = example["text"], example["entities"]
    reasons: list[str] = []
    if example["style"] not in STYLES:
        reasons.append(f"style {example['style']!r} is not one of {', '.join(STYLES)}")
    if not text.strip() or text != text.strip():
        reasons.append("text is empty or has leading or trailing whitespace")
    words = corpus.tokenize_with_spans(text)
    word_starts, word_ends = {w.start for w in words}, {w.end for w in words}
    reasons.extend(r for r in (entity_problems(text, e, word_starts, word_ends) for e in entities) if r)
    starts = [e["start"] for e in entities]
    if starts != sorted(starts):
        reasons.append("entities are not sorted by start")
    ordered = sorted(entities, key=lambda e: (e["start"], e["end"]))
    for previous, entity in zip(ordered, ordered[1:], strict=False):
        if entity["start"] < previous["end"]:
            reasons.append(
                f"entities {previous['start']}-{previous['end']} and {entity['start']}-{entity['end']} overlap"
            )
    return reasons


def check_examples(
    examples: Sequence[Located],
    *,
    training: Collection[str],
    where: str,
    min_sentences: int = MIN_SENTENCES,
) -> list[Problem]:
    """Every rule of EVAL_SET.md over a whole set; `training` holds normalise()d generator texts.

    where names the set in problems that belong to no single line (size, styles, share of entity-free texts).
    """
    problems = [Problem(item.where, reason) for item in examples for reason in example_problems(item.example)]
    first_seen: dict[str, str] = {}
    for item in examples:
        key = normalise(item.example["text"])
        if key in first_seen:
            problems.append(Problem(item.where, f"duplicate of {first_seen[key]}"))
        else:
            first_seen[key] = item.where
        if key in training:
            problems.append(Problem(item.where, "the training corpus generator produces this sentence"))
    if len(examples) < min_sentences:
        problems.append(Problem(where, f"{len(examples)} sentences, at least {min_sentences} required"))
    missing = sorted(set(STYLES) - {item.example["style"] for item in examples})
    if missing:
        problems.append(Problem(where, f"no sentence of style {', '.join(missing)}"))
    entity_free = sum(1 for item in examples if not item.example["entities"])
    if entity_free < MIN_ENTITY_FREE_SHARE * len(examples):
        problems.append(
            Problem(where, f"{entity_free} of {len(examples)} texts without entities, at least 10% required")
        )
    return problems


def agreement_problems(source: Sequence[Located], jsonl_path: Path) -> list[Problem]:
    """A problem at the first jsonl line that differs from what the source generates (none when they agree)."""
    expected = to_jsonl([item.example for item in source]).splitlines()
    actual = jsonl_path.read_text(encoding="utf-8").splitlines()
    for index, (want, have) in enumerate(zip(expected, actual, strict=False)):
        if want != have:
            return [
                Problem(
                    f"{jsonl_path.name}:{index + 1}",
                    f"differs from {source[index].where}; regenerate with python -m demo_model.eval_set --write",
                )
            ]
    if len(expected) != len(actual):
        return [
            Problem(
                jsonl_path.name,
                f"{len(actual)} lines, the source has {len(expected)} sentences; regenerate with --write",
            )
        ]
    return []


def check(
    jsonl_path: Path = JSONL_PATH,
    source_path: Path | None = SOURCE_PATH,
    *,
    training: Collection[str] | None = None,
    min_sentences: int = MIN_SENTENCES,
) -> list[Problem]:
    """Every problem of the committed set: source syntax, source/jsonl agreement, and the rules.

    With a source, the rules are reported at source lines (where one edits); without (source_path None), at
    jsonl lines. training defaults to training_texts().
    """
    if training is None:
        training = training_texts()
    if source_path is None:
        examples, problems = read_jsonl(jsonl_path)
        if problems:
            return problems
        return check_examples(examples, training=training, where=jsonl_path.name, min_sentences=min_sentences)
    try:
        examples = parse_source(source_path)
    except SourceError as error:
        return [Problem(error.where or source_path.name, error.reason)]
    problems = check_examples(examples, training=training, where=source_path.name, min_sentences=min_sentences)
    return problems + agreement_problems(examples, jsonl_path)


# ----------------------------------------------------------------------------------------------------------
# IOB2 and per-style scores
# ----------------------------------------------------------------------------------------------------------


def iob2_lines(example: HandwrittenExample) -> list[str]:
    """One "word<TAB>start<TAB>end<TAB>tag" line per word (words split as corpus.tokenize_with_spans does)."""
    words = corpus.tokenize_with_spans(example["text"])
    spans = [corpus.Span(e["label"], e["start"], e["end"]) for e in example["entities"]]
    return [
        f"{w.text}\t{w.start}\t{w.end}\t{tag}" for w, tag in zip(words, corpus.iob2_tags(words, spans), strict=True)
    ]


def to_iob2(examples: Sequence[HandwrittenExample]) -> str:
    """The set in a CoNLL-like IOB2 layout: per sentence a "# text = ..." header, its words, then a blank line."""
    blocks = []
    for number, example in enumerate(examples, start=1):
        header = [
            f"# sent_id = {number}",
            f"# style = {example['style']}",
            f"# text = {json.dumps(example['text'], ensure_ascii=False)}",
        ]
        blocks.append("\n".join([*header, *iob2_lines(example)]) + "\n\n")
    return "".join(blocks)


def evaluate_by_style(predict_fn: PredictFn, examples: Sequence[HandwrittenExample]) -> dict[str, Metrics]:
    """demo_model.evaluation's exact-match scores per style, from one predict_fn call over all texts."""
    return score_by_style(examples, predict_fn([example["text"] for example in examples]))


def score_by_style(
    examples: Sequence[HandwrittenExample], predicted: Sequence[Sequence[EntityDict]]
) -> dict[str, Metrics]:
    """Exact-match scores per style of predictions already made, aligned with examples."""
    if len(predicted) != len(examples):
        raise ValueError(f"{len(predicted)} predictions for {len(examples)} sentences")
    by_style: dict[str, tuple[list[list[EntityDict]], list[list[EntityDict]]]] = {}
    for example, entities in zip(examples, predicted, strict=True):
        gold, pred = by_style.setdefault(example["style"], ([], []))
        gold.append(example["entities"])
        pred.append(list(entities))
    return {style: score_entities(gold, pred) for style, (gold, pred) in sorted(by_style.items())}


def summary(examples: Sequence[HandwrittenExample]) -> str:
    """Sentence, entity and style counts, for the command line."""
    labels = Counter(e["label"] for example in examples for e in example["entities"])
    styles = Counter(example["style"] for example in examples)
    entity_free = sum(1 for example in examples if not example["entities"])
    return (
        f"{len(examples)} sentences ({entity_free} without entities), {sum(labels.values())} entities ("
        + ", ".join(f"{label} {labels[label]}" for label in corpus.ENTITY_TYPES)
        + "); styles: "
        + ", ".join(f"{style} {styles[style]}" for style in STYLES)
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo_model.eval_set",
        description="Check the hand-written evaluation set (rules in demo_model/data/EVAL_SET.md). Exit status 1 "
        "and one 'file:line: reason' per problem on stderr when a rule is broken.",
    )
    parser.add_argument(
        "--dev", action="store_true", help=f"the development set ({DEV_SOURCE_PATH.name}, at least {DEV_MIN_SENTENCES})"
    )
    parser.add_argument("--jsonl", type=Path, help=f"the jsonl to check (default: {JSONL_PATH})")
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument("--source", type=Path, help=f"its markup source (default: {SOURCE_PATH})")
    sources.add_argument("--no-source", action="store_true", help="check the jsonl alone, at its own line numbers")
    parser.add_argument("--write", action="store_true", help="regenerate the jsonl from the source first")
    parser.add_argument("--iob2", action="store_true", help="print the set as IOB2 with character offsets")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, training: Callable[[], Collection[str]] = training_texts) -> int:
    args = parse_args(argv)
    default_jsonl, default_source = (DEV_JSONL_PATH, DEV_SOURCE_PATH) if args.dev else (JSONL_PATH, SOURCE_PATH)
    args.jsonl = args.jsonl or default_jsonl
    source: Path | None = None if args.no_source else args.source or default_source
    min_sentences = DEV_MIN_SENTENCES if args.dev else MIN_SENTENCES
    if args.write:
        if source is None:
            print("--write needs a source", file=sys.stderr)
            return 2
        try:
            args.jsonl.write_text(to_jsonl([item.example for item in parse_source(source)]), encoding="utf-8")
        except SourceError as error:
            print(error, file=sys.stderr)
            return 1
    problems = check(args.jsonl, source, training=training(), min_sentences=min_sentences)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    examples = load_handwritten(args.jsonl)
    if args.iob2:
        sys.stdout.write(to_iob2(examples))
    else:
        print(f"{args.jsonl.name}: ok, {summary(examples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
