"""Shared fixtures: tiny random checkpoints, an in-process handler and one real TorchServe (helpers: tests/support/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.handler_harness import load_handler
from tests.support.podman import BuiltImages, session_images
from tests.support.tiny_models import build_classic_checkpoint, build_hf_checkpoint


def pytest_collection_modifyitems(items):
    """Everything under an integration/ folder starts real servers: mark it, so `-m "not integration"` skips it."""
    for item in items:
        if "/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def java_available():
    if shutil.which("java") is None:
        pytest.fail("Java 17 is required by TorchServe (Debian: apt-get install openjdk-17-jre-headless)")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return build_hf_checkpoint(tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture(scope="session")
def classic_checkpoint(tmp_path_factory) -> Path:
    return build_classic_checkpoint(tmp_path_factory.mktemp("tiny_classic"))


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory, tiny_checkpoint, java_available):
    """One real TorchServe for the session serving the tiny checkpoint as ner_model, batches of up to 8 in 50 ms."""
    from nertools.local_torchserve import TorchServe
    from tests.support.torchserve import build_archive

    workdir = tmp_path_factory.mktemp("ts")
    store = workdir / "model_store"
    build_archive(tiny_checkpoint, store)
    models = (
        'models={"ner_model": {"1.0": {"defaultVersion": true, "marName": "ner_model.mar", "minWorkers": 1, '
        '"maxWorkers": 1, "batchSize": 8, "maxBatchDelay": 50, "responseTimeout": 120}}}'
    )
    server = TorchServe(workdir, store, "ner_model=ner_model.mar", extra_config=models).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_handler(tiny_checkpoint):
    return load_handler(tiny_checkpoint)


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest) -> BuiltImages:
    """Both container images, built once per session into a podman store of the session's own (container tier)."""
    return session_images(request)
