#!/usr/bin/env python3
"""Operate ner_model on a running TorchServe: versions, workers, readiness, canary comparisons.

Human-readable output by default, --json for machines. Exit codes: 0 success, 1 the check said no (ready: no
READY worker; canary: outputs differ), 2 a failed call or bad arguments (the message says why).

Works around TorchServe 0.12's version faults: a newly registered version is never made default by TorchServe
(use `register --set-default` or `set-default`), `defaultVersion` in config.properties is ignored at start-up
(run `set-default` after start), and a version still taking traffic should not be deleted: `unregister` refuses
the default version and first waits until the version has served its queued requests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ready import ready_workers

DEFAULT_MANAGEMENT = os.environ.get("NER_MANAGEMENT_URL", "http://127.0.0.1:8081")
DEFAULT_INFERENCE = os.environ.get("NER_INFERENCE_URL", "http://127.0.0.1:8080")


class CliError(Exception):
    """A failure the user must see: printed as one line, exit code 2."""


class TorchServeClient:
    """The management and inference APIs, with the keys from key_file.json when token authorization is on."""

    def __init__(self, management: str, inference: str, key_file: Path | None, timeout: float = 300) -> None:
        self.management = management.rstrip("/")
        self.inference = inference.rstrip("/")
        self.timeout = timeout
        self.management_key, self.inference_key = read_keys(key_file)
        self.session = requests.Session()

    def _call(self, method: str, url: str, key: str | None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise CliError(f"cannot reach {url}: {err.__class__.__name__}") from None

    def manage(self, method: str, path: str, ok: tuple[int, ...] = (200,), **params) -> Any:
        response = self._call(
            method,
            f"{self.management}{path}",
            self.management_key,
            params={k: v for k, v in params.items() if v is not None},
        )
        if response.status_code not in ok:
            raise CliError(f"{method} {path}: HTTP {response.status_code}: {error_message(response)}")
        try:
            return response.json()
        except ValueError:
            return {"status": response.text}

    def predict(self, name: str, version: str | None, text: str) -> requests.Response:
        path = f"/predictions/{name}" + (f"/{version}" if version else "")
        return self._call("POST", f"{self.inference}{path}", self.inference_key, json={"text": text})


def read_keys(key_file: Path | None) -> tuple[str | None, str | None]:
    """(management key, inference key) from TorchServe's key_file.json, or (None, None) without one."""
    if key_file is None or not key_file.is_file():
        return None, None
    try:
        keys = json.loads(key_file.read_text())
        return keys["management"]["key"], keys["inference"]["key"]
    except (ValueError, KeyError, TypeError) as err:
        raise CliError(f"{key_file}: not a TorchServe key file ({err})") from None


def error_message(response: requests.Response) -> str:
    try:
        return response.json().get("message", response.text)
    except ValueError:
        return response.text.strip() or response.reason


def mar_version(path: Path) -> str | None:
    """modelVersion from a .mar's MAR-INF/MANIFEST.json (None when the archive cannot be read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def describe(client: TorchServeClient, name: str, version: str | None = "all") -> list[dict]:
    return client.manage("GET", f"/models/{name}" + (f"/{version}" if version else ""))


def default_version(client: TorchServeClient, name: str) -> str:
    """TorchServe 0.12's describe has no "is default" field; GET /models/NAME describes the default version."""
    return describe(client, name, None)[0]["modelVersion"]


def ready_worker_count(entry: dict) -> int:
    return sum(1 for worker in entry.get("workers", []) if worker.get("status") == "READY")


# --- commands ------------------------------------------------------------------------------------------------


def cmd_list(client, args) -> tuple[Any, str]:
    models = client.manage("GET", "/models").get("models", [])
    rows = []
    for model in models:
        default = default_version(client, model["modelName"])
        for entry in describe(client, model["modelName"]):
            rows.append(
                {
                    "name": entry["modelName"],
                    "version": entry["modelVersion"],
                    "default": entry["modelVersion"] == default,
                    "ready_workers": ready_worker_count(entry),
                    "workers": len(entry.get("workers", [])),
                    "batch_size": entry.get("batchSize"),
                    "max_batch_delay_ms": entry.get("maxBatchDelay"),
                }
            )
    lines = [f"{'MODEL':<16}{'VERSION':<10}{'DEFAULT':<9}{'READY/WORKERS':<15}{'BATCH':<7}DELAY(ms)"]
    lines += [
        f"{r['name']:<16}{r['version']:<10}{'yes' if r['default'] else '':<9}"
        f"{str(r['ready_workers']) + '/' + str(r['workers']):<15}{r['batch_size']!s:<7}{r['max_batch_delay_ms']}"
        for r in rows
    ]
    return rows, "\n".join(lines) if rows else "no models registered"


