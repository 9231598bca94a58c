"""Operate ner_model on a running TorchServe: versions, workers, readiness, canary comparisons.

Human-readable output by default, --json for machines. Exit codes: 0 success, 1 the check said no (ready: no
READY worker; canary: outputs differ), 2 a failed call or bad arguments (the message says why). The options
--management, --inference, --key-file and --json go before or after the command.

Works around TorchServe 0.12's version faults: a newly registered version is never made default by TorchServe
(use `register --set-default` or `set-default`), `defaultVersion` in config.properties is ignored at start-up
(run `set-default` after start), and a version still taking traffic should not be deleted: `unregister` refuses
the default version and first waits until the version has served its queued requests.

The document lane (nerserve.protocol.document_lane: ner_model_documents, the same archive with batching of its own,
which the gateway sends long documents to) follows its model: register, set-default and unregister of ner_model
do the same on the lane when it is registered, with the lane's own batch size, delay and workers; scale does not.

Served state across restarts (nertools.served_state): after every successful register, set-default, scale and
unregister, the versions served and the default are recorded in --state-file, when that file exists and belongs to
the TorchServe addressed (scripts/serve.sh creates it); `restore`, run by serve.sh once ner_model is READY, serves
the recorded versions and default again.

Environment: NER_MANAGEMENT_URL and NER_INFERENCE_URL set the defaults of --management and --inference;
NER_SERVED_STATE (else NER_STATE_DIR, as for serve.sh) the default of --state-file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from nerserve.protocol import document_lane, is_document_lane
from nertools.paths import TS_CONFIG
from nertools.ready import ready_workers, wait_ready
from nertools.served_state import (
    ModelState,
    StateError,
    Step,
    default_state_file,
    differences,
    missing_archives,
    plan,
    read_state,
    summary,
    version_from_description,
    write_state,
)
from nertools.torchserve import DEFAULT_ADDRESSES, count_ready, error_fields, model_versions, read_properties

MANAGEMENT_ENV = "NER_MANAGEMENT_URL"
INFERENCE_ENV = "NER_INFERENCE_URL"
FALLBACK_NAME = "ner_model"


class CliError(Exception):
    """A failure the user must see: printed as one line, exit code 2."""


class TorchServeAdmin:
    """The management and inference APIs, with the keys from key_file.json when token authorization is on."""

    def __init__(self, management: str, inference: str, key_file: Path | None, timeout: float = 300) -> None:
        self.management = management.rstrip("/")
        self.inference = inference.rstrip("/")
        self.timeout = timeout
        self.management_key, self.inference_key = read_keys(key_file)
        self.session = requests.Session()

    def _call(self, method: str, url: str, key: str | None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise CliError(f"cannot reach {url}: {err.__class__.__name__}") from None

    def manage(self, method: str, path: str, ok: tuple[int, ...] = (200,), **params: Any) -> Any:
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
    """TorchServe's message from an error response, else the body as it came (or the reason phrase)."""
    _, message = error_fields(response.content)
    return message if message is not None else (response.text.strip() or response.reason)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The ``model`` section of a .mar's MAR-INF/MANIFEST.json (None when the archive cannot be read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            model = json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return model if isinstance(model, dict) else None


def describe_model(admin: TorchServeAdmin, name: str, version: str | None = "all") -> list[dict[str, Any]]:
    """GET /models/NAME[/VERSION]: one entry per version (the default version's alone when ``version`` is None)."""
    described: list[dict[str, Any]] = admin.manage("GET", f"/models/{name}" + (f"/{version}" if version else ""))
    return described


def default_version(admin: TorchServeAdmin, name: str) -> str:
    """TorchServe 0.12's describe has no "is default" field; GET /models/NAME describes the default version."""
    return str(describe_model(admin, name, None)[0]["modelVersion"])


def served_lane(admin: TorchServeAdmin, name: str) -> str | None:
    """``name``'s document lane when TorchServe serves it, else None (a lane has no lane of its own)."""
    if is_document_lane(name):
        return None
    lane = document_lane(name)
    models = admin.manage("GET", "/models").get("models", [])
    return lane if any(model.get("modelName") == lane for model in models) else None


def ready_worker_count(entry: dict[str, Any]) -> int:
    """READY workers of one version (one entry of a model description)."""
    return count_ready([entry])


