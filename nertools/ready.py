"""Is a model able to serve? Exit 0 once it has a READY worker, 1 on timeout.

TorchServe's /ping answers Healthy seconds before any worker has loaded the model, so readiness here means what
a client needs: the management API lists at least one worker of the model (default version) as READY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from nertools.torchserve import DEFAULT_ADDRESSES, address, count_ready, loaded_models, read_properties

DEFAULT_MANAGEMENT = DEFAULT_ADDRESSES["management_address"]


def ready_workers(
    management_url: str, model: str, version: str | None = None, token: str | None = None, timeout: float = 5.0
) -> int:
    """Number of READY workers of ``model`` (its default version unless ``version``); 0 if unknown or down."""
    url = f"{management_url.rstrip('/')}/models/{model}" + (f"/{version}" if version else "")
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return count_ready(json.load(response))
    except (urllib.error.URLError, OSError, ValueError):  # ValueError: not JSON, or not a model description
        return 0


def wait_ready(
    management_url: str,
    model: str,
    timeout: float,
    version: str | None = None,
    token: str | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """Poll until a worker is READY; stops early (False) when ``alive()`` says the server process has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_workers(management_url, model, version, token) > 0:
            return True
        if not alive():
            return False
        time.sleep(0.25)
    return False


def pid_alive(pid_file: str) -> bool:
    """Whether the process whose id is in ``pid_file`` still runs (False once the file or the process is gone)."""
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def management_from_config(path: str | Path) -> str:
    """management_address of a TorchServe config.properties (TorchServe's default when the file has none)."""
    return address(read_properties(Path(path)), "management_address")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--management", default=None, help=f"management API (default {DEFAULT_MANAGEMENT})")
    parser.add_argument("--config", default=None, help="read management_address from this config.properties")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="model name, repeatable: all must be READY (default ner_model)",
    )
    parser.add_argument(
        "--loaded-models",
        action="store_true",
        help="wait for every model --config's load_models starts with (ner_model and its document lane)",
    )
    parser.add_argument("--version", default=None, help="a specific version (default: the default version)")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to wait for READY (default 0: check once)")
    parser.add_argument("--token", default=None, help="management key, when token authorization is on")
    parser.add_argument(
        "--pid-file",
        default=None,
        help="stop waiting (exit 1) as soon as the process named in this pid file is gone, e.g. "
        "TorchServe's $TMPDIR/.model_server.pid",
    )
    args = parser.parse_args(argv)
    if args.loaded_models and not args.config:
        parser.error("--loaded-models reads --config")
    models: list[str] = list(args.model or [])
    if args.config:
        try:
            properties = read_properties(Path(args.config))
        except OSError as err:
            print(f"error: cannot read {args.config}: {err.strerror}", file=sys.stderr)
            return 2
        args.management = args.management or address(properties, "management_address")
        if args.loaded_models:
            models += [name for name in loaded_models(properties) if name not in models]
    args.management = args.management or DEFAULT_MANAGEMENT
    models = models or ["ner_model"]
    pid_file = args.pid_file
    alive: Callable[[], bool] = (lambda: pid_alive(pid_file)) if pid_file else (lambda: True)
    deadline = time.monotonic() + max(args.timeout, 0.01)
    for model in models:
        left = max(deadline - time.monotonic(), 0.01)
        if not wait_ready(args.management, model, left, args.version, args.token, alive):
            reason = " (the server process has exited)" if not alive() else ""
            print(f"{model}: no READY worker at {args.management}{reason}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
