"""Synthetic NER training corpus for the offline demo model.

Why synthetic: the demo model must be buildable without network access, so no CoNLL download. Instead,
hand-written sentence templates are filled from hand-written name lists (plus invented names, so the model
learns from context rather than memorising the lists). Every sentence is built by concatenation, so the
character span of each entity is known exactly; tokens and IOB2 tags are derived from those spans, never
re-discovered from text.

The label scheme matches dslim/bert-base-NER, so a checkpoint built here is interchangeable with it.

The words are data, in demo_model/data/ (hashed into the build key by demo_model.build, so editing one rebuilds the
model): names/<list>.txt for entity names and name parts, words/<list>.txt for plain words that stand where
entities often do, templates.txt for the sentences and prefixes.txt / suffixes.txt for openings and closings
(their headers document the slots). Every file holds one entry per line; a line starting with # is a comment and a
blank line is skipped. The order of the entries is part of the corpus: for a seed, the same files give the same
sentences. The files are read on first use, not at import.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

LABELS: tuple[str, ...] = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {label: index for index, label in ID2LABEL.items()}
ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC", "MISC")
# CrossEntropyLoss skips this target: used for continuation word pieces and special tokens.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Span:
    """An entity as a half-open character range of its sentence."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Token:
    """A word of a sentence with its half-open character range."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    """One training sentence: its text, words with spans, one IOB2 tag per word, and the gold entities."""

    text: str
    tokens: tuple[Token, ...]
    tags: tuple[str, ...]
    entities: tuple[Span, ...]


# Words split like BERT's pre-tokenizer (runs of word characters, every punctuation mark on its own), so that a
# word here starts exactly where the tokenizer starts a word and "first word piece" means the same on both sides.
_WORD_RE = re.compile(r"\w+|[^\w\s]")


def tokenize_with_spans(text: str) -> tuple[Token, ...]:
    """Split text into words with character spans (BERT-style: punctuation marks are words of their own)."""
    return tuple(Token(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text))


def iob2_tags(tokens: Sequence[Token], entities: Sequence[Span]) -> tuple[str, ...]:
    """IOB2 tag per token from character-level entity spans.

    Raises ValueError when an entity boundary falls inside a word, because such a span cannot be expressed
    as word tags and would silently train the model on a wrong boundary.
    """
    tags = ["O"] * len(tokens)
    starts = {token.start: index for index, token in enumerate(tokens)}
    ends = {token.end: index for index, token in enumerate(tokens)}
    for span in sorted(entities, key=lambda s: s.start):
        if span.label not in ENTITY_TYPES:
            raise ValueError(f"unknown entity label {span.label!r}")
        if span.start not in starts or span.end not in ends:
            raise ValueError(f"entity {span} does not start and end on word boundaries")
        first, last = starts[span.start], ends[span.end]
        if any(tag != "O" for tag in tags[first : last + 1]):
            raise ValueError(f"entity {span} overlaps another entity")
        tags[first] = f"B-{span.label}"
        for index in range(first + 1, last + 1):
            tags[index] = f"I-{span.label}"
    return tuple(tags)


def align_labels(
    offsets: Sequence[tuple[int, int]],
    tokens: Sequence[Token],
    tags: Sequence[str],
    label2id: dict[str, int] = LABEL2ID,
) -> list[int]:
    """Label ids per word piece: the word's tag on its first piece, IGNORE_INDEX elsewhere.

    offsets is the fast tokenizer's offset_mapping for one sequence; special tokens have empty (s, s) spans.
    Only first pieces carry a label because the serving side aggregates with the "first" strategy: training
    the other pieces would spend capacity on predictions that are never read.
    """
    token_at_start = {token.start: index for index, token in enumerate(tokens)}
    labelled: set[int] = set()
    labels: list[int] = []
    for start, end in offsets:
        index = token_at_start.get(start)
        if start == end or index is None or index in labelled:
            labels.append(IGNORE_INDEX)
            continue
        labelled.add(index)
        labels.append(label2id[tags[index]])
    return labels


# ----------------------------------------------------------------------------------------------------------
# Data files: read on first use and cached, never at import.
# ----------------------------------------------------------------------------------------------------------

DATA_DIR = Path(__file__).resolve().parent / "data"
# In prefixes.txt and suffixes.txt: where the sentence template goes.
SENTENCE_SLOT = "{SENTENCE}"
_SLOT_RE = re.compile(r"\{([A-Z_]+)\}")
# An invented company name is a head and a tail ("Cobalt" + "gate"). The tail is drawn from company_tails.txt plus
# this many empty tails, so that some names are a head alone ("Cobalt AG"): with 15 tails, one name in six.
_BARE_HEAD_PICKS = 3


@functools.cache
def read_entries(path: Path) -> tuple[str, ...]:
    """The entries of a data file, in file order (format: the module docstring).

    Raises ValueError naming the file and line for an entry with leading or trailing whitespace (an editor's stray
    space would become part of a name) or a repeated entry (it would silently double that entry's weight), and for a
    file without entries.
    """
    entries: dict[str, int] = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        if line != line.strip():
            raise ValueError(f"{path}:{line_number}: entry {line!r} has leading or trailing whitespace")
        if line in entries:
            raise ValueError(f"{path}:{line_number}: {line!r} repeats line {entries[line]}")
        entries[line] = line_number
    if not entries:
        raise ValueError(f"{path}: no entries")
    return tuple(entries)


def _names(name: str) -> tuple[str, ...]:
    return read_entries(DATA_DIR / "names" / f"{name}.txt")


def _words(name: str) -> tuple[str, ...]:
    return read_entries(DATA_DIR / "words" / f"{name}.txt")


@functools.cache
def _company_tails() -> tuple[str, ...]:
    return _names("company_tails") + ("",) * _BARE_HEAD_PICKS


def _check_slots(path: Path, entries: Sequence[str]) -> None:
    for entry in entries:
        for slot in _SLOT_RE.findall(entry):
            if slot not in _FILLERS:
                raise ValueError(f"{path}: {entry!r} uses the unknown slot {{{slot}}}")


@functools.cache
def templates() -> tuple[str, ...]:
    """The sentence templates of data/templates.txt, each slot checked against the fillers."""
    path = DATA_DIR / "templates.txt"
    entries = read_entries(path)
    _check_slots(path, entries)
    return entries


@functools.cache
def _prefixes() -> tuple[str, ...]:
    """Openings from data/prefixes.txt, as the text that goes before the template."""
    path = DATA_DIR / "prefixes.txt"
    entries = read_entries(path)
    for entry in entries:
        if not entry.endswith(SENTENCE_SLOT) or entry.count(SENTENCE_SLOT) != 1:
            raise ValueError(f"{path}: {entry!r} must end with {SENTENCE_SLOT} and hold it once")
    prefixes = tuple(entry.removesuffix(SENTENCE_SLOT) for entry in entries)
    _check_slots(path, prefixes)
    return prefixes


@functools.cache
def _suffixes() -> tuple[str, ...]:
    """Closings from data/suffixes.txt, as the text that replaces the template's final full stop (stop excluded)."""
    path = DATA_DIR / "suffixes.txt"
    entries = read_entries(path)
    for entry in entries:
        if not (entry.startswith(SENTENCE_SLOT) and entry.endswith(".")) or entry.count(SENTENCE_SLOT) != 1:
            raise ValueError(
                f"{path}: {entry!r} must start with {SENTENCE_SLOT}, hold it once and end with a full stop"
            )
    suffixes = tuple(entry.removeprefix(SENTENCE_SLOT).removesuffix(".") for entry in entries)
    _check_slots(path, suffixes)
    return suffixes


# A rendered slot: pieces of text, each with its entity label or None for plain text.
Segments = list[tuple[str, str | None]]


def _invented_word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    word = "".join(rng.choice(_names("syllables")) for _ in range(rng.randint(*syllables)))
    return word.capitalize()


def _first_name(rng: random.Random) -> str:
    return _invented_word(rng) if rng.random() < 0.15 else rng.choice(_names("first_names"))


def _surname(rng: random.Random) -> str:
    surnames = _names("surnames")
    roll = rng.random()
    if roll < 0.15:
        return _invented_word(rng)
    if roll < 0.19:
        return f"{rng.choice(surnames)}-{rng.choice(surnames)}"
    return rng.choice(surnames)


def _person(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.07:
        return f"{_first_name(rng)} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {_surname(rng)}"
    if roll < 0.13:
        return f"{_first_name(rng)} {_first_name(rng)} {_surname(rng)}"
    if roll < 0.18:
        return f"{_first_name(rng)} {_surname(rng)} {_surname(rng)}"
    return f"{_first_name(rng)} {_surname(rng)}"


def _company(rng: random.Random) -> str:
    suffixes = _names("company_suffixes")
    roll = rng.random()
    if roll < 0.40:
        return rng.choice(_names("real_companies"))
    if roll < 0.60:
        name = rng.choice(_names("company_heads")) + rng.choice(_company_tails())
        return name if rng.random() < 0.3 else f"{name} {rng.choice(suffixes)}"
    if roll < 0.75:
        name = _invented_word(rng)
        return name if rng.random() < 0.5 else f"{name} {rng.choice(suffixes)}"
    if roll < 0.85:
        return f"{_surname(rng)} & {_surname(rng)}"
    if roll < 0.92:
        return f"{_surname(rng)} {rng.choice(suffixes)}"
    return f"{rng.choice(_names('cities'))} {rng.choice(('Bank', 'Airport', 'Energy', 'Telecom', 'Steel', 'Group'))}"


def _institution(rng: random.Random) -> str:
    cities = _names("cities")
    roll = rng.random()
    if roll < 0.65:
        return rng.choice(_names("institutions"))
    if roll < 0.80:
        return f"University of {rng.choice(cities)}"
    if roll < 0.90:
        return f"{rng.choice(cities)} University"
    return f"{rng.choice(cities)} {rng.choice(('City Council', 'Institute of Technology', 'Symphony Orchestra'))}"


def _city(rng: random.Random) -> str:
    if rng.random() < 0.10:
        return _invented_word(rng, (1, 2)) + rng.choice(_names("place_suffixes"))
    return rng.choice(_names("cities"))


def _location(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return _city(rng)
    if roll < 0.80:
        return rng.choice(_names("countries"))
    return rng.choice(_names("regions"))


def _entity(label: str, pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), label)]


def _listing(label: str, pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    """Two to four distinct entities joined like "Paris, London and Rome" (adjacent entities of one type)."""

    def render(rng: random.Random) -> Segments:
        count = rng.choice((2, 2, 3, 3, 4))
        names: list[str] = []
        while len(names) < count:
            name = pick(rng)
            if name not in names:
                names.append(name)
        conjunction = rng.choice((" and ", " and ", " or ", ", and " if count > 2 else " and "))
        segments: Segments = []
        for index, name in enumerate(names):
            if index == count - 1:
                segments.append((conjunction, None))
            elif index > 0:
                segments.append((", ", None))
            segments.append((name, label))
        return segments

    return render


def _plain(pick: Callable[[random.Random], str]) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), None)]


