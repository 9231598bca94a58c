"""Checkpoint layout detection and label reading, shared by model.py and the gateway (no torch needed)."""

import json

import pytest

from nerserve.checkpoint import (
    CLASSIC_HEAD_CONFIG,
    CLASSIC_LABELS,
    HF_CONFIG,
    CheckpointError,
    Layout,
    detect_layout,
    labels_from_hf_config,
    read_json,
    read_labels,
)


def write(directory, name, content):
    (directory / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


def test_the_classic_head_config_decides_even_beside_a_config_json(tmp_path):
    """A classic checkpoint that also carries a config.json is classic, and its labels come from labels_file.txt."""
    write(tmp_path, HF_CONFIG, {"id2label": {"0": "O", "1": "B-MISC"}})
    assert detect_layout(tmp_path) is Layout.HUGGING_FACE
    assert read_labels(tmp_path) == ["O", "B-MISC"]
    write(tmp_path, CLASSIC_HEAD_CONFIG, {"num_labels": 3})
    write(tmp_path, CLASSIC_LABELS, "O\nB-DRUG\nI-DRUG\n")
    assert detect_layout(tmp_path) is Layout.CLASSIC
    assert read_labels(tmp_path) == ["O", "B-DRUG", "I-DRUG"]


def test_a_directory_of_neither_layout_names_both_config_files(tmp_path):
    with pytest.raises(CheckpointError, match=f"no {HF_CONFIG} .* and no {CLASSIC_HEAD_CONFIG}"):
        detect_layout(tmp_path)


def test_a_blank_line_between_labels_is_refused_and_trailing_ones_ignored(tmp_path):
    write(tmp_path, CLASSIC_HEAD_CONFIG, {})
    write(tmp_path, CLASSIC_LABELS, "O\nB-X\n\n  \n")
    assert read_labels(tmp_path) == ["O", "B-X"]
    write(tmp_path, CLASSIC_LABELS, "O\n\nB-X\n")
    with pytest.raises(CheckpointError, match=f"{CLASSIC_LABELS}: line 2 is blank"):
        read_labels(tmp_path)
    write(tmp_path, CLASSIC_LABELS, "\n \n")
    with pytest.raises(CheckpointError, match="no labels"):
        read_labels(tmp_path)


def test_hugging_face_labels_are_in_class_id_order_with_ids_0_to_n_minus_1():
    assert labels_from_hf_config({"id2label": {"1": "B-X", "0": "O", "2": "I-X"}}) == ["O", "B-X", "I-X"]
    with pytest.raises(CheckpointError, match=r"label ids must be 0..1, got \[0, 2\]"):
        labels_from_hf_config({"id2label": {"0": "O", "2": "B-X"}})
    with pytest.raises(CheckpointError, match="not an integer"):
        labels_from_hf_config({"id2label": {"zero": "O"}})
    with pytest.raises(CheckpointError, match="'id2label' is missing"):
        labels_from_hf_config({})


def test_unreadable_json_names_the_file(tmp_path):
    write(tmp_path, HF_CONFIG, "{not json")
    with pytest.raises(CheckpointError, match=f"{HF_CONFIG}: cannot read JSON"):
        read_json(tmp_path / HF_CONFIG)
    write(tmp_path, HF_CONFIG, "[1]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        read_json(tmp_path / HF_CONFIG)
    assert issubclass(CheckpointError, ValueError)
