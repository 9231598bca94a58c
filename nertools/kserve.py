"""Lay out what KServe's TorchServe runtime downloads from an InferenceService's ``storageUri``.

KServe's ``kserve-torchserve`` runtime starts ``torchserve --start --model-store=/mnt/models/model-store
--ts-config=/mnt/models/config/config.properties`` on the storage it downloaded to /mnt/models, so the storage holds::

    config/config.properties   TorchServe's configuration (below)
    config/metrics.yaml        the handler's metrics (handler/metrics.yaml), named by metrics_config
    model-store/ner_model.mar  the archive (scripts/archive.py)

The configuration is the project's config.properties made fit for KServe: inference and management on port 8085
(KServe's model server in the pod owns 8080; its TorchServe wrapper reads both addresses), metrics on 8082 (the
runtime's ``prometheus.kserve.io/port``), the model loaded by ``model_snapshot`` (KServe's wrapper reads the model
names there) with the project's workers and dynamic batching for it, token authorization off (KServe's ingress is
the door: put authentication there), the model API on (the wrapper registers models through it), no per-model
pip installs (the image carries the pinned packages), and ``enable_envvars_config=false``: the runtime sets
``TS_SERVICE_ENVELOPE=kserve|kservev2``, which with environment configuration on would switch on TorchServe's
KServe envelopes, and those serve only the first request of each batch (pytorch/serve#2158, #1302). The handler
speaks KServe v1 and v2 itself (nerserve.bodies), so no envelope is needed.

    python -m nertools.kserve --mar model_store/ner_model.mar --output kserve_model/
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nertools.paths import HANDLER_DIR, MODEL_STORE, TS_CONFIG
from nertools.torchserve import read_properties, served_batching

MOUNT_PATH = "/mnt/models"  # where KServe's storage initializer puts what it downloaded from storageUri
INFERENCE_PORT = 8085  # inference and management: KServe's own server listens on 8080 in the same pod
METRICS_PORT = 8082  # the kserve-torchserve runtime's prometheus.kserve.io/port
GRPC_PORTS = (7070, 7071)  # TorchServe's defaults, written out so that a reader sees every port the pod binds
# Copied from the project's config.properties: limits and JVM options that hold wherever TorchServe runs.
COPIED_KEYS = ("max_request_size", "max_response_size", "vmargs")


class LayoutError(Exception):
    """A problem with the inputs, reported on the command line without a traceback."""


def archive_manifest(mar: Path) -> dict[str, Any]:
    """MAR-INF/MANIFEST.json of a .mar (a zip file), for the model's name and version."""
    try:
        with zipfile.ZipFile(mar) as archive:
            manifest: dict[str, Any] = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise LayoutError(f"{mar} is not a model archive with MAR-INF/MANIFEST.json ({err})") from None
    return manifest


def snapshot(properties: dict[str, str], model_name: str, version: str, mar_name: str) -> dict[str, Any]:
    """The ``model_snapshot`` value: the model with the project's workers and batching (config.properties'
    ``models`` entry for the model: the archive's version when listed, else its default or first version)."""
    try:
        batching = served_batching(properties, model_name, version)
    except ValueError as err:
        raise LayoutError(f"no batching for the KServe model: {err}") from None
    entry = {"defaultVersion": True, "marName": mar_name, **batching}
    return {"name": "startup.cfg", "modelCount": 1, "models": {model_name: {version: entry}}}


