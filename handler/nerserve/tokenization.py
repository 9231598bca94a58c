"""Load the checkpoint's fast tokenizer and turn texts into word pieces with character offsets and sub-word flags.

Only fast (Rust) tokenizers give offsets into the original text; a slow one is refused at load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerserve.checkpoint import CLASSIC_HEAD_CONFIG, HF_CONFIG

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


@dataclasses.dataclass(frozen=True)
class WordPieces:
    """The word pieces of one text, without special tokens."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    is_subword: list[bool]

    def __len__(self) -> int:
        return len(self.ids)


def load_tokenizer(model_dir: str | Path, model_max_length: int) -> PreTrainedTokenizerFast:
    """The fast tokenizer of a checkpoint directory (tokenizer files, or just vocab.txt)."""
    from transformers import AutoTokenizer
    from transformers.models.bert.tokenization_bert import BertTokenizerFast

    model_dir = Path(model_dir)
    has_tokenizer_files = (model_dir / "tokenizer.json").is_file() or (model_dir / "tokenizer_config.json").is_file()
    tokenizer: Any  # AutoTokenizer may build a slow one; refused below
    if has_tokenizer_files and (model_dir / HF_CONFIG).is_file():
        tokenizer = AutoTokenizer.from_pretrained(model_dir, model_max_length=model_max_length)
    elif (model_dir / "vocab.txt").is_file():
        # Passing vocab_file= to the constructor silently maps every token to [UNK] in transformers 5:
        # from_pretrained on the directory reads vocab.txt correctly.
        kwargs: dict[str, Any] = {"model_max_length": model_max_length}
        lower = _lower_case_from_checkpoint(model_dir)
        if lower is not None:
            kwargs["do_lower_case"] = lower
        tokenizer = BertTokenizerFast.from_pretrained(model_dir, **kwargs)
    else:
        raise ValueError(f"{model_dir}: no tokenizer.json, tokenizer_config.json or vocab.txt")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_dir}: the tokenizer is not a fast tokenizer; character offsets need one")
    backend = tokenizer.backend_tokenizer
    # The server tokenizes whole texts itself and windows them; the backend must neither truncate nor pad.
    backend.no_truncation()
    backend.no_padding()
    fast: PreTrainedTokenizerFast = tokenizer
    return fast


def check_vocabulary(tokenizer: PreTrainedTokenizerFast, model_vocab_size: int) -> None:
    """Refuse a tokenizer that cannot belong to the weights; a ValueError names the files and the field.

    Fewer tokens than embedding rows is fine (vocabularies are often padded to a multiple of 8); more would give
    ids the model has no embedding for. A tokenizer of special tokens only is what transformers builds from a
    tokenizer_config.json without tokenizer.json or vocab.txt: every word would be [UNK].
    """
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    if size <= len(tokenizer.all_special_ids):
        raise ValueError(
            f"the tokenizer has no vocabulary beyond its {size} special tokens: the checkpoint needs "
            "tokenizer.json or vocab.txt"
        )
    if size > model_vocab_size:
        raise ValueError(
            f"the tokenizer files (tokenizer.json or vocab.txt) hold {size} tokens but the model config's field "
            f"'vocab_size' (config.json or bert_config.json: embedding rows) is {model_vocab_size}: tokenizer and "
            "weights do not belong together"
        )


def _lower_case_from_checkpoint(model_dir: Path) -> bool | None:
    """do_lower_case from the classic head config, else guessed from the vocabulary (uncased vocabs lack capitals)."""
    head = model_dir / CLASSIC_HEAD_CONFIG
    if head.is_file():
        value = json.loads(head.read_text(encoding="utf-8")).get("do_lower_case")
        if isinstance(value, bool):
            return value
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return not any(token not in SPECIAL_TOKENS and token != token.lower() for token in vocab)


def word_aware(tokenizer: PreTrainedTokenizerFast) -> bool:
    """True when the tokenizer marks word continuations (WordPiece "##"), as the pipeline checks."""
    model = tokenizer.backend_tokenizer.model
    return bool(getattr(model, "continuing_subword_prefix", None))


def subword_flags(
    text: str,
    tokens: Sequence[str],
    offsets: Sequence[tuple[int, int]],
    unknown: Sequence[bool],
    word_aware: bool = True,
) -> list[bool]:
    """Whether each word piece continues the previous word.

    For WordPiece (``word_aware``: the tokenizer marks continuations with a prefix such as "##") a piece is a
    continuation when its token string and the text it covers differ in length; [UNK] pieces never are. Other
    tokenizers fall back to "no space before this piece". This is exactly the pipeline's rule, quirks included
    (e.g. a decomposed accent "e\\u0301" makes a piece look like a continuation), so results stay comparable.
    """
    flags = []
    for token, (start, end), is_unknown in zip(tokens, offsets, unknown, strict=True):
        if is_unknown:
            flags.append(False)
        elif word_aware:
            flags.append(len(token) != end - start)
        else:
            flags.append(start > 0 and " " not in text[start - 1 : start + 1])
    return flags


def encode_batch(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[WordPieces]:
    """Word pieces of all texts in one call to the Rust tokenizer (parallel, no Python per-text overhead)."""
    if not texts:
        return []
    encodings = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    unk_id = tokenizer.unk_token_id
    aware = word_aware(tokenizer)
    pieces = []
    for text, encoding in zip(texts, encodings, strict=True):
        ids = encoding.ids
        offsets = encoding.offsets
        flags = subword_flags(text, encoding.tokens, offsets, [i == unk_id for i in ids], aware)
        pieces.append(WordPieces(ids=ids, offsets=offsets, is_subword=flags))
    return pieces
