"""A private instance of the user's scripts (serve.sh, stop.sh, manage.py): free ports, state in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

from nertools.ports import free_ports
from nertools.torchserve import read_properties
from tests.support.paths import ROOT


def instance_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int], Path]:
    """The project's config.properties on free ports, and an environment that keeps serve.sh's state in tmp_path."""
    chosen = free_ports("inference", "management", "metrics", "grpc_inference_port", "grpc_management_port", "gateway")
    ports = {name: chosen[name] for name in ("inference", "management", "metrics")}
    properties = read_properties(ROOT / "config.properties")
    properties.update({f"{name}_address": f"http://127.0.0.1:{port}" for name, port in ports.items()})
    properties.update({name: str(chosen[name]) for name in ("grpc_inference_port", "grpc_management_port")})
    config_path = tmp_path / "config.properties"
    config_path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    # The developer's own gateway settings (a state dir, a port, keys) must not leak into this instance.
    env = {key: value for key, value in os.environ.items() if not key.startswith("NER_")}
    env.update(
        NER_TS_CONFIG=str(config_path),
        NER_MODEL_STORE=str(tmp_path / "store"),
        NER_STATE_DIR=str(tmp_path / "state"),
        LOG_LOCATION=str(tmp_path / "logs"),
        READY_TIMEOUT="180",
        NER_GATEWAY_PORT=str(chosen["gateway"]),
    )
    return env, ports, config_path
