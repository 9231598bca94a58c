"""A TorchServe handler that does no work: one small JSON answer per request of the batch.

``nertools.latency_floor`` serves it to measure what TorchServe itself costs a request on this machine (HTTP,
the frontend's queue and batching, the worker protocol), with no model in the way.
"""

from __future__ import annotations

from typing import Any


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[dict[str, bool]] | None:
    """``{"answered": true}`` for each request of the batch; None for TorchServe's load-time call without data."""
    if data is None:
        return None
    return [{"answered": True} for _ in data]
