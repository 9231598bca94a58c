"""scripts/archive.py's pure parts: which files go in, and config overrides."""

import yaml

from scripts.archive import ROOT, checkpoint_files, write_config_override


def test_config_override_keeps_the_rest(tmp_path):
    target = tmp_path / "cfg.yaml"
    write_config_override(ROOT / "handler" / "model_config.yaml", target, {"quantization": "int8_dynamic"})
    original = yaml.safe_load((ROOT / "handler" / "model_config.yaml").read_text())
    written = yaml.safe_load(target.read_text())
    assert written["handler"]["quantization"] == "int8_dynamic"
    assert {k: v for k, v in written["handler"].items() if k != "quantization"} == original["handler"]
    assert written["responseTimeout"] == original["responseTimeout"]


def test_checkpoint_files_split_weights_from_the_rest(tiny_checkpoint):
    weights, extras = checkpoint_files(tiny_checkpoint)
    assert weights.name == "model.safetensors"
    names = {p.name for p in extras}
    assert {"config.json", "vocab.txt", "tokenizer_config.json"} <= names
    assert weights.name not in names
