"""Word pieces from the checkpoint's fast tokenizer: offsets into the original text, sub-word flags, refusals."""

import json

import pytest

from nerserve.checkpoint import CLASSIC_HEAD_CONFIG
from nerserve.tokenization import check_vocabulary, encode_batch, load_tokenizer, subword_flags
from tests.support.tiny_models import build_vocab


@pytest.fixture
def vocab_only(tmp_path):
    """A checkpoint directory whose only tokenizer file is vocab.txt (the classic layout's)."""
    (tmp_path / "vocab.txt").write_text("\n".join(build_vocab()) + "\n", encoding="utf-8")
    return tmp_path


def test_subword_flags_follow_the_pipeline_rule():
    text = "Zürich 😀 Schwarzenegger"
    tokens = ["zurich", "[UNK]", "schwarz", "##en", "##egger"]
    offsets = [(0, 6), (7, 8), (9, 16), (16, 18), (18, 23)]
    unknown = [False, True, False, False, False]
    assert subword_flags(text, tokens, offsets, unknown) == [False, False, False, True, True]
    # Without a continuation prefix: a piece is a continuation when no space precedes it.
    assert subword_flags(text, tokens, offsets, [False] * 5, word_aware=False) == [False, False, False, True, True]


def test_pieces_carry_offsets_into_the_original_text(tiny_checkpoint):
    tokenizer = load_tokenizer(tiny_checkpoint, 64)
    texts = ["Angela Merkel in Zürich", "", "Paris 😀 x"]
    pieces = encode_batch(tokenizer, texts)
    assert len(pieces[1]) == 0
    # Accents are stripped in the uncased vocabulary, yet every offset points into the original text.
    assert [texts[0][start:end] for start, end in pieces[0].offsets] == ["Angela", "Merkel", "in", *"Zürich"]
    assert pieces[0].is_subword == [False, False, False, False, True, True, True, True, True]
    assert [texts[2][start:end] for start, end in pieces[2].offsets] == ["Paris", "😀", "x"]
    assert pieces[2].ids[1] == tokenizer.unk_token_id and pieces[2].is_subword == [False, False, False]
    assert tokenizer.cls_token_id not in pieces[0].ids  # no special tokens: each window gets its own
    assert encode_batch(tokenizer, []) == []


def test_vocab_only_checkpoint_guesses_lower_case_unless_the_head_config_says(vocab_only):
    lowered = encode_batch(load_tokenizer(vocab_only, 64), ["Paris"])[0]
    (vocab_only / CLASSIC_HEAD_CONFIG).write_text(json.dumps({"do_lower_case": False}), encoding="utf-8")
    cased_tokenizer = load_tokenizer(vocab_only, 64)
    cased = encode_batch(cased_tokenizer, ["Paris"])[0]
    assert lowered.ids != cased.ids
    assert cased_tokenizer.unk_token_id in cased.ids  # the vocabulary has no capitals


def test_a_long_text_is_neither_truncated_nor_padded(vocab_only):
    tokenizer = load_tokenizer(vocab_only, 8)
    assert len(encode_batch(tokenizer, ["paris " * 50])[0]) == 50


def test_a_directory_without_tokenizer_files_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no tokenizer.json, tokenizer_config.json or vocab.txt"):
        load_tokenizer(tmp_path, 64)


def test_a_vocabulary_bigger_than_the_embeddings_is_refused(vocab_only):
    tokenizer = load_tokenizer(vocab_only, 64)
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    check_vocabulary(tokenizer, size)
    with pytest.raises(ValueError, match=rf"hold {size} tokens but the model config's field 'vocab_size'"):
        check_vocabulary(tokenizer, size - 1)
