"""podman configuration files of our own: ``containers.conf`` and ``storage.conf`` for one project or one test run.

Why they exist (measured facts in the project's container notes): on cgroup-v1-hybrid hosts without systemd, podman's
default runtime crun fails (``cgroups in hybrid mode not supported``) and containers cannot raise their rlimits above
podman's own (``error setting rlimit type 7``). A ``containers.conf`` naming runc, cgroupfs, a file events logger
and rlimits no higher than this process's fixes both without touching /etc. A ``storage.conf`` with its own
graphroot and runroot gives a test run an image store of its own, so tests never see or touch a user's images.

podman reads them through ``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` (:func:`podman_env`).

    python -m nertools.containers write DIR [--storage]   # writes DIR/containers.conf (and storage.conf)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PID_MAX_FILE = Path("/proc/sys/kernel/pid_max")
# What a container gets when the limits cannot be read (a non-Linux host, a container without /proc).
FALLBACK_NOFILE = 1024
FALLBACK_NPROC = 4096
# Upper bounds even when the host allows more: a server needs tens of thousands of files, not millions.
MAX_NOFILE = 1 << 20
MAX_NPROC = 1 << 22


@dataclass(frozen=True)
class Limits:
    """The rlimits every container gets (soft = hard)."""

    nofile: int
    nproc: int


def bounded_limits(hard_nofile: int, pid_max: int | None) -> Limits:
    """Container rlimits no higher than this process may set: its hard open-files limit and kernel.pid_max
    (conmon runs with nproc = pid_max, and a container asking for more fails to start)."""
    nofile = hard_nofile if 0 < hard_nofile < MAX_NOFILE else MAX_NOFILE
    if hard_nofile <= 0:
        nofile = FALLBACK_NOFILE
    nproc = min(pid_max, MAX_NPROC) if pid_max and pid_max > 0 else FALLBACK_NPROC
    return Limits(nofile=nofile, nproc=nproc)


def host_limits() -> Limits:
    """:func:`bounded_limits` from this process's hard RLIMIT_NOFILE (``ulimit -Hn``) and /proc's pid_max."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nofile = hard if hard != resource.RLIM_INFINITY else MAX_NOFILE
    try:
        pid_max: int | None = int(PID_MAX_FILE.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pid_max = None
    return bounded_limits(hard_nofile, pid_max)


def containers_conf(limits: Limits, state_dir: Path | None = None, runtime: str = "runc") -> str:
    """A ``containers.conf``: ``runtime`` (runc), cgroupfs, events in a file, the rlimits; with ``state_dir``, also
    podman's network definitions and lock/tmp files under it (a test run's own, so its networks and containers
    never mix with the host's)."""
    lines = [
        "# Written by nertools.containers: runc + cgroupfs + file events work on cgroup v1 hosts without systemd;",
        "# rlimits no higher than podman's own.",
        "[containers]",
        f'default_ulimits = ["nofile={limits.nofile}:{limits.nofile}", "nproc={limits.nproc}:{limits.nproc}"]',
        "",
        "[engine]",
        f'runtime = "{runtime}"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
    ]
    if state_dir is not None:
        lines += [
            f'tmp_dir = "{state_dir / "tmp"}"',
            "",
            "[network]",
            f'network_config_dir = "{state_dir / "networks"}"',
        ]
    return "\n".join(lines) + "\n"


def storage_conf(state_dir: Path, driver: str = "overlay") -> str:
    """A ``storage.conf`` whose images, containers and run state all live under ``state_dir``."""
    return (
        "\n".join(
            [
                "# Written by nertools.containers: an image store of its own (never the user's).",
                "[storage]",
                f'driver = "{driver}"',
                f'graphroot = "{state_dir / "storage"}"',
                f'runroot = "{state_dir / "run"}"',
            ]
        )
        + "\n"
    )


@dataclass(frozen=True)
class PodmanConfig:
    """Files written by :func:`write_config`; ``storage`` is None when podman keeps its default image store."""

    containers: Path
    storage: Path | None

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: os.environ) with podman pointed at these files."""
        return podman_env(self, base)


def write_config(directory: Path, own_storage: bool, limits: Limits | None = None) -> PodmanConfig:
    """Write ``containers.conf`` (and, with ``own_storage``, ``storage.conf`` plus an isolated network and tmp
    directory) into ``directory``."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    limits = limits or host_limits()
    state = directory if own_storage else None
    if state is not None:
        for sub in ("tmp", "networks", "storage", "run"):
            (state / sub).mkdir(parents=True, exist_ok=True)
    containers = directory / "containers.conf"
    containers.write_text(containers_conf(limits, state), encoding="utf-8")
    storage = None
    if own_storage:
        storage = directory / "storage.conf"
        storage.write_text(storage_conf(directory), encoding="utf-8")
    return PodmanConfig(containers=containers, storage=storage)


def podman_env(config: PodmanConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(config.containers)
    if config.storage is not None:
        env["CONTAINERS_STORAGE_CONF"] = str(config.storage)
    else:
        env.pop("CONTAINERS_STORAGE_CONF", None)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nertools.containers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write containers.conf (and storage.conf) into DIR; prints its path")
    write.add_argument("directory", type=Path)
    write.add_argument("--storage", action="store_true", help="also an image store of its own under DIR")
    args = parser.parse_args(argv)
    config = write_config(args.directory, own_storage=args.storage)
    print(config.containers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
