"""The handler in-process, driven through TorchServe's own ``Context`` as a worker drives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nertools.handler_module import load_handler_module
from tests.support.paths import HANDLER_DIR


def make_context(model_dir: Path, headers: list[dict] | None = None, yaml_config: dict | None = None, metrics=None):
    """A real ts.context.Context, as TorchServe builds it for a worker, with per-request headers."""
    from ts.context import Context, RequestProcessor

    manifest = {"model": {"modelName": "ner_model", "modelVersion": "1.0"}}
    context = Context(
        "ner_model",
        str(model_dir),
        manifest,
        8,
        None,
        "0.12.0",
        metrics=metrics,
        model_yaml_config=yaml_config or {},
    )
    if headers is not None:
        context.request_processor = [RequestProcessor(h) for h in headers]
    return context


def load_handler(model_dir: Path, yaml_config: dict | None = None) -> Any:
    handler = load_handler_module().NerHandler()
    handler.initialize(make_context(model_dir, yaml_config=yaml_config))
    return handler


def project_metrics_cache():
    """TorchServe's metrics cache loaded from the project's handler/metrics.yaml, as a worker loads it."""
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(config_file_path=str(HANDLER_DIR / "metrics.yaml"))
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