_FILLERS: dict[str, Callable[[random.Random], Segments]] = {
    "PER": _entity("PER", _person),
    "FIRST": _entity("PER", _first_name),
    "SUR": _entity("PER", _surname),
    "PERS": _entity("PER", lambda rng: rng.choice((_person, _surname))(rng)),
    "PERS_LIST": _listing("PER", _person),
    "ORG": _entity("ORG", lambda rng: (_company if rng.random() < 0.7 else _institution)(rng)),
    "ORGS": _listing("ORG", lambda rng: (_company if rng.random() < 0.7 else _institution)(rng)),
    "CO": _entity("ORG", _company),
    "INST": _entity("ORG", _institution),
    "CITY": _entity("LOC", _city),
    "COUNTRY": _entity("LOC", lambda rng: rng.choice(_names("countries"))),
    "LOC": _entity("LOC", _location),
    "LOCS": _listing("LOC", _location),
    "NAT": _entity("MISC", lambda rng: rng.choice(_names("nationalities"))),
    "NATS": _listing("MISC", lambda rng: rng.choice(_names("nationalities"))),
    "LANG": _entity("MISC", lambda rng: rng.choice(_names("languages"))),
    "LANGS": _listing("MISC", lambda rng: rng.choice(_names("languages"))),
    "EVENT": _entity("MISC", lambda rng: rng.choice(_names("events"))),
    "MISC": _entity("MISC", lambda rng: rng.choice(_names("other_misc"))),
    "TITLE": _plain(lambda rng: rng.choice(_words("titles"))),
    "ROLE": _plain(lambda rng: rng.choice(_words("roles"))),
    "JOB": _plain(lambda rng: rng.choice(_words("jobs"))),
    "THING": _plain(lambda rng: rng.choice(_words("things"))),
    "PLACE": _plain(lambda rng: rng.choice(_words("place_nouns"))),
    "ADJ": _plain(lambda rng: rng.choice(_words("adjectives"))),
    "BUSINESS": _plain(lambda rng: rng.choice(_words("businesses"))),
    "PRODUCT": _plain(lambda rng: rng.choice(_words("products"))),
    "SPORT": _plain(lambda rng: rng.choice(_words("sports"))),
    "HAPPENING": _plain(lambda rng: rng.choice(_words("happenings"))),
    "DAY": _plain(lambda rng: rng.choice(_words("days"))),
    "MONTH": _plain(lambda rng: rng.choice(_words("months"))),
    "YEAR": _plain(lambda rng: str(rng.randint(1950, 2030))),
    "NUM": _plain(lambda rng: str(rng.choice((rng.randint(2, 99), rng.randint(100, 9999))))),
}
# The slot names a template may use (documented in data/templates.txt).
SLOTS: frozenset[str] = frozenset(_FILLERS)


