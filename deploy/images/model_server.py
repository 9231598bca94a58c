"""Entry point and health check of the model server image.

``model_server.py`` replaces itself (exec) with TorchServe's Java frontend, so the JVM is the container's PID 1:
SIGTERM from ``podman stop`` / ``docker stop`` / Kubernetes reaches it directly, its shutdown hook stops the
workers, and the container exits in about a second. (``torchserve --start --foreground`` would put a Python
process without a SIGTERM handler in between, which as PID 1 ignores the signal until the engine's SIGKILL.)
The command line is the one TorchServe 0.12's ``torchserve --start`` builds (ts/model_server.py).

``model_server.py --health``: exit 0 once the model has a READY worker (TorchServe's /ping says Healthy before any
worker has loaded the model), the image's HEALTHCHECK.

Environment: TS_CONFIG_FILE (default /opt/ner/config.properties), NER_MODEL (ner_model, for --health), TMPDIR
(/tmp: unpacked archives, worker sockets), LOG_LOCATION and METRICS_LOCATION (/tmp/logs).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_CONFIG = "/opt/ner/config.properties"
DEFAULT_MODEL_STORE = "/models"
LOG_CONFIG = "/opt/ner/log4j2.xml"
FRONTEND_CLASS = "org.pytorch.serve.ModelServer"


def java_command(
    ts_home: str, python: str, config: str, properties: Mapping[str, str], tmpdir: str, log_config: str
) -> list[str]:
    """TorchServe's frontend command line, as ``torchserve --start --ncs --ts-config CONFIG`` builds it."""
    cmd = [
        "java",
        f"-Dmodel_server_home={ts_home}",
        f"-Dlog4j.configurationFile=file://{log_config}",
        f"-Djava.io.tmpdir={tmpdir}",
    ]
    # vmargs of the config, minus a log configuration of its own (as torchserve does when --log-config is given).
    cmd += [arg for arg in properties.get("vmargs", "").split() if not arg.startswith("-Dlog4j.configurationFile=")]
    cmd += ["-cp", f".:{ts_home}/ts/frontend/*", FRONTEND_CLASS, "--python", python, "-f", config]
    cmd += ["-s", properties.get("model_store") or DEFAULT_MODEL_STORE, "-ncs"]
    return cmd


def run(environ: Mapping[str, str]) -> int:
    import ts

    from nertools.torchserve import read_properties

    config = environ.get("TS_CONFIG_FILE") or DEFAULT_CONFIG
    if not os.path.isfile(config):
        print(
            f"error: TorchServe configuration {config} not found (mount one there or set TS_CONFIG_FILE)",
            file=sys.stderr,
        )
        return 2
    properties = read_properties(Path(config))
    store = properties.get("model_store") or DEFAULT_MODEL_STORE
    if not os.path.isdir(store):
        print(f"error: model store {store} (model_store in {config}) is not a directory", file=sys.stderr)
        return 2
    tmpdir = environ.get("TMPDIR") or "/tmp"
    os.makedirs(environ.get("LOG_LOCATION") or os.path.join(tmpdir, "logs"), exist_ok=True)
    ts_home = os.path.dirname(os.path.dirname(os.path.realpath(ts.__file__)))
    cmd = java_command(ts_home, sys.executable, config, properties, tmpdir, LOG_CONFIG)
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)


def health(environ: Mapping[str, str]) -> int:
    from nertools.ready import management_from_config, ready_workers

    config = environ.get("TS_CONFIG_FILE") or DEFAULT_CONFIG
    management = management_from_config(config).replace("://0.0.0.0", "://127.0.0.1")
    model = environ.get("NER_MODEL") or "ner_model"
    count = ready_workers(management, model, timeout=3.0)
    print(f"{model}: {count} READY worker(s)")
    return 0 if count > 0 else 1


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["--health"]:
        return health(os.environ)
    if argv:
        print(
            "usage: model_server.py [--health]  (configuration: TS_CONFIG_FILE, a mounted config.properties)",
            file=sys.stderr,
        )
        return 2
    return run(os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