def live_state(admin: TorchServeAdmin) -> dict[str, ModelState]:
    """Every registered model's versions (archive, batching, workers) and default, as TorchServe describes them."""
    models: dict[str, ModelState] = {}
    for model in admin.manage("GET", "/models").get("models", []):
        name = str(model["modelName"])
        versions = {str(e["modelVersion"]): version_from_description(e) for e in describe_model(admin, name)}
        models[name] = ModelState(default=default_version(admin, name), versions=versions)
    return models


def record_state(admin: TorchServeAdmin, path: Path) -> str | None:
    """Record what is served now in ``path``; a warning for the user when it was not recorded, else None.

    Only an existing state file of this TorchServe is updated: without one nothing is restored at start-up
    anyway, and a file naming another management address belongs to another server (a test instance on other
    ports must not overwrite the operator's state)."""
    try:
        state = read_state(path)
        if state is None:
            return None
        if state[0] != admin.management:
            return f"not recorded in {path}: that state belongs to the TorchServe at {state[0]}"
        write_state(path, admin.management, live_state(admin))
    except (StateError, OSError, CliError) as err:
        return f"served, but not recorded in {path} ({err}): a restart would not restore this change"
    return None


# --- commands ------------------------------------------------------------------------------------------------

Result = tuple[Any, str]  # (what --json prints, what a person reads)


