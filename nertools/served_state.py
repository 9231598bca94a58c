"""The served state of a TorchServe started by scripts/serve.sh, kept across restarts.

serve.sh starts TorchServe with --ncs (no config snapshot) and TorchServe 0.12 ignores ``defaultVersion`` at
start-up, so a restart would serve only the archive named in ``load_models`` (version 1.0). Instead,
scripts/manage.py records what is served (each version's archive, batching, workers, and the default version)
in a JSON state file after every change it makes, and serve.sh replays that file once ner_model is READY:
``manage.py restore`` registers the recorded versions that are missing, sets the recorded default and only then
unregisters the versions the state does not list.

The state file belongs to one TorchServe: it names that server's management address, and manage.py records into
an existing state file only when it talks to that address (a test server on other ports leaves it alone).
``python -m nertools.served_state check --state FILE --store DIR`` checks, before TorchServe starts, that every
recorded archive is still in the model store; ``show`` prints the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nertools.paths import ROOT

STATE_ENV = "NER_SERVED_STATE"
STATE_DIR_ENV = "NER_STATE_DIR"
STATE_NAME = "served_state.json"
SCHEMA = 1


class StateError(Exception):
    """A state file that cannot be used as it is: the message says which file and why."""


@dataclass(frozen=True)
class VersionState:
    """One registered version as TorchServe describes it: what is needed to register it again."""

    archive: str
    batch_size: int
    max_batch_delay_ms: int
    min_workers: int
    max_workers: int
    response_timeout_s: int | None = None


@dataclass(frozen=True)
class ModelState:
    default: str
    versions: dict[str, VersionState]


@dataclass(frozen=True)
class Step:
    """One management call of a restore: register, scale, set-default or unregister (in that order)."""

    action: str
    model: str
    version: str
    spec: VersionState | None = None

    def describe(self) -> str:
        if self.action == "register" and self.spec is not None:
            return (
                f"register {self.model} {self.version} from {self.spec.archive} (batch {self.spec.batch_size}, "
                f"max delay {self.spec.max_batch_delay_ms} ms, {self.spec.min_workers} worker(s))"
            )
        if self.action == "scale" and self.spec is not None:
            return f"scale {self.model} {self.version} to {self.spec.min_workers}..{self.spec.max_workers} workers"
        if self.action == "set-default":
            return f"make {self.model} {self.version} the default"
        return f"unregister {self.model} {self.version} (not in the recorded state)"


def default_state_file(environ: Mapping[str, str] | None = None) -> Path:
    """$NER_SERVED_STATE; else served_state.json beside serve.sh's $NER_STATE_DIR; else .cache/served_state.json."""
    environ = os.environ if environ is None else environ
    if environ.get(STATE_ENV):
        return Path(environ[STATE_ENV])
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV]).parent / STATE_NAME
    return ROOT / ".cache" / STATE_NAME


def version_from_description(entry: Mapping[str, Any]) -> VersionState:
    """A VersionState from one entry of TorchServe's GET /models/NAME/all."""
    timeout = entry.get("responseTimeout")
    return VersionState(
        archive=str(entry["modelUrl"]),
        batch_size=int(entry["batchSize"]),
        max_batch_delay_ms=int(entry["maxBatchDelay"]),
        min_workers=int(entry["minWorkers"]),
        max_workers=int(entry["maxWorkers"]),
        response_timeout_s=None if timeout is None else int(timeout),
    )


def to_json(management: str, models: Mapping[str, ModelState]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "management": management.rstrip("/"),
        "models": {
            name: {"default": model.default, "versions": {v: asdict(spec) for v, spec in model.versions.items()}}
            for name, model in models.items()
        },
    }


def from_json(data: Any, source: Path) -> tuple[str, dict[str, ModelState]]:
    """(management address, models) from a parsed state file; StateError when it is not one."""
    try:
        if data["schema"] != SCHEMA:
            raise StateError(f"{source}: schema {data['schema']!r}, this version reads {SCHEMA}")
        models: dict[str, ModelState] = {}
        for name, model in data["models"].items():
            versions = {str(v): VersionState(**spec) for v, spec in model["versions"].items()}
            default = str(model["default"])
            if default not in versions:
                raise StateError(f"{source}: the default {name} {default} is not among its versions")
            models[str(name)] = ModelState(default=default, versions=versions)
        return str(data["management"]), models
    except (KeyError, TypeError, AttributeError) as err:
        raise StateError(f"{source}: not a served-state file ({err.__class__.__name__}: {err})") from None