def cmd_describe(client, args) -> tuple[Any, str]:
    entries = describe(client, args.name, args.version or "all")
    default = default_version(client, args.name)
    lines = []
    for e in entries:
        e["isDefault"] = e["modelVersion"] == default
        lines.append(
            f"{e['modelName']} {e['modelVersion']}{' (default)' if e['isDefault'] else ''}: "
            f"batch {e.get('batchSize')}, max delay {e.get('maxBatchDelay')} ms, workers "
            f"{e.get('minWorkers')}..{e.get('maxWorkers')}, archive {e.get('modelUrl')}"
        )
        for w in e.get("workers", []):
            lines.append(f"  worker {w.get('id')}: {w.get('status')} pid {w.get('pid')}")
    return entries, "\n".join(lines)


def cmd_register(client, args) -> tuple[Any, str]:
    if args.workers < 1:
        raise CliError("--workers must be at least 1: a version registered without workers answers 503")
    if args.max_batch_delay < 1:
        raise CliError(
            "--max-batch-delay must be at least 1 ms: TorchServe 0.12 reads 0 as 'not set' and waits its "
            "default 100 ms for every batch"
        )
    if args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    mar = Path(args.mar)
    if mar.is_file():
        found = mar_version(mar)
        if found is None:
            raise CliError(f"{mar}: not a readable model archive")
        if args.version and found != args.version:
            raise CliError(f"{mar} holds version {found}, not {args.version}")
        args.version = args.version or found
        url = mar.name  # TorchServe resolves plain names inside its model store
    else:
        url = args.mar
    result = client.manage(
        "POST",
        "/models",
        url=url,
        model_name=args.name,
        batch_size=args.batch_size,
        max_batch_delay=args.max_batch_delay,
        initial_workers=args.workers,
        response_timeout=args.response_timeout,
        synchronous="true",
    )
    message = result.get("status", "registered")
    if args.set_default:
        if not args.version:
            raise CliError("--set-default needs --version")
        cmd_set_default(client, argparse.Namespace(name=args.name, version=args.version))
        message += f"; {args.version} is now the default"
    return result, message


def cmd_set_default(client, args) -> tuple[Any, str]:
    entries = describe(client, args.name, args.version)
    if not any(ready_worker_count(e) for e in entries):
        raise CliError(f"{args.name} {args.version} has no READY worker; scale it up before making it the default")
    result = client.manage("PUT", f"/models/{args.name}/{args.version}/set-default")
    return result, result.get("status", f"{args.version} is the default of {args.name}")


def cmd_scale(client, args) -> tuple[Any, str]:
    if args.min < 0 or (args.max is not None and args.max < args.min):
        raise CliError("need 0 <= --min <= --max")
    path = f"/models/{args.name}" + (f"/{args.version}" if args.version else "")
    result = client.manage("PUT", path, ok=(200, 202), min_worker=args.min, max_worker=args.max, synchronous="true")
    return result, result.get("status", "scaled")


def cmd_unregister(client, args) -> tuple[Any, str]:
    describe(client, args.name, args.version)  # 404 with TorchServe's message if there is no such version
    if default_version(client, args.name) == args.version:
        raise CliError(f"{args.name} {args.version} is the default version; set another default first")
    # Requests routed to this version before the default changed may still be queued: give them time to finish
    # (TorchServe fails queued jobs of a deleted version).
    time.sleep(max(args.drain_seconds, 0))
    result = client.manage("DELETE", f"/models/{args.name}/{args.version}")
    return result, result.get("status", "unregistered")


def cmd_ready(client, args) -> tuple[Any, str]:
    count = ready_workers(client.management, args.name, args.version, client.management_key)
    return {"ready": count > 0, "ready_workers": count}, f"{args.name}: {count} READY worker(s)"


