"""Build the two container images (model server, gateway): the logic behind ``scripts/build_images.sh``.

Steps, each announced on stdout:

1. the demo model's archive ``model_store/ner_model.mar``, built first when missing;
2. a wheelhouse built on the host with the host's own pip configuration (a mirror, a local wheel directory or a
   TLS-intercepting proxy that the host's pip knows about just works): every locked package one of the images needs,
   hash-checked (``pip download --require-hashes --no-deps``), and the project as a wheel;
3. a build context under ``.cache/images/context/``: the wheels, one hash-locked requirements file per image (the
   part of ``requirements.lock`` that image needs: the closure of its root packages' declared dependencies), the
   model server's in-image ``config.properties``, logging configuration and entry point, the archive;
4. the base image: Debian bookworm slim from a registry where one answers; where none does, the same release built
   from Debian's package repository with mmdebstrap and imported as ``localhost/debian-base:bookworm``;
5. ``podman build`` (or ``docker build``) of ``deploy/images/*.Containerfile`` in docker format (HEALTHCHECK kept),
   tagged ``localhost/ner-model-server:<version>`` / ``localhost/ner-gateway:<version>`` and ``:latest``.

The engine is podman or docker, whichever works (``podman info`` / ``docker info``; a docker client without a daemon
does not count). podman runs with a ``containers.conf`` of the project's (nertools.containers: runc, cgroupfs) unless
``CONTAINERS_CONF`` is already set; images go to the engine's default image store unless
``CONTAINERS_STORAGE_CONF`` says otherwise (the tests point it at their own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nertools.paths import ROOT as PROJECT_ROOT

REGISTRY_BASE = "docker.io/library/debian:bookworm-slim"
LOCAL_BASE = "localhost/debian-base:bookworm"
SERVER_IMAGE = "localhost/ner-model-server"
GATEWAY_IMAGE = "localhost/ner-gateway"
CONTAINERFILES = PROJECT_ROOT / "deploy" / "images"
# How long a registry gets to deliver the base image before the mmdebstrap path is taken.
PULL_TIMEOUT_S = 120

# The packages each image needs directly; their declared dependencies (as installed in this environment, with
# markers evaluated for it: the images run the same Python 3.11 on linux-x86_64) complete each set.
SERVER_ROOTS = (
    "torch",
    "torchserve",
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    # TorchServe 0.12's workers import yaml without declaring it (workers die with "No module named 'yaml'").
    "PyYAML",
)
GATEWAY_ROOTS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "websockets",
    "sse-starlette",
    "httpx2",
    "pydantic",
    "pydantic-settings",
    "python-dotenv",
)

# The model server's in-image configuration: the project's config.properties with these keys replaced. Everything
# listens on all interfaces inside the container; state, logs and metrics go to /tmp (writable with a read-only
# root); the model API (registering archives from URLs) is off, since the management port is now reachable by
# anything on the container network.
IMAGE_MODEL_STORE = "/models"
IMAGE_CONFIG_DIR = "/opt/ner"
SERVER_OVERRIDES = {
    "inference_address": "http://0.0.0.0:8080",
    "management_address": "http://0.0.0.0:8081",
    "metrics_address": "http://0.0.0.0:8082",
    "model_store": IMAGE_MODEL_STORE,
    "metrics_config": f"{IMAGE_CONFIG_DIR}/metrics.yaml",
    "enable_model_api": "false",
}


class BuildError(RuntimeError):
    """A step that cannot go on; the message says what to do."""


# --- pure parts (tests/nertools/test_images.py) -----------------------------------------------------------------


def project_version(pyproject_text: str) -> str:
    """``[project] version`` of a pyproject.toml."""
    version = tomllib.loads(pyproject_text).get("project", {}).get("version")
    if not isinstance(version, str) or not version:
        raise BuildError("pyproject.toml has no [project] version")
    return version


def image_tags(name: str, version: str) -> list[str]:
    return [f"{name}:{version}", f"{name}:latest"]


@dataclass(frozen=True)
class LockEntry:
    """One package of requirements.lock: its name as written, version and the text of its entry (hashes included)."""

    name: str
    version: str
    text: str


def parse_lock(text: str) -> dict[str, LockEntry]:
    """requirements.lock's entries by canonical name (``name==version \\`` followed by ``--hash`` lines)."""
    entries: dict[str, LockEntry] = {}
    current: list[str] = []

    def flush() -> None:
        if current:
            head = current[0].split("\\")[0].strip()
            name, _, version = head.partition("==")
            entries[canonicalize_name(name)] = LockEntry(
                name.strip(), version.split(";")[0].strip(), "\n".join(current)
            )
            current.clear()

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if current:
                current.append(line)
            continue
        flush()
        current.append(line)
    flush()
    return entries


