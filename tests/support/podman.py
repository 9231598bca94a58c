"""podman for tests: its own configuration and image store under the test run's temp directory, and the project's
two images built into it once per pytest session.

The store (CONTAINERS_STORAGE_CONF: graphroot and runroot), network definitions and podman's tmp files all live
under a temp directory: tests build from nothing and never see or touch a user's images, containers or networks.
The configuration (nertools.containers) selects runc and cgroupfs and bounds rlimits, which these hosts need.

tests/conftest.py turns ``session_images`` into the session fixture ``images`` (one build per session, shared by
every directory that asks; BuiltImages: .server, .gateway, .podman, .build_seconds)

    images.podman.run("run", "--rm", images.server, "--help")   # podman with the test's env, checked
    images.podman.cmd("kube", "play", "x.yaml")                  # argv, for subprocess calls of your own
    images.podman.env                                            # the environment for those calls
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nertools.containers import write_config
from nertools.images import GATEWAY_IMAGE, SERVER_IMAGE, project_version
from tests.support.paths import ROOT as REPO_ROOT

BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Podman:
    """podman pointed at one directory's configuration and image store."""

    directory: Path
    env: dict[str, str] = field(repr=False)

    def cmd(self, *args: str) -> list[str]:
        return ["podman", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS`` with this store; output captured; AssertionError with stderr when ``check`` fails."""
        result = subprocess.run(
            self.cmd(*args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
        return result

    def output(self, *args: str, timeout: float = 300) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def healthy(self, container: str) -> bool:
        """One run of the container's HEALTHCHECK (no systemd here, so podman never schedules it by itself)."""
        return self.run("healthcheck", "run", container, check=False, timeout=60).returncode == 0

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False, timeout=60)
        return (result.stdout + result.stderr)[-5000:]

    @contextmanager
    def container(self, name: str, *run_args: str) -> Iterator[str]:
        """``podman run -d --name NAME RUN_ARGS``; removed (with its logs in the failure message) afterwards."""
        self.run("run", "-d", "--name", name, *run_args)
        try:
            yield name
        finally:
            self.run("rm", "-f", "-t", "0", name, check=False, timeout=120)

    def reset(self) -> None:
        """Remove every container, image and network of this store, then the directory itself."""
        self.run("rm", "-a", "-f", "-t", "0", check=False, timeout=300)
        self.run("system", "reset", "--force", check=False, timeout=600)
        # The overlay driver leaves its storage directory mounted after a reset; unmounted, the directory can go
        # (a busy mount would make pytest's later clean-up of old temp dirs fail with a warning, an error here).
        for mount in sorted(self.directory.rglob("overlay"), key=lambda path: len(path.parts), reverse=True):
            if mount.is_dir() and os.path.ismount(mount):
                subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def podman_in(directory: Path) -> Podman:
    """podman with a configuration and image store of its own under ``directory``."""
    config = write_config(directory, own_storage=True)
    return Podman(directory=directory.resolve(), env=config.env())


@dataclass(frozen=True)
class BuiltImages:
    podman: Podman
    server: str
    gateway: str
    build_seconds: float
    build_log: Path


def build_images(podman: Podman, log: Path) -> BuiltImages:
    """scripts/build_images.sh into ``podman``'s store (from nothing: base image, wheels, both images)."""
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        result = subprocess.run(
            [str(REPO_ROOT / "scripts" / "build_images.sh"), "--engine", "podman"],
            env=podman.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-5000:]
        raise AssertionError(f"scripts/build_images.sh failed ({result.returncode}):\n{tail}")
    version = project_version((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return BuiltImages(
        podman=podman,
        server=f"{SERVER_IMAGE}:{version}",
        gateway=f"{GATEWAY_IMAGE}:{version}",
        build_seconds=time.monotonic() - started,
        build_log=log,
    )


_IMAGES = pytest.StashKey[BuiltImages]()


def session_images(request: pytest.FixtureRequest) -> BuiltImages:
    """Both images, built once per pytest session into a store of the session's own, removed when it ends."""
    config = request.config
    with suppress(KeyError):
        return config.stash[_IMAGES]
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/setup_test_deps.sh (installs podman, buildah, runc)")
    directory = Path(request.getfixturevalue("tmp_path_factory").mktemp("podman"))
    podman = podman_in(directory / "store")
    config.add_cleanup(podman.reset)
    images = build_images(podman, directory / "build.log")
    config.stash[_IMAGES] = images
    return images
