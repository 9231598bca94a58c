"""The entity labels of the served model, for the demo page's legend (``GET /v1/labels``).

TorchServe does not expose a model's labels, so they come from, in order: the ``labels`` setting; the checkpoint
directory in ``model_dir``, read as the model reads it (``nerserve.checkpoint.read_labels``: either layout; what
``scripts/gateway.sh`` points at by default); and labels seen in predictions that went through the gateway,
appended as they appear. The page gives a colour to any label, listed or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gateway.settings import GatewaySettings, SettingsError
from nerserve.checkpoint import CheckpointError, read_labels
from nerserve.protocol import OTHER_SEGMENT, OUTSIDE

TAG_PREFIXES = ("B-", "I-", "E-", "S-", "L-", "U-")  # IOB2, BIOES and BILOU tags
MAX_OBSERVED = 256  # a misbehaving model cannot grow the registry without bound


def entity_types(tags: Iterable[str]) -> list[str]:
    """``["O", "B-PER", "I-PER", "B-LOC"]`` -> ``["PER", "LOC"]``, in first-seen order."""
    types: list[str] = []
    for tag in tags:
        kind = tag[2:] if tag.startswith(TAG_PREFIXES) else tag
        if kind and kind != OUTSIDE and kind not in types:
            types.append(kind)
    return types


def checkpoint_labels(model_dir: Path) -> list[str]:
    """Entity types of a checkpoint directory in either layout the project serves, in class-id order."""
    try:
        return entity_types(read_labels(model_dir))
    except CheckpointError as err:
        # Some messages name the directory, others only the file in it.
        where = "" if str(model_dir) in str(err) else f"{model_dir}/"
        raise SettingsError(f"NER_GATEWAY_MODEL_DIR: {where}{err}") from None


class LabelRegistry:
    def __init__(self, configured: list[str], source: str) -> None:
        self._labels = list(configured)
        self._source = source

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> LabelRegistry:
        if settings.labels:
            return cls(entity_types(settings.labels), "settings")
        if settings.model_dir is not None:
            return cls(checkpoint_labels(settings.model_dir), "checkpoint")
        return cls([], "observed")

    def observe(self, body: Mapping[str, Any]) -> None:
        """Add labels of a TorchServe answer that are not known yet."""
        for key in ("entities", "segments"):
            for item in body.get(key) or ():
                label = item.get("label") if isinstance(item, Mapping) else None
                if (
                    isinstance(label, str)
                    and label != OTHER_SEGMENT
                    and label not in self._labels
                    and len(self._labels) < MAX_OBSERVED
                ):
                    self._labels.append(label)

    def snapshot(self) -> dict[str, Any]:
        return {"labels": list(self._labels), "source": self._source}
