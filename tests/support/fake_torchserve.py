"""A scriptable fake of TorchServe's inference and management APIs, served to the gateway by an httpx2 MockTransport."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import httpx2

from nerserve.protocol import BATCH_SIZE_HEADER, OTHER_SEGMENT, V1_INSTANCES, V1_PREDICTIONS

CAPITALISED = re.compile(r"\b[A-Z][a-z]+\b")

# TorchServe 0.12's own answers, as its frontend words them (ModelManager.addJob, WorkerThread, ts/service.py).
NO_WORKER = (
    503,
    {
        "code": 503,
        "type": "ServiceUnavailableException",
        "message": 'Model "ner_model" has no worker to serve inference request. Please use scale workers API to add '
        "workers.",
    },
)
NO_WORKER_OF_VERSION = (
    503,
    {
        "code": 503,
        "type": "ServiceUnavailableException",
        "message": 'Model "ner_model" Version 2.0 has no worker to serve inference request. Please use scale workers '
        "API to add workers.",
    },
)
WORKER_DIED_507 = (507, {"code": 507, "type": "InternalServerException", "message": "Worker died."})
WORKER_DIED_500 = (500, {"code": 500, "type": "InternalServerException", "message": "Worker died."})
PREDICTION_FAILED = (503, {"code": 503, "type": "InternalServerException", "message": "Prediction failed"})


def fake_entities(text: str) -> list[dict[str, Any]]:
    """The fake model: every capitalised word is a PER. Context-free, so chunking cannot change its answer."""
    return [
        {"label": "PER", "text": m.group(), "start": m.start(), "end": m.end(), "score": 0.9}
        for m in CAPITALISED.finditer(text)
    ]


def fake_segments(text: str) -> list[dict[str, Any]]:
    segments, cursor = [], 0
    for entity in fake_entities(text):
        if entity["start"] > cursor:
            segments.append(
                {
                    "label": OTHER_SEGMENT,
                    "text": text[cursor : entity["start"]],
                    "start": cursor,
                    "end": entity["start"],
                    "score": None,
                }
            )
        segments.append(entity)
        cursor = entity["end"]
    if cursor < len(text):
        segments.append(
            {"label": OTHER_SEGMENT, "text": text[cursor:], "start": cursor, "end": len(text), "score": None}
        )
    return segments


class FakeTorchServe:
    """Stands in for TorchServe's inference and management APIs; counts calls and concurrency.

    ``script(text, attempt)`` may return (status, body) to answer differently, e.g. a 507 on the first attempt.
    ``delays`` maps a word to seconds: a text containing the word is answered that much later (work simulated
    inside the fake, not a wait in a test). ``models`` are the model names it serves predictions under (add the
    document lane to serve it); ``served_by`` records the model of each call, in order.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.cancelled = 0
        self.completed: list[str] = []  # texts answered 200, in completion order
        self.delays: dict[str, float] = {}
        self.script: Callable[[str, int], tuple[int, Any] | None] | None = None
        self.workers: list[dict[str, Any]] = [{"id": "9000", "status": "READY"}]
        self.bodies: list[tuple[bytes, str | None]] = []
        self.models = {"ner_model"}
        self.served_by: list[str] = []

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET" and request.url.path == "/models/ner_model":
            return httpx2.Response(200, json=[{"modelName": "ner_model", "workers": self.workers}])
        model = request.url.path.removeprefix("/predictions/")
        if not request.url.path.startswith("/predictions/") or model not in self.models:
            return httpx2.Response(
                404, json={"code": 404, "type": "ModelNotFoundException", "message": "Model not found"}
            )
        self.served_by.append(model)
        content = request.content
        self.bodies.append((content, request.headers.get("content-type")))
        payload = (
            json.loads(content)
            if request.headers.get("content-type") == "application/json"
            else {"text": content.decode()}
        )
        multi = V1_INSTANCES in payload  # a KServe v1 body of several texts, as the gateway coalesces them
        payloads = payload[V1_INSTANCES] if multi else [payload]
        for one in payloads:
            self.calls.append(one)
            self.attempts[one["text"]] = self.attempts.get(one["text"], 0) + 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            texts = [one["text"] for one in payloads]
            delay = max([seconds for word, seconds in self.delays.items() if any(word in t for t in texts)], default=0)
            await asyncio.sleep(delay or 0.001)
            results: list[Any] = []
            for one in payloads:
                text = one["text"]
                scripted = self.script(text, self.attempts[text]) if self.script is not None else None
                if scripted is not None:
                    status, body = scripted
                    if not multi or status >= 500:  # TorchServe fails a whole request (its batch) with 5xx
                        return httpx2.Response(status, json=body) if body is not None else httpx2.Response(status)
                    results.append(body)
                    continue
                if one.get("format") == "segments":
                    results.append({"segments": fake_segments(text)})
                else:
                    results.append({"entities": fake_entities(text)})
                self.completed.append(text)
            answer = {V1_PREDICTIONS: results} if multi else results[0]
            return httpx2.Response(200, json=answer, headers={BATCH_SIZE_HEADER: str(len(payloads))})
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