def read_state(path: Path) -> tuple[str, dict[str, ModelState]] | None:
    """The recorded state, or None when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise StateError(f"{path}: not JSON ({err})") from None
    return from_json(data, path)


def write_state(path: Path, management: str, models: Mapping[str, ModelState]) -> None:
    """Write atomically: a crash mid-write leaves the previous state, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(management, models), indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def missing_archives(models: Mapping[str, ModelState], store: Path) -> list[str]:
    """One line per recorded version whose archive is not in the model store (URLs are not checked)."""
    missing = []
    for name, model in models.items():
        for version, spec in model.versions.items():
            if "://" in spec.archive:
                continue
            if not (store / spec.archive).is_file():
                missing.append(f"{name} {version}: {spec.archive} is not in {store}")
    return missing


def plan(recorded: Mapping[str, ModelState], live: Mapping[str, ModelState]) -> list[Step]:
    """The calls that turn ``live`` into ``recorded``: registers, scales, default switches, then unregisters, so a
    version is removed only after the default has moved away from it. Models the state does not name are kept."""
    registers: list[Step] = []
    scales: list[Step] = []
    defaults: list[Step] = []
    removals: list[Step] = []
    for name, wanted in recorded.items():
        served = live.get(name)
        served_versions = served.versions if served else {}
        for version, spec in wanted.versions.items():
            current = served_versions.get(version)
            if current is None:
                registers.append(Step("register", name, version, spec))
            elif (current.min_workers, current.max_workers) != (spec.min_workers, spec.max_workers):
                scales.append(Step("scale", name, version, spec))
        if served is None or served.default != wanted.default:
            defaults.append(Step("set-default", name, wanted.default))
        removals += [Step("unregister", name, v) for v in served_versions if v not in wanted.versions]
    return registers + scales + defaults + removals


def differences(recorded: Mapping[str, ModelState], live: Mapping[str, ModelState]) -> list[str]:
    """What a restore keeps as served although the state says otherwise: a version loaded at start-up from another
    archive or with other batching cannot be changed without unregistering it, which would leave no default."""
    notes = []
    for name, wanted in recorded.items():
        served = live.get(name)
        for version, spec in wanted.versions.items():
            current = served.versions.get(version) if served else None
            if current is None:
                continue
            if current.archive != spec.archive:
                notes.append(f"{name} {version} is served from {current.archive} (recorded: {spec.archive})")
            if (current.batch_size, current.max_batch_delay_ms) != (spec.batch_size, spec.max_batch_delay_ms):
                notes.append(
                    f"{name} {version} batches {current.batch_size} / {current.max_batch_delay_ms} ms as "
                    f"config.properties says (recorded: {spec.batch_size} / {spec.max_batch_delay_ms} ms)"
                )
    return notes


def summary(models: Mapping[str, ModelState]) -> list[str]:
    """One line per version, the default first."""
    lines = []
    for name, model in models.items():
        for version in sorted(model.versions, key=lambda v: v != model.default):
            spec = model.versions[version]
            lines.append(
                f"{name} {version}{' (default)' if version == model.default else ''}: {spec.archive}, "
                f"batch {spec.batch_size}, max delay {spec.max_batch_delay_ms} ms, "
                f"workers {spec.min_workers}..{spec.max_workers}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "show"))
    parser.add_argument("--state", type=Path, default=None, help=f"state file [{default_state_file()}]")
    parser.add_argument("--store", type=Path, default=None, help="model store to check the archives in (check)")
    args = parser.parse_args(argv)
    path = args.state or default_state_file()
    try:
        state = read_state(path)
    except StateError as err:
        print(f"error: {err}; fix or delete it, or start with scripts/serve.sh --fresh", file=sys.stderr)
        return 2
    if state is None:
        print(f"no served state recorded in {path}")
        return 0
    management, models = state
    if args.command == "show":
        print("\n".join([f"{path} (TorchServe at {management}):", *("  " + line for line in summary(models))]))
        return 0
    if args.store is None:
        parser.error("check needs --store")
    missing = missing_archives(models, args.store)
    if missing:
        print(
            f"error: the served state in {path} lists archives that are gone:\n"
            + "".join(f"  {line}\n" for line in missing)
            + "Put them back into the model store, or start with scripts/serve.sh --fresh (serves 1.0 alone and "
            "forgets the recorded versions).",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
