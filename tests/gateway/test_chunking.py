"""split_document: chunks tile the document, stay under the size, prefer paragraphs, never cut a word."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from gateway.chunking import split_document

BREAKABLE = " \n\t\u3000"


def spans(text, max_chars):
    return [text[c.start : c.end] for c in split_document(text, max_chars)]


def assert_valid(text, max_chars):
    chunks = split_document(text, max_chars)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # Tiling: consecutive, no gap, no overlap, the whole text.
    assert "".join(text[c.start : c.end] for c in chunks) == text
    assert all(a.end == b.start for a, b in pairwise(chunks))
    for chunk in chunks[1:]:
        cut = chunk.start
        # Never inside a word: whitespace before the cut, or a CJK full stop.
        assert text[cut - 1].isspace() or text[cut - 1] in "\u3002\uff01\uff1f", (text[cut - 8 : cut + 8], cut)
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        if chunk.end - chunk.start > max_chars:
            # Only a run without any boundary may be longer (plus the whitespace that follows it).
            assert not any(ch.isspace() for ch in piece.rstrip()), piece[:80]
    return chunks


def test_empty_and_short_texts():
    assert split_document("", 100) == []
    assert spans("Angela Merkel met Tim Cook.", 100) == ["Angela Merkel met Tim Cook."]
    assert spans("   ", 100) == ["   "]


def test_paragraphs_are_preferred_and_packed():
    paragraphs = ["First paragraph here.", "Second one, a little longer.", "Third."]
    text = "\n\n".join(paragraphs)
    assert spans(text, 100) == [text]
    assert spans(text, 55) == ["First paragraph here.\n\nSecond one, a little longer.\n\n", "Third."]
    assert spans(text, 30) == ["First paragraph here.\n\n", "Second one, a little longer.\n\n", "Third."]
    assert_valid(text, 30)


def test_sentences_split_a_long_paragraph_but_not_after_abbreviations():
    text = "Dr. Smith went to Washington. He met Mr. Jones there! Was it e.g. useful? Yes. J. R. R. Tolkien wrote."
    chunks = spans(text, 40)
    assert_valid(text, 40)
    assert all(not c.rstrip().endswith(("Dr.", "Mr.", "e.g.", "J.", "R.")) for c in chunks), chunks
    assert chunks[0] == "Dr. Smith went to Washington. "


def test_words_split_a_long_sentence_and_an_unbreakable_run_stays_whole():
    text = "word " * 30 + "x" * 50 + " tail"
    chunks = assert_valid(text, 20)
    assert "x" * 50 + " " in chunks_text(text, chunks)
    assert max(len(c) for c in chunks_text(text, chunks) if "x" not in c) <= 20


def chunks_text(text, chunks):
    return [text[c.start : c.end] for c in chunks]


def test_cjk_sentences_split_after_full_stops():
    text = "東京は大きい都市です。北京も大きいです。" * 6
    chunks = assert_valid(text, 25)
    assert all(text[c.end - 1] == "。" for c in chunks)


@pytest.mark.parametrize("seed", range(30))
def test_random_documents_are_tiled_without_cutting_words(seed):
    rng = random.Random(seed)
    words = ["alpha", "Beta", "gamma.", "Delta!", "e.g.", "Dr.", "東京。", "x" * rng.randint(1, 90), "naïve", "😀"]
    separators = [" ", " ", " ", "\n", "\n\n", "  \n \n", "\t"]
    text = "".join(rng.choice(words) + rng.choice(separators) for _ in range(rng.randint(0, 400)))
    if rng.random() < 0.3:
        text = text.strip()
    assert_valid(text, rng.choice([16, 40, 64, 200, 1000]))
