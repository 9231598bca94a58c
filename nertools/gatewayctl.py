"""The steps of scripts/gateway.sh that speak HTTP or make a secret, as commands the script runs::

    python -m nertools.gatewayctl health URL       exit 0 when URL/health answers 2xx, else 1
    python -m nertools.gatewayctl ready URL        print URL/ready's status line (gateway.sh status)
    python -m nertools.gatewayctl create-key FILE  write a new local API key to FILE (mode 600) unless it holds one
    python -m nertools.gatewayctl checkpoint DIR   exit 0 when DIR holds a checkpoint in a layout served, else 1

Standard library only (and nerserve.checkpoint, itself standard library only): gateway.sh runs them with the
project's Python before the gateway is up.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerserve.checkpoint import CheckpointError, detect_layout

KEY_PREFIX = "local."


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url``/health answers with a 2xx status within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout):
            return True
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors; ValueError: not a URL
        return False


def ready_line(url: str, timeout: float = 10.0) -> str:
    """``/ready: STATUS (REASON)`` from ``url``/ready, whose 503 body says why the gateway is not ready."""
    body: Any
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ready", timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        try:
            body = json.load(err)
        except ValueError:
            body = {"status": f"HTTP {err.code}"}
    except (OSError, ValueError) as err:
        body = {"status": f"no answer ({err})"}
    if not isinstance(body, dict):
        body = {"status": "an answer that is not a JSON object"}
    reason = body.get("reason")
    return f"/ready: {body.get('status')}" + (f" ({reason})" if reason else "")


def create_key(path: Path) -> bool:
    """Write a new random API key to ``path``, readable by its owner only, unless it already holds one.

    Returns whether a key was created."""
    if path.is_file() and path.stat().st_size > 0:
        return False
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an empty file left by someone else keeps its mode otherwise
        handle.write(KEY_PREFIX + secrets.token_urlsafe(32) + "\n")
    return True


def has_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds a checkpoint in a layout this project serves (nerserve.checkpoint decides)."""
    if not directory.is_dir():
        return False
    try:
        detect_layout(directory)
    except CheckpointError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nertools.gatewayctl",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    health = commands.add_parser("health", help="exit 0 when URL/health answers 2xx within 2 s, else 1")
    health.add_argument("url", help="the gateway's base URL, e.g. http://127.0.0.1:8000")
    ready = commands.add_parser("ready", help="print URL/ready's status and reason")
    ready.add_argument("url", help="the gateway's base URL")
    key = commands.add_parser("create-key", help="write a new API key to FILE (mode 600) unless it holds one")
    key.add_argument("file", type=Path)
    checkpoint = commands.add_parser("checkpoint", help="exit 0 when DIR holds a checkpoint in a served layout")
    checkpoint.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "checkpoint":
        return 0 if has_checkpoint(args.directory) else 1
    if args.command == "health":
        return 0 if healthy(args.url) else 1
    if args.command == "ready":
        print(ready_line(args.url))
        return 0
    try:
        created = create_key(args.file)
    except OSError as err:
        print(f"error: cannot write {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    if created:
        print(f"created a local API key in {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