def _render(template: str, rng: random.Random) -> tuple[str, tuple[Span, ...]]:
    text = ""
    spans: list[Span] = []
    position = 0
    for match in _SLOT_RE.finditer(template):
        text += template[position : match.start()]
        for piece, label in _FILLERS[match.group(1)](rng):
            if label is not None:
                spans.append(Span(label, len(text), len(text) + len(piece)))
            text += piece
        position = match.end()
    text += template[position:]
    return text, tuple(spans)


def _decorate(template: str, rng: random.Random) -> str:
    """Wrap a template in a random prefix and/or suffix, so entity positions vary beyond the templates."""
    if rng.random() < 0.15 and template.endswith(".") and not template.endswith('."'):
        template = template[:-1] + rng.choice(_suffixes()) + "."
    if rng.random() < 0.25 and not template.startswith('"'):
        if not template.startswith("{"):
            template = template[0].lower() + template[1:]
        template = rng.choice(_prefixes()) + template
    if rng.random() < 0.05 and template.endswith("."):
        template = template[:-1]  # chat-style text often has no final full stop
    return template


def make_example(text: str, entities: Sequence[Span]) -> Example:
    """Build an Example (words, IOB2 tags) from a text and its character-level entity spans."""
    tokens = tokenize_with_spans(text)
    return Example(text, tokens, iob2_tags(tokens, entities), tuple(entities))


def generate_corpus(num_sentences: int, seed: int) -> list[Example]:
    """num_sentences synthetic sentences; the same seed always gives the same corpus.

    Uses its own random.Random, so it neither depends on nor disturbs the global random state.
    """
    sentence_templates = templates()
    rng = random.Random(seed)
    examples = []
    for _ in range(num_sentences):
        text, spans = _render(_decorate(rng.choice(sentence_templates), rng), rng)
        examples.append(make_example(text, spans))
    return examples