def render_config(properties: dict[str, str], model_snapshot: dict[str, Any], mount_path: str) -> str:
    """config/config.properties for KServe. Every value sits on one line: KServe's TorchServe wrapper reads the
    file line by line, not as a Java properties file."""
    lines = [
        "# TorchServe on KServe's TorchServe runtime; written by scripts/kserve_layout.py (nertools/kserve.py).",
        f"inference_address=http://0.0.0.0:{INFERENCE_PORT}",
        f"management_address=http://0.0.0.0:{INFERENCE_PORT}",
        f"metrics_address=http://0.0.0.0:{METRICS_PORT}",
        f"grpc_inference_port={GRPC_PORTS[0]}",
        f"grpc_management_port={GRPC_PORTS[1]}",
        f"model_store={mount_path}/model-store",
        "model_snapshot=" + json.dumps(model_snapshot, separators=(",", ":")),
        "metrics_mode=prometheus",
        "enable_metrics_api=true",
        f"metrics_config={mount_path}/config/metrics.yaml",
        "# KServe's ingress is the door (authenticate there); its model server registers models over this API.",
        "disable_token_authorization=true",
        "enable_model_api=true",
        "# Off: KServe sets TS_SERVICE_ENVELOPE, and TorchServe's KServe envelopes serve only the first request of",
        "# each batch (pytorch/serve#2158, #1302). The handler reads KServe v1 and v2 bodies itself.",
        "enable_envvars_config=false",
        "install_py_dep_per_model=false",
    ]
    lines += [f"{key}={properties[key]}" for key in COPIED_KEYS if properties.get(key)]
    return "\n".join(lines) + "\n"


def build_layout(
    mar: Path,
    output: Path,
    config: Path = TS_CONFIG,
    metrics: Path = HANDLER_DIR / "metrics.yaml",
    mount_path: str = MOUNT_PATH,
    model_name: str | None = None,
) -> list[Path]:
    """Write the layout into ``output`` (absent or empty); returns the files written."""
    if not mar.is_file():
        raise LayoutError(f"{mar}: no such archive (build one with scripts/archive.py)")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LayoutError(f"{output} exists and is not an empty directory")
    if not mount_path.startswith("/"):
        raise LayoutError(f"--mount-path must be absolute, got {mount_path!r}")
    model = archive_manifest(mar).get("model", {})
    name = model_name or str(model.get("modelName") or "ner_model")
    version = str(model.get("modelVersion") or "1.0")
    mar_name = f"{name}.mar"
    try:
        properties = read_properties(config)
    except OSError as err:
        raise LayoutError(f"cannot read {config}: {err.strerror}") from None
    text = render_config(properties, snapshot(properties, name, version, mar_name), mount_path.rstrip("/") or "/")
    (output / "config").mkdir(parents=True, exist_ok=True)
    (output / "model-store").mkdir()
    written = [
        output / "config" / "config.properties",
        output / "config" / "metrics.yaml",
        output / "model-store" / mar_name,
    ]
    written[0].write_text(text, encoding="utf-8")
    shutil.copyfile(metrics, written[1])
    shutil.copyfile(mar, written[2])
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kserve_layout.py",
        description="Write the directory to upload as an InferenceService's storageUri (KServe's TorchServe "
        "runtime): config/config.properties, config/metrics.yaml and model-store/NAME.mar. docs/KSERVE.md.",
    )
    parser.add_argument(
        "--mar", type=Path, default=MODEL_STORE / "ner_model.mar", help="the archive [model_store/ner_model.mar]"
    )
    parser.add_argument("--output", type=Path, required=True, help="the directory to write (absent or empty)")
    parser.add_argument(
        "--config",
        type=Path,
        default=TS_CONFIG,
        help="where workers, batching and size limits come from [config.properties]",
    )
    parser.add_argument(
        "--mount-path",
        default=MOUNT_PATH,
        help=f"where the runtime mounts the storage, for the paths in the configuration [{MOUNT_PATH}]",
    )
    parser.add_argument("--name", default=None, help="model name [the archive's, normally ner_model]")
    args = parser.parse_args(argv)
    try:
        written = build_layout(args.mar, args.output, args.config, mount_path=args.mount_path, model_name=args.name)
    except LayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"upload {args.output}/ as the InferenceService's storageUri (e.g. deploy/kserve/), see docs/KSERVE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