def dependency_closure(roots: Iterable[str], requires: Callable[[str], Iterable[str]]) -> set[str]:
    """Canonical names of ``roots`` and everything they need: ``requires(name)`` gives a package's requirement strings
    (``Requires-Dist``); those whose marker does not hold here (extras included: none is asked for) are left out."""
    wanted: set[str] = set()
    todo = [canonicalize_name(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        for spec in requires(name):
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(requirement.name))
    return wanted


def installed_requires(name: str) -> list[str]:
    """``Requires-Dist`` of an installed distribution (this environment is installed from the same lock)."""
    try:
        return list(metadata.distribution(name).requires or [])
    except metadata.PackageNotFoundError as err:
        raise BuildError(f"{name} is not installed in {sys.prefix}; run scripts/setup_env.sh") from err


def select_lock(lock: Mapping[str, LockEntry], names: Iterable[str], image: str) -> str:
    """The hash-locked requirements file of one image: the lock's entries for ``names``, in the lock's order."""
    names = set(names)
    missing = sorted(names - set(lock))
    if missing:
        raise BuildError(f"the {image} image needs {', '.join(missing)}, which requirements.lock does not pin")
    header = f"# The {image} image's part of requirements.lock (written by nertools.images; do not edit).\n"
    return header + "\n".join(entry.text for key, entry in lock.items() if key in names) + "\n"


def override_properties(text: str, overrides: Mapping[str, str]) -> str:
    """``text`` (a config.properties) with each key of ``overrides`` set to its value: lines that set the key are
    replaced in place (comments kept), keys the file lacks are appended."""
    out: list[str] = []
    done: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        key = ""
        if stripped and stripped[0] not in "#!":
            cut = min((i for i in (stripped.find("="), stripped.find(":")) if i >= 0), default=-1)
            key = stripped[:cut].strip() if cut >= 0 else stripped
        if key in overrides:
            if key not in done:
                out.append(f"{key}={overrides[key]}")
                done.add(key)
            continue
        out.append(line)
    extra = [f"{key}={value}" for key, value in overrides.items() if key not in done]
    if extra:
        out += ["# Set for the container image (nertools.images):", *extra]
    return "\n".join(out) + "\n"


def server_config(project_config: str) -> str:
    header = (
        "# The model server image's TorchServe configuration, generated from the project's config.properties by\n"
        "# nertools.images (inside the container: all interfaces, model store /models, model API off). Replace it\n"
        "# by mounting a file here or naming another with TS_CONFIG_FILE.\n"
    )
    return header + override_properties(project_config, SERVER_OVERRIDES)


# --- engine and base image ----------------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], bool]


def command_works(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60) -> bool:
    """Whether ``argv`` runs and exits 0 (quietly; False when it is missing or hangs)."""
    try:
        result = subprocess.run(
            list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def choose_engine(wanted: str | None, works: Runner, which: Callable[[str], str | None] = shutil.which) -> str:
    """``wanted`` if it works, else the first of podman and docker whose ``info`` works."""
    candidates = [wanted] if wanted else ["podman", "docker"]
    tried = []
    for engine in candidates:
        if which(engine) is None:
            tried.append(f"{engine}: not installed")
            continue
        if works([engine, "info"]):
            return engine
        tried.append(
            f"{engine}: installed, but `{engine} info` fails" + (" (no daemon?)" if engine == "docker" else "")
        )
    raise BuildError(
        "no working container engine (" + "; ".join(tried) + "). Install podman (scripts/setup_test_deps.sh "
        "installs podman, buildah, runc and mmdebstrap on Debian) or start a docker daemon."
    )


def mmdebstrap_command(output: Path, release: str = "bookworm") -> list[str]:
    """A minimal Debian root file system as a tar, trimmed like the official slim image (no docs, man pages or
    locales), from Debian's default mirror."""
    excludes = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
    return [
        "mmdebstrap",
        "--variant=apt",
        "--format=tar",
        *[f"--dpkgopt=path-exclude={pattern}" for pattern in excludes],
        # Copyright files stay (licences), as in the official image.
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        release,
        str(output),
    ]


# --- the build ----------------------------------------------------------------------------------------------------


@dataclass
class Build:
    engine: str
    env: dict[str, str]
    root: Path = PROJECT_ROOT
    python: str = sys.executable

    def say(self, message: str) -> None:
        print(f"==> {message}", flush=True)

    def run(self, argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        result = subprocess.run(list(argv), env={**self.env, **(env or {})}, cwd=cwd, check=False)
        if result.returncode != 0:
            raise BuildError(f"`{' '.join(argv[:3])} ...` failed with exit status {result.returncode}")

    def engine_cmd(self, *args: str) -> list[str]:
        return [self.engine, *args]

    def image_exists(self, image: str) -> bool:
        if self.engine == "podman":
            return command_works(self.engine_cmd("image", "exists", image), self.env)
        return command_works(self.engine_cmd("image", "inspect", image), self.env)

    # 1. archive
    def ensure_archive(self) -> Path:
        mar = self.root / "model_store" / "ner_model.mar"
        if mar.is_file():
            self.say(f"model archive: {mar.relative_to(self.root)} (present)")
            return mar
        self.say("model archive missing: building the demo model (cached) and model_store/ner_model.mar")
        self.run([self.python, str(self.root / "scripts" / "build_demo_model.py")])
        self.run(
            [
                self.python,
                str(self.root / "scripts" / "archive.py"),
                "--model-dir",
                str(self.root / "model_related_data"),
                "--version",
                "1.0",
                "--export-path",
                str(mar.parent),
            ]
        )
        return mar

    # 2 + 3. wheelhouse and context
    def prepare_context(self, context: Path, mar: Path) -> None:
        """Fill ``context`` (a fresh directory: concurrent builds never share one) with what the Containerfiles
        COPY. Wheels are downloaded into the cached wheelhouse .cache/images/wheelhouse/ and linked from there."""
        lock = parse_lock((self.root / "requirements.lock").read_text(encoding="utf-8"))
        server = select_lock(lock, dependency_closure(SERVER_ROOTS, installed_requires), "model server")
        gateway = select_lock(lock, dependency_closure(GATEWAY_ROOTS, installed_requires), "gateway")
        (context / "server-requirements.lock").write_text(server, encoding="utf-8")
        (context / "gateway-requirements.lock").write_text(gateway, encoding="utf-8")
        both = context / "all-requirements.lock"
        both.write_text(server + gateway, encoding="utf-8")
        wheelhouse = self.root / ".cache" / "images" / "wheelhouse"
        wheelhouse.mkdir(parents=True, exist_ok=True)
        self.say(f"wheelhouse: the images' locked packages with this host's pip configuration -> {wheelhouse}")
        # Files already there are checked against their hashes and kept: a second build downloads nothing.
        pip = [self.python, "-m", "pip"]
        self.run([*pip, "download", "--quiet", "--require-hashes", "--no-deps", "-r", str(both), "-d", str(wheelhouse)])
        wheels = context / "wheels"
        wheels.mkdir()
        for wheel in wheelhouse.iterdir():
            link_or_copy(wheel, wheels / wheel.name)
        self.say("wheelhouse: the project as a wheel")
        source = context / "source"
        copy_project_source(self.root, source)
        self.run(
            [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(context / "project"), "."],
            cwd=source,
            # Fixed timestamps inside the wheel: the same sources give the same wheel, so the image layer that
            # installs it is reused by the next build.
            env={"SOURCE_DATE_EPOCH": "315532800"},
        )
        shutil.rmtree(source)
        project_config = (self.root / "config.properties").read_text(encoding="utf-8")
        (context / "config.properties").write_text(server_config(project_config), encoding="utf-8")
        for name in ("log4j2.xml", "model_server.py"):
            shutil.copyfile(CONTAINERFILES / name, context / name)
        shutil.copyfile(self.root / "handler" / "metrics.yaml", context / "metrics.yaml")
        link_or_copy(mar, context / "ner_model.mar")

    # 4. base image
    def base_image(self, choice: str, workdir: Path) -> tuple[str, bool]:
        """The base image to build FROM and whether the build must not pull (a local image)."""
        if choice in ("auto", "registry"):
            if self.image_exists(REGISTRY_BASE):
                self.say(f"base image: {REGISTRY_BASE} (already in the image store)")
                return REGISTRY_BASE, True
            self.say(f"base image: pulling {REGISTRY_BASE} (up to {PULL_TIMEOUT_S} s)")
            if command_works(self.engine_cmd("pull", REGISTRY_BASE), self.env, timeout=PULL_TIMEOUT_S):
                self.say(f"base image: {REGISTRY_BASE} from its registry")
                return REGISTRY_BASE, True
            if choice == "registry":
                raise BuildError(f"could not pull {REGISTRY_BASE} and --base registry was asked for")
            self.say("base image: no image registry reachable")
        if self.image_exists(LOCAL_BASE):
            self.say(f"base image: {LOCAL_BASE} (built earlier from Debian's repository)")
            return LOCAL_BASE, True
        if shutil.which("mmdebstrap") is None:
            raise BuildError("no registry answered and mmdebstrap is missing (apt-get install mmdebstrap)")
        self.say(
            f"base image: building Debian bookworm from Debian's package repository with mmdebstrap -> {LOCAL_BASE}"
        )
        tar = workdir / "debian-bookworm.tar"
        self.run(mmdebstrap_command(tar))
        self.run(self.engine_cmd("import", "--change", 'CMD ["/bin/bash"]', str(tar), LOCAL_BASE))
        tar.unlink()
        return LOCAL_BASE, True

    # 5. images
    def build_image(
        self, containerfile: Path, context: Path, name: str, version: str, base: str, no_pull: bool
    ) -> None:
        tags = image_tags(name, version)
        self.say(f"building {tags[0]} from {containerfile.relative_to(self.root)}")
        argv = self.engine_cmd("build", "-f", str(containerfile), "--build-arg", f"BASE_IMAGE={base}")
        if self.engine == "podman":
            # docker format keeps HEALTHCHECK (OCI drops it); layers cached for the next build.
            argv += ["--format", "docker", "--layers"]
            if no_pull:
                argv.append("--pull=never")
        for tag in tags:
            argv += ["-t", tag]
        self.run([*argv, str(context)])


# What pyproject.toml packages (and its readme): the project wheel is built from a copy of just these, so concurrent
# builds do not share setuptools' build/ directory and the checkout gets no build/ or *.egg-info of ours.
PROJECT_SOURCES = ("pyproject.toml", "README.md", "model.py", "handler/nerserve", "gateway", "nertools", "demo_model")


def copy_project_source(root: Path, target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PROJECT_SOURCES:
        path = root / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=ignore)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / name)


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def engine_env(engine: str, root: Path) -> dict[str, str]:
    """The environment the engine runs in: for podman, the project's containers.conf unless CONTAINERS_CONF is
    set (runc and rlimits podman can grant; nertools.containers says why)."""
    env = dict(os.environ)
    if engine == "podman" and "CONTAINERS_CONF" not in env:
        from nertools.containers import write_config

        config = write_config(root / ".cache" / "containers", own_storage=False)
        env["CONTAINERS_CONF"] = str(config.containers)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/build_images.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["podman", "docker"], default=os.environ.get("NER_ENGINE") or None)
    parser.add_argument("--base", choices=["auto", "registry", "debian"], default="auto")
    parser.add_argument("--only", choices=["server", "gateway"], default=None)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        version = project_version((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        probe_env = engine_env("podman", PROJECT_ROOT)
        engine = choose_engine(args.engine, lambda cmd: command_works(cmd, probe_env))
        build = Build(engine=engine, env=engine_env(engine, PROJECT_ROOT))
        build.say(
            f"engine: {engine}" + (f" (CONTAINERS_CONF={build.env['CONTAINERS_CONF']})" if engine == "podman" else "")
        )
        mar = build.ensure_archive()
        cache = PROJECT_ROOT / ".cache" / "images"
        cache.mkdir(parents=True, exist_ok=True)
        # The build context is a fresh directory beside the wheelhouse (same file system: wheels are hard links).
        with tempfile.TemporaryDirectory(prefix="context-", dir=cache) as workdir:
            context = Path(workdir)
            build.prepare_context(context, mar)
            base, no_pull = build.base_image(args.base, context)
            built = []
            if args.only in (None, "server"):
                server_file = CONTAINERFILES / "model-server.Containerfile"
                build.build_image(server_file, context, SERVER_IMAGE, version, base, no_pull)
                built.append(f"{SERVER_IMAGE}:{version}")
            if args.only in (None, "gateway"):
                gateway_file = CONTAINERFILES / "gateway.Containerfile"
                build.build_image(gateway_file, context, GATEWAY_IMAGE, version, base, no_pull)
                built.append(f"{GATEWAY_IMAGE}:{version}")
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    build.say(f"built {', '.join(built)} (and :latest) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
