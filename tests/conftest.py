"""Shared fixtures: tiny random checkpoints and an in-process handler driven through TorchServe's own Context."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tiny_models import build_classic_checkpoint, build_hf_checkpoint


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


ROOT = Path(__file__).resolve().parent.parent


def make_context(model_dir: Path, headers: list[dict] | None = None, yaml_config: dict | None = None, metrics=None):
    """A real ts.context.Context, as TorchServe builds it for a worker, with per-request headers."""
    from ts.context import Context, RequestProcessor

    manifest = {"model": {"modelName": "ner_model", "modelVersion": "1.0"}}
    context = Context(
        "ner_model", str(model_dir), manifest, 8, None, "0.12.0", metrics=metrics, model_yaml_config=yaml_config or {}
    )
    if headers is not None:
        context.request_processor = [RequestProcessor(h) for h in headers]
    return context


def load_handler(model_dir: Path, yaml_config: dict | None = None):
    from ner_handler import NerHandler

    handler = NerHandler()
    handler.initialize(make_context(model_dir, yaml_config=yaml_config))
    return handler


def project_metrics_cache():
    """TorchServe's metrics cache loaded from the project's handler/metrics.yaml, as a worker loads it."""
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(config_file_path=str(ROOT / "handler" / "metrics.yaml"))
    cache.initialize_cache()
    return cache


def run_batch(handler, items: list[dict], content_types: list[str | None] | None = None, metrics=None):
    """Call handle() like a TorchServe worker; returns (responses, [(status, phrase)] per request)."""
    content_types = content_types or [None] * len(items)
    headers = [{"Content-Type": ct} if ct else {} for ct in content_types]
    context = make_context(Path("model_dir_unused_by_handle"), headers, metrics=metrics)
    responses = handler.handle(items, context)
    statuses = [context.get_response_status(i) for i in range(len(items))]
    return responses, statuses


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory, tiny_checkpoint, java_available):
    """One real TorchServe for the session serving the tiny checkpoint as ner_model, batches of up to 8 in 50 ms."""
    from tests.integration.server import TorchServe, build_archive

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
