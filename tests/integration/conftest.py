"""Integration tier: a real .mar built by scripts/archive.py, served by a real TorchServe on free ports."""

from __future__ import annotations

import pytest

from tests.integration.server import TorchServe, build_archive


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory, tiny_checkpoint, java_available):
    """TorchServe serving the tiny random checkpoint as ner_model, batches of up to 8 within 50 ms."""
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
