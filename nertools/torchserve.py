"""What this project reads from TorchServe, in one place: ``config.properties``, model descriptions, error bodies.

Standard library only, so the gateway and the shell scripts use it without torch. The shell scripts read the
configuration through the command line rather than parse it themselves::

    python -m nertools.torchserve get inference_address [--config config.properties] [--default URL]
    python -m nertools.torchserve check-free [--config config.properties] [KEY ...]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ADDRESSES = {
    "inference_address": "http://127.0.0.1:8080",
    "management_address": "http://127.0.0.1:8081",
    "metrics_address": "http://127.0.0.1:8082",
}
# The settings of a models= entry that say how a model is served (workers and dynamic batching).
BATCH_KEYS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties file as TorchServe reads it: ``key=value``, ``key = value`` or ``key: value``; ``#`` and
    ``!`` start comments; a line ending in a backslash continues on the next; the last occurrence of a key wins."""
    values: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        if key:
            values[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        if key:
            values[key] = value
    return values


def _split_property(line: str) -> tuple[str, str]:
    separators = [i for i in (line.find("="), line.find(":")) if i >= 0]
    if not separators:
        return line.strip(), ""
    cut = min(separators)
    return line[:cut].strip(), line[cut + 1 :].strip()


def read_properties(path: Path) -> dict[str, str]:
    return parse_properties(Path(path).read_text(encoding="utf-8"))


def address(properties: dict[str, str], key: str) -> str:
    """One of the three listening addresses, TorchServe's default when the file does not set it."""
    return properties.get(key) or DEFAULT_ADDRESSES[key]


def in_use(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port (its scheme's port when it has none)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} is not an address with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def model_versions(properties: dict[str, str], model: str) -> dict[str, dict[str, Any]]:
    """The ``models=`` entry of ``model``: version -> its settings (batchSize, maxBatchDelay, minWorkers, ...).

    Raises ValueError when the configuration has no such entry."""
    try:
        versions = json.loads(properties["models"])[model]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"the configuration has no models={{{model!r}: ...}} entry") from None
    if not isinstance(versions, dict) or not versions or not all(isinstance(v, dict) for v in versions.values()):
        raise ValueError(f"the models entry of {model!r} lists no version")
    return versions


def served_batching(properties: dict[str, str], model: str, version: str | None = None) -> dict[str, Any]:
    """``model``'s workers and batching (``BATCH_KEYS``) from its ``models=`` entry: ``version``'s when listed, else
    the default version's, else the first listed. Raises ValueError when the entry or any of the keys is missing."""
    versions = model_versions(properties, model)
    default = next((v for v in versions.values() if v.get("defaultVersion")), next(iter(versions.values())))
    served = versions.get(version, default) if version is not None else default
    missing = [key for key in BATCH_KEYS if key not in served]
    if missing:
        raise ValueError(f"the models entry of {model!r} does not set {missing}")
    return {key: served[key] for key in BATCH_KEYS}


def loaded_models(properties: dict[str, str]) -> list[str]:
    """The model names ``load_models`` starts TorchServe with (``name=file.mar`` entries; a bare archive or ``all``
    names no model here)."""
    names = []
    for entry in properties.get("load_models", "").split(","):
        name, sep, _archive = entry.strip().partition("=")
        if sep and name:
            names.append(name)
    return names


def count_ready(description: Any) -> int:
    """READY workers in a management API model description (``GET /models/NAME[/VERSION]``, a list of versions).

    Raises ValueError for anything that is not a model description."""
    if not isinstance(description, list):
        raise ValueError(f"a model description is a JSON array, got {type(description).__name__}")
    ready = 0
    for entry in description:
        workers = entry.get("workers", []) if isinstance(entry, dict) else None
        if not isinstance(workers, list):
            raise ValueError("a model description entry has no list of workers")
        ready += sum(1 for worker in workers if isinstance(worker, dict) and worker.get("status") == "READY")
    return ready


def error_fields(body: bytes | str) -> tuple[str | None, str | None]:
    """(type, message) of a TorchServe error body ``{"code", "type", "message"}``; (None, None) when it is not one."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("message"), str):
        return None, None
    kind = parsed.get("type")
    return (kind if isinstance(kind, str) else None), parsed["message"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nertools.torchserve", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="print one property's value (the address keys have TorchServe's defaults)")
    get.add_argument("key")
    get.add_argument("--default", default=None, help="printed when the file does not set the key")
    check_free = commands.add_parser(
        "check-free",
        help="exit 1, naming each, when another process already listens on one of the addresses (before a start: "
        "a server already there would answer the readiness check in the new one's place)",
    )
    check_free.add_argument("keys", nargs="*", default=list(DEFAULT_ADDRESSES), help="default: the three addresses")
    for command in (get, check_free):
        command.add_argument(
            "--config", type=Path, default=Path("config.properties"), help="default: ./config.properties"
        )
    args = parser.parse_args(argv)
    try:
        properties = read_properties(args.config)
    except OSError as err:
        print(f"error: cannot read {args.config}: {err.strerror}", file=sys.stderr)
        return 2
    if args.command == "check-free":
        return _check_free(properties, args.keys, args.config)
    value = properties.get(args.key) or args.default or DEFAULT_ADDRESSES.get(args.key)
    if value is None:
        print(f"error: {args.config} does not set {args.key}", file=sys.stderr)
        return 1
    print(value)
    return 0


def _check_free(properties: dict[str, str], keys: Sequence[str], config: Path) -> int:
    taken = 0
    for key in keys:
        if key not in DEFAULT_ADDRESSES:
            print(f"error: {key} is not one of {', '.join(DEFAULT_ADDRESSES)}", file=sys.stderr)
            return 2
        url = address(properties, key)
        if in_use(url):
            taken += 1
            print(
                f"error: {url} ({key} in {config}) is already in use by another process; stop it "
                "(./scripts/stop.sh if it is ours) or change the address",
                file=sys.stderr,
            )
    return 1 if taken else 0


if __name__ == "__main__":
    sys.exit(main())