def cmd_list(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    models = admin.manage("GET", "/models").get("models", [])
    rows = []
    for model in models:
        default = default_version(admin, model["modelName"])
        for entry in describe_model(admin, model["modelName"]):
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
    lines = [f"{'MODEL':<21}{'VERSION':<10}{'DEFAULT':<9}{'READY/WORKERS':<15}{'BATCH':<7}DELAY(ms)"]
    lines += [
        f"{r['name']:<21}{r['version']:<10}{'yes' if r['default'] else '':<9}"
        f"{str(r['ready_workers']) + '/' + str(r['workers']):<15}{r['batch_size']!s:<7}{r['max_batch_delay_ms']}"
        for r in rows
    ]
    return rows, "\n".join(lines) if rows else "no models registered"


def cmd_describe(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    entries = describe_model(admin, args.name, args.version or "all")
    default = default_version(admin, args.name)
    lines = []
    for entry in entries:
        entry["isDefault"] = entry["modelVersion"] == default
        lines.append(
            f"{entry['modelName']} {entry['modelVersion']}{' (default)' if entry['isDefault'] else ''}: "
            f"batch {entry.get('batchSize')}, max delay {entry.get('maxBatchDelay')} ms, workers "
            f"{entry.get('minWorkers')}..{entry.get('maxWorkers')}, archive {entry.get('modelUrl')}"
        )
        for worker in entry.get("workers", []):
            lines.append(f"  worker {worker.get('id')}: {worker.get('status')} pid {worker.get('pid')}")
    return entries, "\n".join(lines)


def cmd_register(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
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
        manifest = read_manifest(mar)
        if manifest is None or "modelVersion" not in manifest:
            raise CliError(f"{mar}: not a readable model archive")
        found = str(manifest["modelVersion"])
        if args.version and found != args.version:
            raise CliError(f"{mar} holds version {found}, not {args.version}")
        args.version = args.version or found
        args.name = args.name or manifest.get("modelName") or FALLBACK_NAME
        url = mar.name  # TorchServe resolves plain names inside its model store
    else:
        url = args.mar  # without model_name TorchServe takes the name from the archive's manifest itself
    if args.set_default and not (args.version and args.name):
        raise CliError("--set-default needs --version and, for an archive that is not a local file, --name")
    result = admin.manage(
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
    lane = served_lane(admin, args.name) if args.name else None
    if lane is not None:
        # The lane keeps its own batching: that of its default version.
        spec = version_from_description(describe_model(admin, lane, None)[0])
        admin.manage(
            "POST",
            "/models",
            url=url,
            model_name=lane,
            batch_size=spec.batch_size,
            max_batch_delay=spec.max_batch_delay_ms,
            initial_workers=spec.min_workers,
            response_timeout=spec.response_timeout_s or args.response_timeout,
            synchronous="true",
        )
        if spec.max_workers != spec.min_workers:
            version = args.version or default_version(admin, args.name)
            admin.manage(
                "PUT",
                f"/models/{lane}/{version}",
                ok=(200, 202),
                min_worker=spec.min_workers,
                max_worker=spec.max_workers,
            )
        message += f"; also registered as {lane} (batch {spec.batch_size}, {spec.min_workers} worker(s))"
    if args.set_default:
        cmd_set_default(admin, argparse.Namespace(name=args.name, version=args.version))
        message += f"; {args.version} is now the default"
    return result, message


def cmd_set_default(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    entries = describe_model(admin, args.name, args.version)
    if not any(ready_worker_count(entry) for entry in entries):
        raise CliError(f"{args.name} {args.version} has no READY worker; scale it up before making it the default")
    lane = served_lane(admin, args.name)
    if lane is not None:
        lane_entries = describe_model(admin, lane, args.version)
        if not any(ready_worker_count(entry) for entry in lane_entries):
            raise CliError(f"{lane} {args.version} has no READY worker; scale it up before making it the default")
    result = admin.manage("PUT", f"/models/{args.name}/{args.version}/set-default")
    message = result.get("status", f"{args.version} is the default of {args.name}")
    if lane is not None:
        admin.manage("PUT", f"/models/{lane}/{args.version}/set-default")
        message += f"; and of {lane}"
    return result, message


def cmd_scale(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    if args.min < 0 or (args.max is not None and args.max < args.min):
        raise CliError("need 0 <= --min <= --max")
    path = f"/models/{args.name}" + (f"/{args.version}" if args.version else "")
    result = admin.manage("PUT", path, ok=(200, 202), min_worker=args.min, max_worker=args.max, synchronous="true")
    return result, result.get("status", "scaled")


def cmd_unregister(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    describe_model(admin, args.name, args.version)  # 404 with TorchServe's message if there is no such version
    if default_version(admin, args.name) == args.version:
        raise CliError(f"{args.name} {args.version} is the default version; set another default first")
    # Requests routed to this version before the default changed may still be queued: give them time to finish
    # (TorchServe fails queued jobs of a deleted version).
    lane = served_lane(admin, args.name)
    lane_has_it = lane is not None and any(
        str(entry.get("modelVersion")) == args.version for entry in describe_model(admin, lane)
    )
    if lane is not None and lane_has_it and default_version(admin, lane) == args.version:
        raise CliError(f"{lane} {args.version} is the default version; set another default first")
    time.sleep(max(args.drain_seconds, 0))
    result = admin.manage("DELETE", f"/models/{args.name}/{args.version}")
    message = result.get("status", "unregistered")
    if lane is not None and lane_has_it:
        admin.manage("DELETE", f"/models/{lane}/{args.version}")
        message += f"; and from {lane}"
    return result, message


def cmd_ready(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    count = ready_workers(admin.management, args.name, args.version, admin.management_key)
    return {"ready": count > 0, "ready_workers": count}, f"{args.name}: {count} READY worker(s)"


def cmd_canary(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    texts = list(args.text or [])
    if args.file:
        texts += [
            line.rstrip("\n") for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if not texts:
        raise CliError("give texts with --text (repeatable) or --file")
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    for text in texts:
        default, canary = admin.predict(args.name, None, text), admin.predict(args.name, args.version, text)
        if default.status_code != 200 or canary.status_code != 200:
            raise CliError(
                f"prediction failed: default HTTP {default.status_code}, {args.version} HTTP "
                f"{canary.status_code}: {error_message(canary if canary.status_code != 200 else default)}"
            )
        spans_default = {(e["label"], e["start"], e["end"]) for e in default.json()["entities"]}
        spans_canary = {(e["label"], e["start"], e["end"]) for e in canary.json()["entities"]}
        only_default = sorted(spans_default - spans_canary, key=lambda span: span[1])
        only_canary = sorted(spans_canary - spans_default, key=lambda span: span[1])
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


def save_state(path: Path, admin: TorchServeAdmin, models: dict[str, ModelState]) -> None:
    try:
        write_state(path, admin.management, models)
    except OSError as err:
        raise CliError(f"cannot write the served state {path}: {err.strerror or err}") from None


def run_step(admin: TorchServeAdmin, step: Step, timeout: float) -> None:
    """One call of a restore; a registered version or a new default must have a READY worker before going on."""
    spec = step.spec
    path = f"/models/{step.model}/{step.version}"
    if step.action == "register" and spec is not None:
        admin.manage(
            "POST",
            "/models",
            url=spec.archive,
            model_name=step.model,
            batch_size=spec.batch_size,
            max_batch_delay=spec.max_batch_delay_ms,
            initial_workers=spec.min_workers,
            response_timeout=spec.response_timeout_s,
            synchronous="true",
        )
        if spec.max_workers != spec.min_workers:
            admin.manage("PUT", path, ok=(200, 202), min_worker=spec.min_workers, max_worker=spec.max_workers)
        ready = spec.min_workers < 1 or wait_ready(
            admin.management, step.model, timeout, step.version, admin.management_key
        )
        if not ready:
            raise CliError(f"{step.model} {step.version} has no READY worker after {timeout:g} s")
    elif step.action == "scale" and spec is not None:
        admin.manage(
            "PUT", path, ok=(200, 202), min_worker=spec.min_workers, max_worker=spec.max_workers, synchronous="true"
        )
    elif step.action == "set-default":
        admin.manage("PUT", f"{path}/set-default")
    elif step.action == "unregister":
        admin.manage("DELETE", path)


def cmd_restore(admin: TorchServeAdmin, args: argparse.Namespace) -> Result:
    path: Path = args.state_file
    try:
        state = read_state(path)
    except StateError as err:
        raise CliError(f"{err}; fix or delete it, or start with scripts/serve.sh --fresh") from None
    live = live_state(admin)
    if state is None:
        save_state(path, admin, live)
        lines = [f"served state: none recorded yet; recording changes in {path}", *summary(live)]
        return {"restored": [], "state": str(path)}, "\n".join(lines)
    recorded = state[1]
    missing = missing_archives(recorded, args.store) if args.store else []
    if missing:
        raise CliError(
            f"the served state in {path} lists archives that are gone ({'; '.join(missing)}); put them back, "
            "or start with scripts/serve.sh --fresh"
        )
    steps = plan(recorded, live)
    for done, step in enumerate(steps):
        try:
            run_step(admin, step, args.timeout)
        except CliError as err:
            finished = "; ".join(s.describe() for s in steps[:done]) or "nothing"
            raise CliError(f"restoring {path}: {step.describe()} failed: {err} (done before: {finished})") from None
    notes = differences(recorded, live)
    served = live_state(admin)
    save_state(path, admin, served)
    lines = [f"served state restored from {path}" + ("" if steps else " (already as recorded)")]
    lines += [f"  {step.describe()}" for step in steps]
    lines += [f"  note: {note}" for note in notes]
    lines += [f"  now: {line}" for line in summary(served)]
    result = {"restored": [step.describe() for step in steps], "notes": notes, "state": str(path)}
    return result, "\n".join(lines)


COMMANDS: dict[str, Callable[[TorchServeAdmin, argparse.Namespace], Result]] = {
    "list": cmd_list,
    "describe": cmd_describe,
    "register": cmd_register,
    "set-default": cmd_set_default,
    "scale": cmd_scale,
    "unregister": cmd_unregister,
    "ready": cmd_ready,
    "canary": cmd_canary,
    "restore": cmd_restore,
}
# The commands that change what is served: recorded in the state file once they succeed.
CHANGES = frozenset({"register", "set-default", "scale", "unregister"})


# --- command line --------------------------------------------------------------------------------------------


def global_options(defaults: dict[str, Any] | None) -> argparse.ArgumentParser:
    """The options every command takes. With ``defaults`` None (the copy each command's parser gets) an option
    left out sets nothing, so the value given before the command, or its default, stands."""

    def default(name: str) -> Any:
        return argparse.SUPPRESS if defaults is None else defaults[name]

    def shown(name: str) -> str:
        return "" if defaults is None else f" [{defaults[name]}]"

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--management",
        default=default("management"),
        help=f"management API, default ${MANAGEMENT_ENV} else TorchServe's{shown('management')}",
    )
    options.add_argument(
        "--inference",
        default=default("inference"),
        help=f"inference API, default ${INFERENCE_ENV} else TorchServe's{shown('inference')}",
    )
    options.add_argument(
        "--key-file",
        type=Path,
        default=default("key_file"),
        help=f"TorchServe's key file, used when present (token authorization){shown('key_file')}",
    )
    options.add_argument(
        "--state-file",
        type=Path,
        default=default("state_file"),
        help=f"served state kept across restarts, updated when it belongs to this TorchServe{shown('state_file')}",
    )
    options.add_argument("--json", action="store_true", default=default("json"), help="print JSON instead of text")
    return options


# TorchServe's own defaults, for a configuration that does not set a value.
SERVED_FALLBACKS = {"batchSize": 1, "maxBatchDelay": 100, "minWorkers": 1, "responseTimeout": 120}


def served_defaults(config: Path, model: str = FALLBACK_NAME) -> dict[str, int]:
    """``register``'s defaults: the batching, workers and timeout ``config`` (NER_TS_CONFIG, else the project's
    config.properties) gives ``model``'s first version, so a version registered by hand is served like 1.0."""
    try:
        first = next(iter(model_versions(read_properties(config), model).values()))
    except (OSError, ValueError):
        return dict(SERVED_FALLBACKS)
    return {key: int(first.get(key, fallback)) for key, fallback in SERVED_FALLBACKS.items()}


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    environ = dict(os.environ) if environ is None else environ
    served = served_defaults(Path(environ.get("NER_TS_CONFIG") or TS_CONFIG))
    defaults = {
        "management": environ.get(MANAGEMENT_ENV) or DEFAULT_ADDRESSES["management_address"],
        "inference": environ.get(INFERENCE_ENV) or DEFAULT_ADDRESSES["inference_address"],
        "key_file": Path("key_file.json"),
        "state_file": default_state_file(environ),
        "json": False,
    }
    parser = argparse.ArgumentParser(
        prog="manage.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options(defaults)],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    per_command = [global_options(None)]

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=per_command)

    command("list", "models, versions, default, workers")
    p = command("describe", "one model (all versions, or one)")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p = command("register", "register a .mar from the model store, with workers")
    p.add_argument("mar", help="archive file name in TorchServe's model store (or a path to it there)")
    p.add_argument(
        "--name",
        default=None,
        help=f"model name (default: the archive's modelName; {FALLBACK_NAME} when its manifest names none)",
    )
    p.add_argument("--version", default=None, help="expected version (checked against the archive)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=served["batchSize"],
        help="largest dynamic batch [%(default)s: config.properties]",
    )
    p.add_argument(
        "--max-batch-delay",
        type=int,
        default=served["maxBatchDelay"],
        help="milliseconds, at least 1 [%(default)s: config.properties]",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=served["minWorkers"],
        help="initial workers, at least 1 [%(default)s: config.properties]",
    )
    p.add_argument(
        "--response-timeout",
        type=int,
        default=served["responseTimeout"],
        help="seconds a whole batch may take [%(default)s: config.properties]",
    )
    p.add_argument("--set-default", action="store_true", help="make it the default once registered")
    p = command("set-default", "route unversioned requests to VERSION")
    p.add_argument("name")
    p.add_argument("version")
    p = command("scale", "set worker counts (default version unless --version)")
    p.add_argument("name")
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int, default=None)
    p.add_argument("--version", default=None)
    p = command("unregister", "remove a version that is not the default")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--drain-seconds", type=float, default=2.0, help="wait for queued requests first [%(default)s]")
    p = command("ready", "exit 0 only when NAME has a READY worker")
    p.add_argument("name")
    p.add_argument("--version", default=None)
    p = command("canary", "compare VERSION's entities with the default version's")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--text", action="append", help="a text to compare (repeatable)")
    p.add_argument("--file", help="a file with one text per line")
    p = command("restore", "serve the versions and default recorded in --state-file again (serve.sh runs it)")
    p.add_argument("--store", type=Path, default=None, help="model store: recorded archives must be there")
    p.add_argument("--timeout", type=float, default=300, help="seconds a version may take to be READY [%(default)s]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        admin = TorchServeAdmin(args.management, args.inference, args.key_file)
        result, text = COMMANDS[args.command](admin, args)
    except CliError as err:
        print(json.dumps({"error": str(err)}) if args.json else f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else text)
    if args.command in CHANGES:
        warning = record_state(admin, args.state_file)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    if args.command == "ready" and not result["ready"]:
        return 1
    if args.command == "canary" and result["agree"] != result["total"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
