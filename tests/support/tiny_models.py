"""Tiny random BERT checkpoints built on the fly, in both layouts the server reads (no download)."""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path

import torch

# A label set that is not CoNLL's, to show nothing assumes it.
LABELS = ["O", "B-DRUG", "I-DRUG", "B-PER", "I-PER", "B-CITY", "I-CITY"]
WORDS = (
    "the a an and of in on at to is was met with from for by new york paris berlin angela merkel tim cook "
    "café zürich josé naïve über straße doctor aspirin ibuprofen john smith mary london rome "
    "hello world said today city company"
).split()
CJK = "東京北京中国人"


def build_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation) + list(CJK)
    # Uncased vocab: accents are stripped by the tokenizer, so only their base letters are needed.
    words = sorted({w for w in WORDS if w.isascii()})
    return specials + chars + ["##" + c for c in string.ascii_lowercase + string.digits] + words


def build_hf_checkpoint(directory: Path, seed: int = 0, labels: list[str] = LABELS, max_positions: int = 64) -> Path:
    """save_pretrained layout: config.json with id2label, model.safetensors, tokenizer files."""
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(directory, do_lower_case=True, model_max_length=max_positions)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=max_positions,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForTokenClassification(config)
    with torch.no_grad():
        # Random heads give near-uniform scores; spread the logits so labels vary and argmax ties are unlikely.
        model.classifier.weight.mul_(40.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_classic_checkpoint(
    directory: Path, seed: int = 0, labels: list[str] = LABELS, layer_sizes: tuple[int, ...] = (100, 50)
) -> Path:
    """The classic layout: bert_config.json + head config + labels_file.txt + vocab.txt + one weights file.

    The head's layers are named ``head.layers.N`` here, unlike the module's own names, as a checkpoint from
    another code base would be.
    """
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    bert_config = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
    }
    (directory / "bert_config.json").write_text(json.dumps(bert_config), encoding="utf-8")
    head_config = {"num_labels": len(labels), "classification_layer_sizes": list(layer_sizes), "do_lower_case": True}
    (directory / "bert_for_token_classification_config.json").write_text(json.dumps(head_config), encoding="utf-8")
    (directory / "labels_file.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    encoder = BertModel(BertConfig(**bert_config))
    state = {"bert." + k: v for k, v in encoder.state_dict().items()}
    sizes = [32, *layer_sizes, len(labels)]
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layer = torch.nn.Linear(n_in, n_out)
        state[f"head.layers.{i}.weight"] = layer.weight.detach() * 3
        state[f"head.layers.{i}.bias"] = layer.bias.detach()
    torch.save(state, directory / "pytorch_model.bin")
    return directory
