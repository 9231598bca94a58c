"""Split a document into chunks for streaming: at paragraphs, else sentences, else words; never inside a word.

Chunks tile the document: consecutive, no gaps, no overlap, and the whitespace between two units stays with the
one before it. So entity offsets of a chunk plus the chunk's start are offsets into the document, and the
segments of all chunks (format ``segments``), rebased, cover the document exactly.

A chunk holds at most ``max_chars`` characters, except for a run with no boundary at all (a URL, a long CJK
sentence without punctuation) which is kept whole: splitting it would cut a word. TorchServe's handler windows
any text longer than the model's window anyway, so chunk size is about latency, never about correctness.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")  # a blank line, and whatever whitespace follows it
SENTENCE_END = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+"  # Latin: terminal punctuation, closing quotes, then whitespace
    r"|[\u3002\uff01\uff1f]+[\"'\u201d\u2019\u300d\u300f)\]]*\s*"  # CJK full stops need no space after them
)
WHITESPACE = re.compile(r"\s+")
# A period after these does not end a sentence ("Dr. Smith", "e.g. this").
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf no vol fig jan feb mar apr jun jul aug sep sept oct nov "
    "dec inc ltd co corp u.s u.k a.m p.m approx dept est".split()
)


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int


def split_document(text: str, max_chars: int) -> list[Chunk]:
    """Consecutive chunks covering ``text``; [] for an empty text."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if not text:
        return []
    spans = _pack(text, 0, len(text), max_chars, 0)
    return [Chunk(index, start, end) for index, (start, end) in enumerate(spans)]


def _pack(text: str, start: int, end: int, max_chars: int, level: int) -> list[tuple[int, int]]:
    """Units of ``text[start:end]`` at ``level``, merged greedily up to ``max_chars``; oversized units go deeper."""
    if end - start <= max_chars or level == len(SPLITTERS_COARSE_TO_FINE):
        return [(start, end)]
    cuts = [cut for cut in SPLITTERS_COARSE_TO_FINE[level](text, start, end) if start < cut < end]
    units = zip([start, *cuts], [*cuts, end], strict=True)
    spans: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for unit_start, unit_end in units:
        if unit_end - unit_start > max_chars:
            if current:
                spans.append(current)
                current = None
            spans.extend(_pack(text, unit_start, unit_end, max_chars, level + 1))
        elif current and unit_end - current[0] <= max_chars:
            current = (current[0], unit_end)
        else:
            if current:
                spans.append(current)
            current = (unit_start, unit_end)
    if current:
        spans.append(current)
    return spans


def _paragraph_cuts(text: str, start: int, end: int) -> Iterator[int]:
    return (match.end() for match in PARAGRAPH_BREAK.finditer(text, start, end))


def _sentence_cuts(text: str, start: int, end: int) -> Iterator[int]:
    for match in SENTENCE_END.finditer(text, start, end):
        if match.group().startswith(".") and not _ends_sentence(text, match.start(), match.end()):
            continue
        yield match.end()


def _ends_sentence(text: str, period: int, after: int) -> bool:
    """False for a period after an abbreviation or an initial, or one followed by a lower-case word."""
    word_start = period
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:period].lstrip("(\"'\u201c\u2018").lower()
    if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False
    return not (after < len(text) and text[after].islower())


def _word_cuts(text: str, start: int, end: int) -> Iterator[int]:
    return (match.end() for match in WHITESPACE.finditer(text, start, end))


SPLITTERS_COARSE_TO_FINE: list[Callable[[str, int, int], Iterator[int]]] = [_paragraph_cuts, _sentence_cuts, _word_cuts]
