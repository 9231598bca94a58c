"""The label legend: from the settings, a checkpoint read as the model reads it, or the answers seen so far."""

from __future__ import annotations

import json

import pytest

from gateway.labels import MAX_OBSERVED, LabelRegistry, checkpoint_labels, entity_types
from gateway.settings import SettingsError
from nerserve.checkpoint import CLASSIC_HEAD_CONFIG, CLASSIC_LABELS, HF_CONFIG
from tests.support.gateway_harness import AUTH


def hf_checkpoint(directory, id2label):
    directory.mkdir()
    (directory / HF_CONFIG).write_text(json.dumps({"id2label": id2label}))
    return directory


def classic_checkpoint(directory, labels_text):
    directory.mkdir()
    (directory / CLASSIC_HEAD_CONFIG).write_text("{}")  # its presence is what makes the layout classic
    (directory / CLASSIC_LABELS).write_text(labels_text)
    return directory


def test_labels_from_settings_checkpoint_and_predictions(make_client, tmp_path):
    assert make_client(labels=["PER", "ORG"]).get("/v1/labels", headers=AUTH).json() == {
        "labels": ["PER", "ORG"],
        "source": "settings",
    }
    hf = hf_checkpoint(
        tmp_path / "hf",
        {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC", "5": "B-MISC"},
    )
    assert make_client(model_dir=hf).get("/v1/labels", headers=AUTH).json() == {
        "labels": ["PER", "LOC", "MISC"],
        "source": "checkpoint",
    }
    classic = classic_checkpoint(tmp_path / "classic", "O\nB-DRUG\nI-DRUG\nB-CITY\nI-CITY\n")
    assert make_client(model_dir=classic).get("/v1/labels", headers=AUTH).json()["labels"] == ["DRUG", "CITY"]
    client = make_client()
    assert client.get("/v1/labels", headers=AUTH).json() == {"labels": [], "source": "observed"}
    with client.websocket_connect("/ws/entities", headers=dict(AUTH)) as ws:
        ws.send_text("Hello Rome")
        ws.receive_json()
    assert client.get("/v1/labels", headers=AUTH).json()["labels"] == ["PER"]
    assert client.get("/v1/labels").status_code == 401


def test_a_model_dir_without_labels_fails_at_start(make_client, tmp_path):
    with pytest.raises(SettingsError, match=f"NER_GATEWAY_MODEL_DIR: .*no {HF_CONFIG}.*no {CLASSIC_HEAD_CONFIG}"):
        make_client(model_dir=tmp_path)


def test_checkpoint_labels_are_in_class_id_order(tmp_path):
    """Ids sort as numbers: "10" comes after "9", not after "1"."""
    id2label = {str(i): "O" for i in range(11)} | {"1": "B-PER", "2": "B-LOC", "10": "B-MISC"}
    assert checkpoint_labels(hf_checkpoint(tmp_path / "hf", id2label)) == ["PER", "LOC", "MISC"]


def test_a_classic_checkpoint_beside_a_config_json_reads_labels_file(tmp_path):
    """The model serves labels_file.txt in this case (nerserve.checkpoint.detect_layout); so must the legend."""
    classic = classic_checkpoint(tmp_path / "classic", "O\nB-DRUG\nI-DRUG\n")
    (classic / HF_CONFIG).write_text(json.dumps({"id2label": {"0": "O", "1": "B-PER"}}))
    assert checkpoint_labels(classic) == ["DRUG"]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda d: classic_checkpoint(d, "O\n\nB-PER\n"), "line 2 is blank"),
        (lambda d: hf_checkpoint(d, {"0": "O", "2": "B-PER"}), "label ids must be 0..1"),
        (lambda d: hf_checkpoint(d, {}), "id2label"),
    ],
    ids=["blank line in labels_file.txt", "gap in id2label", "no id2label"],
)
def test_a_checkpoint_the_model_would_refuse_is_a_settings_error(tmp_path, build, message):
    with pytest.raises(SettingsError, match="NER_GATEWAY_MODEL_DIR") as error:
        checkpoint_labels(build(tmp_path / "checkpoint"))
    assert message in str(error.value)


def test_entity_types_drop_tag_prefixes_and_outside():
    assert entity_types(["O", "B-PER", "I-PER", "E-LOC", "S-LOC", "U-ORG", "L-ORG", "DATE"]) == [
        "PER",
        "LOC",
        "ORG",
        "DATE",
    ]


def test_observed_labels_skip_other_segments_and_stop_at_the_bound():
    registry = LabelRegistry(["PER"], "checkpoint")
    registry.observe({"segments": [{"label": "other"}, {"label": "PER"}, {"label": "CITY"}, "not an item"]})
    registry.observe({"entities": [{"label": "DRUG"}, {"label": 5}]})
    assert registry.snapshot() == {"labels": ["PER", "CITY", "DRUG"], "source": "checkpoint"}
    registry.observe({"entities": [{"label": f"L{i}"} for i in range(2 * MAX_OBSERVED)]})
    assert len(registry.snapshot()["labels"]) == MAX_OBSERVED
