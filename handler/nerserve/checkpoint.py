"""The two checkpoint layouts this project serves, and their labels: one reader for model.py and the gateway.

Dependency-free (standard library only): the gateway reads a checkpoint's labels without importing torch.

* **Hugging Face** (``save_pretrained`` of ``BertForTokenClassification``): ``config.json`` with ``id2label``.
* **Classic** (a BERT encoder with a deeper head): ``bert_config.json``, ``bert_for_token_classification_config.json``
  and ``labels_file.txt`` (one label per line, line number = class id; trailing blank lines are ignored, a blank
  line in between is an error).

A directory holding both the classic head config and a ``config.json`` is classic: the head config is what only
a classic checkpoint has (a cloned repository may carry a ``config.json`` beside it).
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

HF_CONFIG = "config.json"
CLASSIC_BERT_CONFIG = "bert_config.json"
CLASSIC_HEAD_CONFIG = "bert_for_token_classification_config.json"
CLASSIC_LABELS = "labels_file.txt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be served; the message names the file and field at fault."""


class Layout(enum.Enum):
    HUGGING_FACE = "hugging_face"
    CLASSIC = "classic"


def detect_layout(directory: Path) -> Layout:
    """The layout of ``directory``; neither is an error naming both config files."""
    if (directory / CLASSIC_HEAD_CONFIG).is_file():
        return Layout.CLASSIC
    if (directory / HF_CONFIG).is_file():
        return Layout.HUGGING_FACE
    raise CheckpointError(
        f"{directory}: no {HF_CONFIG} (Hugging Face layout) and no {CLASSIC_HEAD_CONFIG} (classic layout)"
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path.name}: cannot read JSON ({err})") from err
    if not isinstance(value, dict):
        raise CheckpointError(f"{path.name}: expected a JSON object")
    return value


def read_labels(directory: Path) -> list[str]:
    """The labels of a checkpoint in class-id order (``labels[i]`` is class ``i``), from either layout."""
    if detect_layout(directory) is Layout.CLASSIC:
        return read_labels_file(directory / CLASSIC_LABELS)
    return labels_from_hf_config(read_json(directory / HF_CONFIG))


def labels_from_hf_config(config: dict[str, Any]) -> list[str]:
    """``config.json``'s ``id2label`` as a list; ids must be exactly 0..n-1."""
    raw = config.get("id2label")
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{HF_CONFIG}: field 'id2label' is missing; the labels must come from the checkpoint")
    try:
        id2label = {int(key): str(value) for key, value in raw.items()}
    except ValueError:
        raise CheckpointError(f"{HF_CONFIG}: field 'id2label' has a key that is not an integer") from None
    check_label_ids(id2label, f"{HF_CONFIG}: field 'id2label'")
    return [id2label[i] for i in range(len(id2label))]


def read_labels_file(path: Path) -> list[str]:
    """One label per line, line number = class id. A blank line in between would shift every later id: refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CheckpointError(f"{path.name}: cannot read ({err})") from err
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise CheckpointError(f"{path.name}: no labels (one label per line)")
    if "" in labels:
        raise CheckpointError(
            f"{path.name}: line {labels.index('') + 1} is blank; every line up to the last label is a class id"
        )
    return labels


def check_label_ids(id2label: dict[int, str], where: str) -> None:
    if sorted(id2label) != list(range(len(id2label))):
        raise CheckpointError(f"{where}: label ids must be 0..{len(id2label) - 1}, got {sorted(id2label)}")