def cmd_canary(client, args) -> tuple[Any, str]:
    texts = list(args.text or [])
    if args.file:
        texts += [
            line.rstrip("\n") for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if not texts:
        raise CliError("give texts with --text (repeatable) or --file")
    results, lines = [], []
    for text in texts:
        default, canary = client.predict(args.name, None, text), client.predict(args.name, args.version, text)
        if default.status_code != 200 or canary.status_code != 200:
            raise CliError(
                f"prediction failed: default HTTP {default.status_code}, {args.version} HTTP "
                f"{canary.status_code}: {error_message(canary if canary.status_code != 200 else default)}"
            )
        spans_default = {(e["label"], e["start"], e["end"]) for e in default.json()["entities"]}
        spans_canary = {(e["label"], e["start"], e["end"]) for e in canary.json()["entities"]}
        only_default = sorted(spans_default - spans_canary, key=lambda s: s[1])
        only_canary = sorted(spans_canary - spans_default, key=lambda s: s[1])
        results.append(
            {
                "text_chars": len(text),
                "same": not only_default and not only_canary,
                "only_default": only_default,
                "only_canary": only_canary,
            }
        )
        status = "same" if results[-1]["same"] else "DIFFERENT"
        lines.append(
            f"[{status}] {len(spans_default)} vs {len(spans_canary)} entities"
            + "".join(f"\n    default only: {s[0]} {text[s[1] : s[2]]!r} ({s[1]}-{s[2]})" for s in only_default)
            + "".join(f"\n    {args.version} only: {s[0]} {text[s[1] : s[2]]!r} ({s[1]}-{s[2]})" for s in only_canary)
        )
    agree = sum(r["same"] for r in results)
    lines.append(f"{agree}/{len(results)} texts give the same entities on the default and on {args.version}")
    return {"texts": results, "agree": agree, "total": len(results)}, "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--management", default=DEFAULT_MANAGEMENT, help="management API [%(default)s]")
    parser.add_argument("--inference", default=DEFAULT_INFERENCE, help="inference API [%(default)s]")
    parser.add_argument(
        "--key-file",
        type=Path,
        default=Path("key_file.json"),
        help="TorchServe's key file, used when present (token authorization) [%(default)s]",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="models, versions, default, workers")
    p = sub.add_parser("describe", help="one model (all versions, or one)")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p = sub.add_parser("register", help="register a .mar from the model store, with workers")
    p.add_argument("mar", help="archive file name in TorchServe's model store (or a path to it there)")
    p.add_argument("--name", default=None, help="model name (default: from the archive)")
    p.add_argument("--version", default=None, help="expected version (checked against the archive)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="largest dynamic batch [%(default)s, as config.properties]"
    )
    p.add_argument(
        "--max-batch-delay", type=int, default=1, help="milliseconds, at least 1 [%(default)s, as config.properties]"
    )
    p.add_argument(
        "--workers", type=int, default=2, help="initial workers, at least 1 [%(default)s, as config.properties]"
    )
    p.add_argument(
        "--response-timeout",
        type=int,
        default=300,
        help="seconds a whole batch may take [%(default)s, as config.properties]",
    )
    p.add_argument("--set-default", action="store_true", help="make it the default once registered")
    p = sub.add_parser("set-default", help="route unversioned requests to VERSION")
    p.add_argument("name")
    p.add_argument("version")
    p = sub.add_parser("scale", help="set worker counts (default version unless --version)")
    p.add_argument("name")
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int, default=None)
    p.add_argument("--version", default=None)
    p = sub.add_parser("unregister", help="remove a version that is not the default")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--drain-seconds", type=float, default=2.0, help="wait for queued requests first [%(default)s]")
    p = sub.add_parser("ready", help="exit 0 only when NAME has a READY worker")
    p.add_argument("name")
    p.add_argument("--version", default=None)
    p = sub.add_parser("canary", help="compare VERSION's entities with the default version's")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--text", action="append", help="a text to compare (repeatable)")
    p.add_argument("--file", help="a file with one text per line")
    return parser


COMMANDS = {
    "list": cmd_list,
    "describe": cmd_describe,
    "register": cmd_register,
    "set-default": cmd_set_default,
    "scale": cmd_scale,
    "unregister": cmd_unregister,
    "ready": cmd_ready,
    "canary": cmd_canary,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = TorchServeClient(args.management, args.inference, args.key_file)
        if args.command == "register" and args.name is None:
            args.name = "ner_model"
        result, text = COMMANDS[args.command](client, args)
    except CliError as err:
        print(json.dumps({"error": str(err)}) if args.json else f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else text)
    if args.command == "ready" and not result["ready"]:
        return 1
    if args.command == "canary" and result["agree"] != result["total"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
