"""nertools/archive.py's pure parts: which files go in, and config overrides; and one real archive's contents."""

import logging
import shutil
import zipfile

import torch
import yaml

from nertools.archive import checkpoint_files, main, write_config_override
from nertools.paths import MODEL_CONFIG

# What a `git clone` of a hub model brings next to the weights that serving uses.
HUB_EXTRAS = ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "README.md", ".gitattributes"]


def test_config_override_keeps_the_rest(tmp_path):
    target = tmp_path / "cfg.yaml"
    write_config_override(MODEL_CONFIG, target, {"quantization": "int8_dynamic"})
    original = yaml.safe_load(MODEL_CONFIG.read_text())
    written = yaml.safe_load(target.read_text())
    assert written["handler"]["quantization"] == "int8_dynamic"
    assert {k: v for k, v in written["handler"].items() if k != "quantization"} == original["handler"]
    assert written["responseTimeout"] == original["responseTimeout"]


def hub_clone(tiny_checkpoint, tmp_path):
    clone = shutil.copytree(tiny_checkpoint, tmp_path / "bert-ner")
    for name in HUB_EXTRAS:
        (clone / name).write_bytes(b"not read when serving")
    torch.save({"classifier.weight": torch.zeros(1, 1)}, clone / "pytorch_model.bin")
    (clone / "onnx").mkdir()
    (clone / "onnx" / "model.onnx").write_bytes(b"")
    return clone


def test_only_the_files_serving_reads_are_packed(tiny_checkpoint, tmp_path):
    weights, extras, left_out = checkpoint_files(hub_clone(tiny_checkpoint, tmp_path))
    assert weights.name == "model.safetensors"  # model.py's choice over pytorch_model.bin
    assert [p.name for p in extras] == ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    assert sorted(p.name for p in left_out) == sorted([*HUB_EXTRAS, "onnx"])


def test_classic_checkpoint_files(classic_checkpoint):
    weights, extras, left_out = checkpoint_files(classic_checkpoint)
    assert weights.name == "pytorch_model.bin"
    assert [p.name for p in extras] == [
        "bert_config.json",
        "bert_for_token_classification_config.json",
        "labels_file.txt",
        "vocab.txt",
    ]
    assert left_out == []


def test_the_archive_holds_only_what_serving_reads(tiny_checkpoint, tmp_path, caplog):
    store = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="archive"):
        assert main(["--model-dir", str(hub_clone(tiny_checkpoint, tmp_path)), "--export-path", str(store)]) == 0
    with zipfile.ZipFile(store / "ner_model.mar") as mar:
        top = {name.split("/")[0] for name in mar.namelist()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= top
    assert not top & {*HUB_EXTRAS, "onnx"}
    assert (
        "left out (not read when serving): .gitattributes, README.md, flax_model.msgpack, onnx/, pytorch_model.bin, "
        "rust_model.ot, tf_model.h5" in caplog.messages
    )
    assert [p.name for p in store.iterdir()] == ["ner_model.mar"]


def test_validation_sees_only_the_packed_files(tiny_checkpoint, tmp_path, monkeypatch, caplog):
    # Were the tokenizer's vocabulary left out, the archive would serve every word as [UNK]: refuse to build it.
    monkeypatch.setattr("nertools.archive.TOKENIZER_FILES", ("config.json", "tokenizer_config.json"))
    store = tmp_path / "store"
    assert main(["--model-dir", str(tiny_checkpoint), "--export-path", str(store)]) == 2
    assert any("the tokenizer has no vocabulary beyond its 5 special tokens" in m for m in caplog.messages)
    assert list(store.iterdir()) == []


def test_the_archiver_stages_in_a_private_temporary_directory(tiny_checkpoint, tmp_path, monkeypatch):
    """torch-model-archiver copies into tempfile.gettempdir()/<model name>, removing what is there: an archive must
    not touch another one's (or a user's) /tmp/ner_model."""
    shared = tmp_path / "shared_tmp"
    (shared / "ner_model").mkdir(parents=True)
    (shared / "ner_model" / "another_build.txt").write_text("in use")
    monkeypatch.setenv("TMPDIR", str(shared))
    store = tmp_path / "store"
    assert main(["--model-dir", str(tiny_checkpoint), "--export-path", str(store)]) == 0
    assert (shared / "ner_model" / "another_build.txt").read_text() == "in use"
    assert [p.name for p in store.iterdir()] == ["ner_model.mar"]
