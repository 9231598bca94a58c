"""Synthetic NER training corpus for the offline demo model.

Why synthetic: the demo model must be buildable without network access, so no CoNLL download. Instead, sentence
shapes written for this project are filled from name inventories (demo_model/inventory.py: Faker's locales and
pycountry for people, companies, towns, countries, regions and languages; hand lists for what no library has) plus
invented names, so the model learns from context rather than memorising lists. Every text is built from segments
whose labels are known, so the character span of each entity is exact; tokens and IOB2 tags are derived from those
spans, never re-discovered from text.

What the corpus is made of (generate_corpus draws a style per text, weights in STYLE_WEIGHTS): news sentences from
templates.txt, wrapped in openings and closings, sometimes joined into paragraphs or quoted; headlines in Title
Case, ALL CAPS or sentence case (headlines.txt); sports results, score lines and league tables (sports.txt and
code); lower-case chat (chat.txt, and news sentences made chatty); lists with headings, commas, bars, bullets and
line breaks; short fragments; long documents of many such texts in a row. Hard negatives are everywhere: common
nouns, groups of people, verbs, holidays, months, days, titles and directions fill the places names often take
(sentence starts, headlines, list items, after "said"), so a word is an entity because it is a name, not because
of where it stands or how it is cased.
The base model is uncased (it never sees case), so casing variants only keep the text realistic.

No label noise: a surface keeps its type (inventory.py drops names that are also places or common words), and
shapes never put one surface in two types in the same context (no lower-case "central bank" next to "Central Bank
of X").

The label scheme matches dslim/bert-base-NER, so a checkpoint built here is interchangeable with it.

The words are data, in demo_model/data/ (hashed into the build key by demo_model.build, so editing one rebuilds the
model): names/<list>.txt for entity names and name parts, words/<list>.txt for plain words, templates.txt,
headlines.txt, sports.txt and chat.txt for the shapes (templates.txt's header documents the slots) and prefixes.txt
/ suffixes.txt for openings and closings. Every file holds one entry per line; a line starting with # is a comment
and a blank line is skipped. The order of the entries is part of the corpus: for a seed, the same files (and the
pinned Faker and pycountry) give the same sentences. The files are read on first use, not at import.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from demo_model import inventory

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
# Template files besides templates.txt, one per style (same slots).
SHAPE_FILES: tuple[str, ...] = ("templates.txt", "headlines.txt", "sports.txt", "chat.txt")


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
def _forms(name: str, index: int) -> tuple[str, ...]:
    """Column `index` of a "form|form" word list (verbs.txt: present|past)."""
    return tuple(entry.split("|")[index] for entry in _words(name))


def plural(noun: str) -> str:
    """The plural of a regular English noun: city -> cities, tax -> taxes, port -> ports."""
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


@functools.cache
def _nouns() -> tuple[tuple[str, str], ...]:
    """(singular, plural) of every entry of words/nouns.txt ("noun" or "noun|irregular plural")."""
    pairs = []
    for entry in _words("nouns"):
        singular, _, irregular = entry.partition("|")
        pairs.append((singular, irregular or plural(singular)))
    return tuple(pairs)


@functools.cache
def _company_tails() -> tuple[str, ...]:
    return _names("company_tails") + ("",) * _BARE_HEAD_PICKS


@functools.cache
def _lorem_words() -> tuple[str, ...]:
    """Faker's list of common English words (lower-case ones), without those that are people's names here."""
    from faker.providers.lorem.en_US import Provider

    people = {name.casefold() for name in (*inventory.inventories().first_names, *inventory.inventories().surnames)}
    return tuple(w for w in Provider.word_list if w.islower() and len(w) > 2 and w not in people)


def _check_slots(path: Path, entries: Sequence[str]) -> None:
    for entry in entries:
        for slot in _SLOT_RE.findall(entry):
            if slot not in _FILLERS:
                raise ValueError(f"{path}: {entry!r} uses the unknown slot {{{slot}}}")


@functools.cache
def shapes(name: str) -> tuple[str, ...]:
    """The entries of one of SHAPE_FILES, each slot checked against the fillers."""
    path = DATA_DIR / name
    entries = read_entries(path)
    _check_slots(path, entries)
    return entries


def templates() -> tuple[str, ...]:
    """The sentence templates of data/templates.txt, each slot checked against the fillers."""
    return shapes("templates.txt")


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


@functools.cache
def _list_headings() -> tuple[tuple[str, str], ...]:
    """(kind, heading) of words/list_headers.txt, each kind checked against _LIST_ITEMS."""
    pairs = []
    for entry in _words("list_headers"):
        kind, _, heading = entry.partition("|")
        if kind not in _LIST_ITEMS or not heading:
            raise ValueError(f"list_headers.txt: {entry!r} must be KIND|Heading with KIND in {sorted(_LIST_ITEMS)}")
        pairs.append((kind, heading))
    return tuple(pairs)


# ----------------------------------------------------------------------------------------------------------
# Names: drawn from the inventories, some invented
# ----------------------------------------------------------------------------------------------------------

# A rendered slot: pieces of text, each with its entity label or None for plain text.
Segments = list[tuple[str, str | None]]
Pick = Callable[[random.Random], str]


def _inv() -> inventory.Inventories:
    return inventory.inventories()


def _invented_word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    word = "".join(rng.choice(_names("syllables")) for _ in range(rng.randint(*syllables)))
    return word.capitalize()


def _first_name(rng: random.Random) -> str:
    return _invented_word(rng) if rng.random() < 0.08 else rng.choice(_inv().first_names)


def _surname(rng: random.Random) -> str:
    surnames = _inv().surnames
    roll = rng.random()
    if roll < 0.08:
        return _invented_word(rng)
    if roll < 0.12:
        return f"{rng.choice(surnames)}-{rng.choice(surnames)}"
    return rng.choice(surnames)


@functools.cache
def _surnames_ending_in_s() -> tuple[str, ...]:
    return tuple(name for name in _inv().surnames if name.endswith("s"))


def _person(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.06:
        return f"{_first_name(rng)} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {_surname(rng)}"
    if roll < 0.11:
        return f"{_first_name(rng)} {_first_name(rng)} {_surname(rng)}"
    if roll < 0.16:
        return f"{_first_name(rng)} {_surname(rng)} {_surname(rng)}"
    if roll < 0.19:
        return f"{_first_name(rng)}-{_first_name(rng)} {_surname(rng)}"
    if roll < 0.21:
        return f"{_first_name(rng)} {_surname(rng)} {rng.choice(('Jr.', 'Jr', 'II', 'III'))}"
    return f"{_first_name(rng)} {_surname(rng)}"


def _real_or_invented_company(rng: random.Random) -> str:
    suffixes = _names("company_suffixes")
    roll = rng.random()
    if roll < 0.42:
        return rng.choice(_names("real_companies"))
    if roll < 0.64:
        return rng.choice(_inv().companies)
    if roll < 0.78:
        name = rng.choice(_names("company_heads")) + rng.choice(_company_tails())
        return name if rng.random() < 0.35 else f"{name} {rng.choice(suffixes)}"
    if roll < 0.88:
        name = _invented_word(rng)
        return name if rng.random() < 0.4 else f"{name} {rng.choice(suffixes)}"
    if roll < 0.93:
        return f"{_surname(rng)} & {_surname(rng)}"
    if roll < 0.97:
        return f"{_surname(rng)} {rng.choice(suffixes)}"
    return f"{_city(rng)} {rng.choice(('Bank', 'Energy', 'Telecom', 'Steel', 'Group', 'Water', 'Airways'))}"


def _institution(rng: random.Random) -> str:
    """A real institution, or one made of a place or field: "Reserve Bank of Peru", "Ministry of Energy"."""
    if rng.random() < 0.45:
        return rng.choice(_names("institutions"))
    city, country, nat = _city(rng), _country(rng), rng.choice(_inv().nationalities)
    field = rng.choice(_words("fields"))
    return rng.choice(
        (
            f"University of {city}",
            f"{city} University",
            f"{city} Institute of Technology",
            f"{city} School of {field}",
            f"{city} City Council",
            f"{city} General Hospital",
            f"{city} Police",
            f"{city} Police Department",
            f"{city} Stock Exchange",
            f"{city} Symphony Orchestra",
            f"Central Bank of {country}",
            f"Reserve Bank of {country}",
            f"Bank of {country}",
            f"{nat} Central Bank",
            f"Ministry of {field}",
            f"{nat} Ministry of {field}",
            f"Department of {field}",
            f"National {field} Agency",
            f"{nat} {field} Agency",
            f"{nat} Academy of Sciences",
            f"{nat} Football Association",
            f"{nat} Red Cross",
            f"{nat} Labour Party",
            f"{nat} Socialist Party",
            f"{nat} Green Party",
            f"{nat} Supreme Court",
            f"{country} Geological Survey",
            f"Office for {field}",
            f"International {field} Agency",
            f"World {field} Organization",
            f"{field} Commission",
        )
    )


def _media(rng: random.Random) -> str:
    return rng.choice(_names("media"))


def _one_of(rng: random.Random, *picks: tuple[float, Pick]) -> str:
    """A name from the first pick whose bound one roll of rng falls under (bounds rising, the last one 1)."""
    roll = rng.random()
    return next(pick for bound, pick in picks if roll < bound)(rng)


def _organisation(rng: random.Random) -> str:
    return _one_of(rng, (0.6, _real_or_invented_company), (0.9, _institution), (1, _media))


_CLUB_SHAPES = (
    "{} United",
    "{} City",
    "{} FC",
    "FC {}",
    "{} Rovers",
    "{} Athletic",
    "{} Wanderers",
    "{} Town",
    "Real {}",
    "Sporting {}",
    "Dynamo {}",
    "Racing {}",
    "{} SC",
    "AC {}",
)


def _club(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(_names("clubs"))
    place = _city(rng)
    if roll < 0.55:
        return f"{place} {rng.choice(_names('team_nicknames'))}"
    return rng.choice(_CLUB_SHAPES).format(place)


def _team(rng: random.Random) -> str:
    """A club as score lines name it: often just its town ("Leeds 2 Hull 1"), which is then an ORG."""
    return _city(rng) if rng.random() < 0.35 else _club(rng)


def _city(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.06:
        return _invented_word(rng, (1, 2)) + rng.choice(_names("place_suffixes"))
    if roll < 0.55:
        return rng.choice(_inv().cities)
    return rng.choice(_inv().towns)


def _country(rng: random.Random) -> str:
    return rng.choice(_inv().countries)


def _region(rng: random.Random) -> str:
    return rng.choice(_inv().regions) if rng.random() < 0.4 else rng.choice(_inv().subdivisions)


def _location(rng: random.Random) -> str:
    return _one_of(rng, (0.45, _city), (0.8, _country), (1, _region))


def _landmark(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(_names("landmarks"))
    if roll < 0.75:
        kind = rng.choice(("Airport", "Castle", "Cathedral", "Central Station", "Harbour", "Bridge", "Stadium"))
        return f"{_city(rng)} {kind}"
    if roll < 0.9:
        return f"{_surname(rng)} {rng.choice(('Street', 'Road', 'Avenue', 'Square', 'Park', 'Lane'))}"
    return f"Lake {_city(rng)}" if rng.random() < 0.5 else f"Mount {_invented_word(rng)}"


def _nationality(rng: random.Random) -> str:
    return rng.choice(_inv().nationalities)


def _demonym_plural(rng: random.Random) -> str:
    """ "Brazilians", "Israelis": nationalities that take a plural -s (not "French", "Swiss", "Chinese")."""
    plurals = [n + "s" for n in _inv().nationalities if n.endswith(("an", "i")) and " " not in n]
    return rng.choice(plurals)


def _religion(rng: random.Random) -> str:
    name = rng.choice(_names("religions"))
    if rng.random() < 0.3 and not name.endswith(("ism", "ity", "am", "ic", "dox")):
        return name + "s"
    return name


def _event(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(_names("events"))
    city, nat = _city(rng), _nationality(rng)
    return rng.choice(
        (
            f"{nat} Grand Prix",
            f"{city} Marathon",
            f"{city} Open",
            f"{nat} Open",
            f"{city} Film Festival",
            f"{city} Book Fair",
            f"{city} Jazz Festival",
            f"{nat} Cup",
            f"{nat} Championship",
            f"{city} Motor Show",
            f"{nat} Masters",
        )
    )


def _model(rng: random.Random) -> str:
    """A product or model: "Galaxy A54", "Corolla", or an invented line with a number ("Veltra X5")."""
    if rng.random() < 0.75:
        name = rng.choice(_names("products"))
        while "#" in name:
            name = name.replace("#", str(rng.randint(1, 9)) if rng.random() < 0.6 else str(rng.randint(10, 99)), 1)
        return name
    line = _invented_word(rng, (2, 2))
    return f"{line} {rng.choice(('', 'X', 'S', 'Pro ', 'GT', 'Z'))}{rng.randint(1, 99)}".replace("  ", " ")


def _work(rng: random.Random) -> str:
    return rng.choice(_names("works"))


def _language(rng: random.Random) -> str:
    return rng.choice(_inv().languages)


def _entity(label: str, pick: Pick) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), label)]


def _listing(label: str, pick: Pick) -> Callable[[random.Random], Segments]:
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


def _plain(pick: Pick) -> Callable[[random.Random], Segments]:
    return lambda rng: [(pick(rng), None)]


def _word_from(name: str) -> Callable[[random.Random], Segments]:
    return _plain(lambda rng: rng.choice(_words(name)))


def _date(rng: random.Random) -> str:
    day, month = rng.randint(1, 28), rng.choice(_words("months"))
    return rng.choice((f"{day} {month}", f"{month} {day}", f"{month} {day}, {rng.randint(1990, 2030)}"))


def _score(rng: random.Random) -> str:
    a, b = rng.randint(0, 5), rng.randint(0, 4)
    return rng.choice((f"{a}-{b}", f"{a}-{b}", f"{a}:{b}", f"{rng.randint(60, 130)}-{rng.randint(60, 130)}"))


_FILLERS: dict[str, Callable[[random.Random], Segments]] = {
    "PER": _entity("PER", _person),
    "FIRST": _entity("PER", _first_name),
    "SUR": _entity("PER", _surname),
    "SURS": _entity("PER", lambda rng: rng.choice(_surnames_ending_in_s())),
    "PERS": _entity("PER", lambda rng: rng.choice((_person, _surname))(rng)),
    "PERS_LIST": _listing("PER", _person),
    "ORG": _entity("ORG", _organisation),
    "ORGS": _listing("ORG", _organisation),
    "CO": _entity("ORG", _real_or_invented_company),
    "INST": _entity("ORG", _institution),
    "MEDIA": _entity("ORG", _media),
    "CLUB": _entity("ORG", _club),
    "TEAM": _entity("ORG", _team),
    "NICK": _entity("ORG", lambda rng: rng.choice(_names("team_nicknames"))),
    "CITY": _entity("LOC", _city),
    "COUNTRY": _entity("LOC", _country),
    "REGION": _entity("LOC", _region),
    "LOC": _entity("LOC", _location),
    "LOCS": _listing("LOC", _location),
    "LANDMARK": _entity("LOC", _landmark),
    "CODE": _entity("LOC", lambda rng: rng.choice(_inv().country_codes)),
    "NAT": _entity("MISC", _nationality),
    "NATS": _listing("MISC", _nationality),
    "NATP": _entity("MISC", _demonym_plural),
    "RELIGION": _entity("MISC", _religion),
    "LANG": _entity("MISC", _language),
    "LANGS": _listing("MISC", _language),
    "EVENT": _entity("MISC", _event),
    "MODEL": _entity("MISC", _model),
    "WORK": _entity("MISC", _work),
    "MISC": _entity("MISC", lambda rng: rng.choice(_names("other_misc"))),
    "TITLE": _word_from("titles"),
    "ROLE": _word_from("roles"),
    "JOB": _word_from("jobs"),
    "THING": _word_from("things"),
    "PLACE": _word_from("place_nouns"),
    "ADJ": _word_from("adjectives"),
    "BUSINESS": _word_from("businesses"),
    "PRODUCT": _word_from("products"),
    "SPORT": _word_from("sports"),
    "HAPPENING": _word_from("happenings"),
    "DAY": _word_from("days"),
    "MONTH": _word_from("months"),
    "HOLIDAY": _word_from("holidays"),
    "DIR": _word_from("directions"),
    "PEOPLE": _word_from("people"),
    "TZ": _word_from("timezones"),
    "ACRONYM": _word_from("acronyms"),
    "NOUN": _plain(lambda rng: rng.choice(_nouns())[0]),
    "NOUNS": _plain(lambda rng: rng.choice(_nouns())[1]),
    "VERB": _plain(lambda rng: rng.choice(_forms("verbs", 0))),
    "VERBED": _plain(lambda rng: rng.choice(_forms("verbs", 1))),
    "WORD": _plain(lambda rng: rng.choice(_lorem_words())),
    "DATE": _plain(_date),
    "TIME": _plain(lambda rng: f"{rng.randint(1, 12)}:{rng.choice(('00', '15', '30', '45'))}"),
    "SCORE": _plain(_score),
    "YEAR": _plain(lambda rng: str(rng.randint(1950, 2030))),
    "NUM": _plain(lambda rng: str(rng.choice((rng.randint(2, 99), rng.randint(100, 9999))))),
}
# The slot names a template may use (documented in data/templates.txt).
SLOTS: frozenset[str] = frozenset(_FILLERS)


# ----------------------------------------------------------------------------------------------------------
# Rendering: templates -> segments -> text and spans
# ----------------------------------------------------------------------------------------------------------


def _render(template: str, rng: random.Random) -> Segments:
    """The segments of a template with every slot filled ("\\n" in a template is a line break)."""
    segments: Segments = []
    position = 0
    for match in _SLOT_RE.finditer(template):
        segments.append((template[position : match.start()].replace("\\n", "\n"), None))
        segments.extend(_FILLERS[match.group(1)](rng))
        position = match.end()
    segments.append((template[position:].replace("\\n", "\n"), None))
    return [(text, label) for text, label in segments if text]


def _join(segments: Segments) -> tuple[str, tuple[Span, ...]]:
    text = ""
    spans: list[Span] = []
    for piece, label in segments:
        if label is not None:
            spans.append(Span(label, len(text), len(text) + len(piece)))
        text += piece
    return text, tuple(spans)


_SMALL_WORDS = frozenset("a an the of in on at to for and or as by with from vs".split())


def _title_case(text: str, first: bool) -> str:
    words = re.split(r"( +)", text)
    out = []
    for word in words:
        if word.strip() and (first or word.casefold() not in _SMALL_WORDS):
            word = word[0].upper() + word[1:]
        if word.strip():
            first = False
        out.append(word)
    return "".join(out)


def _cased(segments: Segments, case: str) -> Segments:
    """Segments in another case: "upper" (ALL CAPS), "lower" (chat), "title" (headline: plain words capitalised;
    names keep their own case, as in "Floods Hit de Vries Farm"). Lengths may change (ß -> SS): spans are computed
    after casing, by _join."""
    if case == "upper":
        return [(text.upper(), label) for text, label in segments]
    if case == "lower":
        return [(text.lower(), label) for text, label in segments]
    out: Segments = []
    for index, (text, label) in enumerate(segments):
        out.append((text if label is not None else _title_case(text, first=index == 0), label))
    return out


def _maybe_cased(segments: Segments, rng: random.Random, *cases: tuple[float, str]) -> Segments:
    """Segments in the case of the first (bound, case) whose bound one roll of rng falls under (bounds rising), else
    as they are: _maybe_cased(s, rng, (0.03, "upper"), (0.08, "lower")) gives 3% ALL CAPS and 5% lower case."""
    roll = rng.random()
    for bound, case in cases:
        if roll < bound:
            return _cased(segments, case)
    return segments


def _without_final_stop(segments: Segments, stops: tuple[str, ...] = (".",)) -> Segments:
    """Segments without the final full stop (or other mark in stops) of their last plain-text segment."""
    text, label = segments[-1]
    if label is None and text.endswith(stops):
        return [*segments[:-1], (text[:-1], None)] if len(text) > 1 else segments[:-1]
    return segments


def _capitalise_first(segments: Segments) -> Segments:
    if segments and segments[0][0] and segments[0][1] is None:
        text = segments[0][0]
        return [(text[0].upper() + text[1:], None), *segments[1:]]
    return segments


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


def _sentence(rng: random.Random) -> Segments:
    return _capitalise_first(_render(_decorate(rng.choice(templates()), rng), rng))


def _news(rng: random.Random) -> Segments:
    """A template sentence; now and then in capitals or lower case as users paste it."""
    return _maybe_cased(_sentence(rng), rng, (0.03, "upper"), (0.08, "lower"))


def _paragraph(rng: random.Random) -> Segments:
    """Two (sometimes three) sentences in a row, as in a pasted news paragraph."""
    segments = _sentence(rng)
    for _ in range(rng.choice((1, 1, 1, 2))):
        segments = [*segments, (rng.choice((" ", " ", "\n", "\n\n")), None), *_sentence(rng)]
    return segments


_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("«", "»"))


def _quote(rng: random.Random) -> Segments:
    """A sentence quoted, with its speaker before or after: '"...," said Anna Meyer.'"""
    body = _without_final_stop(_render(rng.choice(templates()), rng), (".", "!", "?"))
    opening, closing = rng.choice(_QUOTES)
    speaker = _render(
        rng.choice(
            (
                "said {PER}",
                "{PER} said",
                "{PER} told reporters",
                "said {TITLE} {SUR}",
                "{ROLE} {PER} said",
                "said {PER}, {ROLE} of {ORG}",
                "{SUR} told {MEDIA}",
                "one {JOB} said",
                "a spokesperson for {ORG} said",
                "{PEOPLE} said",
            )
        ),
        rng,
    )
    roll = rng.random()
    if roll < 0.6:
        return [(opening, None), *body, ("," + closing + " ", None), *speaker, (".", None)]
    if roll < 0.8:
        return [*_render(rng.choice(("{PER}: ", "{SUR}: ", "{TITLE} {SUR}: ")), rng), (opening, None), *body,
                ("." + closing, None)]  # fmt: skip
    return [*_capitalise_first(speaker), (": " + opening, None), *body, (closing, None)]


def _headline(rng: random.Random) -> Segments:
    segments = _capitalise_first(_render(rng.choice(shapes("headlines.txt")), rng))
    return _maybe_cased(segments, rng, (0.4, "title"), (0.7, "upper"))


def _sports(rng: random.Random) -> Segments:
    if rng.random() < 0.25:
        return _table(rng)
    return _maybe_cased(_render(rng.choice(shapes("sports.txt")), rng), rng, (0.08, "upper"))


def _table(rng: random.Random) -> Segments:
    """League table rows: "1. Leeds United 12 9 2 1 28 29", one row a line, two to five rows."""
    segments: Segments = []
    start = rng.randint(1, 12)
    numbered = rng.random() < 0.7
    for row in range(rng.randint(2, 5)):
        if row:
            segments.append(("\n", None))
        if numbered:
            segments.append((f"{start + row}{rng.choice(('.', '.', ''))} ", None))
        segments.extend(_FILLERS["TEAM"](rng))
        played = rng.randint(5, 38)
        stats = [played, rng.randint(0, played), rng.randint(0, 10), rng.randint(0, 10)]
        stats += [rng.randint(0, 80), rng.randint(0, 90)]
        separator = rng.choice((" ", "  ", "\t"))
        segments.append((separator + separator.join(str(n) for n in stats[: rng.randint(2, 6)]), None))
    return segments


def _chat(rng: random.Random) -> Segments:
    """Lower-case chat: a chat shape, or a news sentence made chatty (no capitals, no stop, interjections)."""
    if rng.random() < 0.6:
        segments = _render(rng.choice(shapes("chat.txt")), rng)
    else:
        segments = _without_final_stop(_render(rng.choice(templates()), rng))
    if rng.random() < 0.3:
        segments = [(rng.choice(_words("chat")) + " ", None), *segments]
    if rng.random() < 0.25:
        segments = [*segments, (" " + rng.choice(_words("chat")), None)]
    return _maybe_cased(segments, rng, (0.85, "lower"))


# Items of a list by kind (words/list_headers.txt).
_LIST_ITEMS: dict[str, str] = {
    "PER": "{PER}",
    "PER_ORG": "{PER} ({ORG})",
    "PER_ROLE": "{PER}, {ROLE}",
    "CITY": "{CITY}",
    "COUNTRY": "{COUNTRY}",
    "LOC": "{LOC}",
    "CO": "{CO}",
    "ORG": "{ORG}",
    "CLUB": "{CLUB}",
    "EVENT": "{EVENT}",
    "MODEL": "{MODEL}",
    "WORK": "{WORK}",
    "LANG": "{LANG}",
    "NOUN": "{NOUN}",
}


def _list(rng: random.Random) -> Segments:
    """A heading and two to five items, inline ("Sponsors: A, B and C", "A | B | C") or one a line (bullets,
    numbers); items of one kind, or common nouns that are never entities."""
    kind, heading = rng.choice(_list_headings())
    count = rng.randint(2, 5)
    items = [_render(_LIST_ITEMS[kind], rng) for _ in range(count)]
    if kind == "NOUN" and rng.random() < 0.5:
        items = [[(rng.choice(_lorem_words()), None)] for _ in range(count)]
    if kind == "NOUN" or rng.random() < 0.2:
        items = [_capitalise_first(item) if rng.random() < 0.5 else item for item in items]
    layout = rng.choice(("comma", "comma", "and", "bar", "semicolon", "bullet", "dash", "number", "lines"))
    head: Segments = [(heading + rng.choice((":", ":", "", " -")), None)] if rng.random() < 0.85 else []
    segments: Segments = []
    for index, item in enumerate(items):
        if layout in ("bullet", "dash", "number", "lines"):
            marker = {"bullet": "• ", "dash": "- ", "number": f"{index + 1}. ", "lines": ""}[layout]
            if index or head:
                segments.append(("\n" + marker, None))
            else:
                segments.append((marker, None) if marker else ("", None))
        elif index:
            last = index == count - 1
            separator = {"comma": ", ", "bar": " | ", "semicolon": "; "}.get(layout, " and " if last else ", ")
            segments.append((separator, None))
        elif head:
            segments.append((" ", None))
        segments.extend(item)
    return [(text, label) for text, label in [*head, *segments] if text]


_FRAGMENTS = (
    "{PER}",
    "{CITY}",
    "{COUNTRY}",
    "{CO}",
    "{ORG}",
    "{PER}, {JOB}",
    "{PER} ({NAT})",
    "{PER} ({CITY})",
    "{CO} ({CITY})",
    "{CITY}, {COUNTRY}",
    "{CITY} ({COUNTRY})",
    "Re: {NOUN}",
    "Re: {CO} {NOUN}",
    "{NOUN} update",
    "{PEOPLE}",
    "{DAY}",
    "{MONTH} {YEAR}",
    "{HOLIDAY}",
    "{TITLE} {SUR}",
    "{EVENT} {YEAR}",
    "{MODEL}",
    "[{ORG}]",
    "({LOC})",
    "{SUR}?",
    "{FIRST}!",
    "{NOUN}!",
    "Breaking: {NOUN} in {CITY}",
    "Photo: {MEDIA}",
    "Source: {ORG}",
    "By {PER}, {CITY}",
    "{CITY}, {DATE} ({MEDIA})",
    "Sent from {CITY}",
    "{WORD} {WORD}",
    "{NOUNS}",
)


def _fragment(rng: random.Random) -> Segments:
    return _render(rng.choice(_FRAGMENTS), rng)


def _document(rng: random.Random) -> Segments:
    """Eight to thirty-two texts of the other styles in a row, as one long document (up to some 500 word pieces).

    The served model reads a document in windows of up to 512 word pieces. Trained on short texts alone, it lost
    entities as windows grew: texts packed into 510-piece windows scored 0.73 F1 against 0.95 one by one."""
    styles = [style for style in STYLE_WEIGHTS if style != "document"]
    weights = [STYLE_WEIGHTS[style] for style in styles]
    segments: Segments = []
    for index in range(rng.randint(8, 32)):
        if index:
            segments.append((rng.choice(("\n\n", "\n", " ", " ")), None))
        segments.extend(_STYLES[rng.choices(styles, weights)[0]](rng))
    return segments


# What generate_corpus draws, by style: the share of each kind of text in the corpus.
STYLE_WEIGHTS: dict[str, float] = {
    "news": 0.385,
    "document": 0.015,
    "paragraph": 0.06,
    "quote": 0.05,
    "headline": 0.14,
    "sports": 0.10,
    "chat": 0.09,
    "list": 0.09,
    "fragment": 0.07,
}
_STYLES: dict[str, Callable[[random.Random], Segments]] = {
    "news": _news,
    "paragraph": _paragraph,
    "quote": _quote,
    "headline": _headline,
    "sports": _sports,
    "chat": _chat,
    "list": _list,
    "fragment": _fragment,
    "document": _document,
}


def make_example(text: str, entities: Sequence[Span]) -> Example:
    """Build an Example (words, IOB2 tags) from a text and its character-level entity spans."""
    tokens = tokenize_with_spans(text)
    return Example(text, tokens, iob2_tags(tokens, entities), tuple(entities))


def generate_corpus(num_sentences: int, seed: int) -> list[Example]:
    """num_sentences synthetic texts; the same seed always gives the same corpus.

    Uses its own random.Random, so it neither depends on nor disturbs the global random state.
    """
    rng = random.Random(seed)
    styles = list(STYLE_WEIGHTS)
    weights = [STYLE_WEIGHTS[style] for style in styles]
    examples = []
    for _ in range(num_sentences):
        style = rng.choices(styles, weights)[0]
        text, spans = _join(_STYLES[style](rng))
        examples.append(make_example(text, spans))
    return examples
