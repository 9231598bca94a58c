"""model.py loads both checkpoint layouts without key renaming, and names the file and field when they disagree."""

import json
import shutil

import pytest
import torch

from model import BertTokenClassifier
from tests.tiny_models import LABELS


def test_hf_checkpoint_gives_the_same_logits_as_transformers(tiny_checkpoint):
    from transformers import BertForTokenClassification

    ours = BertTokenClassifier.from_checkpoint(tiny_checkpoint)
    reference = BertForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    ids = torch.tensor([[2, 40, 41, 42, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    with torch.inference_mode():
        assert torch.allclose(ours(ids, mask), reference(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    assert ours.id2label == dict(enumerate(LABELS))
    assert not ours.training


def test_classic_checkpoint_with_a_deeper_head_loads(classic_checkpoint):
    model = BertTokenClassifier.from_checkpoint(classic_checkpoint)
    linear = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(32, 100), (100, 50), (50, len(LABELS))]
    state = torch.load(classic_checkpoint / "pytorch_model.bin", weights_only=True)
    assert torch.equal(linear[1].weight, state["head.layers.1.weight"])
    assert model.id2label[3] == "B-PER"


def copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "ckpt")


def test_label_count_mismatch_names_the_files(classic_checkpoint, tmp_path):
    ckpt = copy(classic_checkpoint, tmp_path)
    (ckpt / "labels_file.txt").write_text("O\nB-X\n")
    with pytest.raises(ValueError, match=r"bert_for_token_classification_config.json: field 'num_labels'.*labels_file.txt"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_head_shape_mismatch_names_the_field(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-X", "2": "I-X"}
    config.pop("label2id", None)
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.safetensors: head layer classifier.weight.*id2label"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_vocab_size_mismatch_is_reported(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    config["vocab_size"] += 5
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.safetensors: word embeddings have \d+ rows but the config's vocab_size"):
        BertTokenClassifier.from_checkpoint(ckpt)


def test_missing_labels_and_unknown_layout_are_reported(tiny_checkpoint, tmp_path):
    ckpt = copy(tiny_checkpoint, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    del config["id2label"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: field 'id2label' is missing"):
        BertTokenClassifier.from_checkpoint(ckpt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        BertTokenClassifier.from_checkpoint(empty)
