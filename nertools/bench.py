"""Benchmark NER serving paths side by side on one model and one sentence mix, in one run.

Measures, in this order: the transformers pipeline in-process (batch_size 1 and 32; the baseline), the raw
ceiling (pre-tokenised, length-sorted, batched forward passes only), our handler in-process (no server), the
served path (TorchServe REST at several client concurrencies, async client), and, when a gateway URL is given,
the gateway's WebSocket path at the same concurrencies. Every throughput is also given as a ratio to the
pipeline with batch_size 32 measured in the same run, so results hold on a noisy machine.

Needs a running server (./scripts/serve.sh) for the served rows. Writes JSON, a Markdown table and a PNG plot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np

from nertools.handler_module import load_handler_module
from nertools.http_load import Connection
from nertools.paths import CHECKPOINT_DIR, MODEL_CONFIG, ROOT

T = TypeVar("T")

BASELINE = "hf_pipeline_bs32"
# The raw ceiling again with handler.linear_kernels torch (fp32 only): the ceiling as transformers' own Linear
# layers run it, beside raw_forward_ceiling, which runs the kernels the server runs.
TORCH_LINEAR_CEILING = "raw_forward_ceiling_torch_linear"
DEFAULT_INFERENCE = "http://127.0.0.1:8080"
SHORT_SENTENCE = "Angela Merkel met Tim Cook in Berlin."
RESULT_KEYS = (
    "name",
    "kind",
    "texts",
    "seconds",
    "texts_per_s",
    "vs_baseline",
    "concurrency",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "errors",
)  # served rows add client_cpu_share

logger = logging.getLogger("bench")


# --- pure helpers (unit-tested) ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method); q in [0, 100]."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def result_row(
    name: str,
    kind: str,
    texts: int,
    seconds: float,
    latencies_ms: list[float] | None = None,
    concurrency: int | None = None,
    errors: int = 0,
) -> dict[str, Any]:
    latencies_ms = latencies_ms or []
    return {
        "name": name,
        "kind": kind,
        "texts": texts,
        "seconds": round(seconds, 4),
        "texts_per_s": round(texts / seconds, 2) if seconds > 0 else math.nan,
        "vs_baseline": None,
        "concurrency": concurrency,
        "p50_ms": round(percentile(latencies_ms, 50), 2) if latencies_ms else None,
        "p95_ms": round(percentile(latencies_ms, 95), 2) if latencies_ms else None,
        "p99_ms": round(percentile(latencies_ms, 99), 2) if latencies_ms else None,
        "errors": errors,
    }


def add_ratios(rows: list[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    base = next((r for r in rows if r["name"] == baseline), None)
    for row in rows:
        row["vs_baseline"] = round(row["texts_per_s"] / base["texts_per_s"], 3) if base else None
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | clients | texts/s | vs HF pipeline bs32 | p50 ms | p95 ms | p99 ms | errors "
        "| core-ms per text: client / frontend / workers / gateway |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = (
            " / ".join(f"{r[f'{role}_core_ms']:.2f}" for role in ("client", "frontend", "workers", "gateway"))
            if "client_core_ms" in r
            else "-"
        )
        cells = [
            r["name"],
            r["concurrency"] or "-",
            f"{r['texts_per_s']:.1f}",
            f"{r['vs_baseline']:.2f}x" if r["vs_baseline"] is not None else "-",
            r["p50_ms"] if r["p50_ms"] is not None else "-",
            r["p95_ms"] if r["p95_ms"] is not None else "-",
            r["p99_ms"] if r["p99_ms"] is not None else "-",
            r["errors"],
            cpu,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def ceiling_ratios(rows: list[dict[str, Any]], ceiling_name: str = "raw_forward_ceiling") -> dict[str, float]:
    """Each served row's throughput over a raw ceiling's, by ``NAME cCLIENTS`` (the issue's goals read these):
    ``raw_forward_ceiling`` runs the served kernels, ``TORCH_LINEAR_CEILING`` torch's own Linear."""
    ceiling = next(r for r in rows if r["name"] == ceiling_name)["texts_per_s"]
    return {
        f"{r['name']} c{r['concurrency']}": round(r["texts_per_s"] / ceiling, 3) for r in rows if r["kind"] == "served"
    }


# The generator also writes lists, chat, paragraphs and long documents for training; the workloads take its one-line
# texts under this many characters as their sentences and make their own documents.
SENTENCE_MAX_CHARS = 300


def generated_sentences(count: int, seed: int) -> list[str]:
    """``count`` distinct one-line texts of under ``SENTENCE_MAX_CHARS`` characters from the project's generator, in
    its order. A seed of its own, so the benchmark's sentences are not the demo model's training sentences."""
    from demo_model.corpus import generate_corpus

    unique: dict[str, None] = {}
    size = count
    while len(unique) < count:
        size *= 2
        texts = (example.text for example in generate_corpus(size, seed=seed))
        unique = dict.fromkeys(text for text in texts if "\n" not in text and len(text) < SENTENCE_MAX_CHARS)
    return list(unique)[:count]


def build_workload(seed: int, sentences: int, documents: int) -> list[str]:
    """A fixed mix: short and medium sentences from the project's generator, plus a few multi-paragraph documents."""
    rng = random.Random(seed)
    pool = generated_sentences(sentences + documents * 40, seed)
    rng.shuffle(pool)
    texts = pool[:sentences]
    for d in range(documents):
        body = pool[sentences + d * 40 : sentences + (d + 1) * 40]
        paragraphs = [" ".join(body[i : i + 5]) for i in range(0, len(body), 5)]
        texts.append("\n\n".join(paragraphs))
    rng.shuffle(texts)
    return texts


def short_workload(seed: int, count: int) -> list[str]:
    """``count`` distinct short sentences from the project's generator (no documents): the workload most users
    send. Distinct, so repeated rounds never send a text twice."""
    texts = generated_sentences(count, seed)
    random.Random(seed).shuffle(texts)
    return texts


def latency_mix(seed: int, requests: int, every: int, document_chars: int) -> list[tuple[str, str]]:
    """``requests`` (kind, text) pairs in sending order: every ``every``-th a document of ``document_chars``
    characters (paragraphs of generated sentences, cut at a word), the rest short sentences."""
    pool = generated_sentences(max(requests, 400), seed)
    rng = random.Random(seed)
    mix: list[tuple[str, str]] = []
    for index in range(requests):
        if (index + 1) % every:
            mix.append(("short", pool[index % len(pool)]))
            continue
        sentences: list[str] = []
        while sum(len(s) + 1 for s in sentences) < document_chars:
            sentences.append(rng.choice(pool))
        paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
        mix.append(("document", "\n\n".join(paragraphs)[:document_chars].rsplit(" ", 1)[0]))
    return mix


def latency_rows(latencies: dict[str, list[float]], errors: dict[str, int], seconds: float) -> dict[str, Any]:
    """Percentiles per kind of text and the tail ratio the reliability goal reads (short p99 / short p50)."""
    rows = {
        kind: {
            "requests": len(values),
            "errors": errors.get(kind, 0),
            "p50_ms": round(percentile(values, 50), 1),
            "p95_ms": round(percentile(values, 95), 1),
            "p99_ms": round(percentile(values, 99), 1),
        }
        for kind, values in sorted(latencies.items())
    }
    short = rows.get("short")
    return {
        "seconds": round(seconds, 2),
        "kinds": rows,
        "short_p99_over_p50": round(short["p99_ms"] / short["p50_ms"], 2) if short else None,
    }


def with_reference(mixed: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """``mixed`` (latency_rows of the mix) with the short-only reference run beside it, and the short texts' tail
    in the mix over the reference's percentiles.

    The mix's own short p50 is not a fixed yardstick: in a closed loop most clients wait on documents at any time,
    so fewer short texts are in flight and their p50 falls as documents get slower. The same clients sending only
    the short texts give the latency a short text has when no document is served at all."""
    short, alone = mixed["kinds"].get("short"), reference["kinds"].get("short")
    result = dict(mixed, short_only=reference["kinds"], short_only_seconds=reference["seconds"])
    if short and alone:
        result["short_p99_over_short_only_p50"] = round(short["p99_ms"] / alone["p50_ms"], 2)
        result["short_p99_over_short_only_p99"] = round(short["p99_ms"] / alone["p99_ms"], 2)
    return result


def drained(queue: asyncio.Queue[T]) -> Iterator[T]:
    """The queue's items until it is empty: the clients of a closed-loop load share one queue, each taking the next
    item as it finishes the last."""
    while True:
        try:
            yield queue.get_nowait()
        except asyncio.QueueEmpty:
            return


async def bench_latency_mix(
    url: str, mix: list[tuple[str, str]], clients: int, token: str | None = None, document_url: str | None = None
) -> dict[str, Any]:
    """``clients`` closed-loop REST clients sending ``mix`` in order (documents to ``document_url`` when given);
    latency per kind of text. Each client keeps one ``nertools.http_load.Connection`` per URL it sends to."""
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in mix:
        queue.put_nowait(item)
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    headers = [("Authorization", f"Bearer {token}")] if token else []
    # Each client's connections, one per URL it sends to.
    own = [{target: Connection(target) for target in {url, document_url or url}} for _ in range(clients)]

    async def worker(connections: dict[str, Connection]) -> None:
        for kind, text in drained(queue):
            target = document_url if document_url and kind == "document" else url
            body = json.dumps({"text": text}).encode("utf-8")
            started = time.perf_counter()
            status, _ = await connections[target].post(body, headers=headers)
            latencies.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
            errors[kind] = errors.get(kind, 0) + (status != 200)

    try:
        warm = json.dumps({"text": SHORT_SENTENCE}).encode("utf-8")
        await own[0][url].post(warm, headers=headers)  # the warm path
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:  # one client failing stops the others
            for connections in own:
                group.create_task(worker(connections))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(connection.close() for connections in own for connection in connections.values()))
    return latency_rows(latencies, errors, seconds)


# --- in-process measurements -------------------------------------------------------------------------------


def bench_pipeline(model_dir: Path, texts: list[str], batch_size: int) -> dict[str, Any]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    ner = pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first", device=-1, stride=128
    )
    ner(texts[:4], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    ner(texts, batch_size=batch_size)
    return result_row(f"hf_pipeline_bs{batch_size}", "in-process", len(texts), time.perf_counter() - started)


def served_torch_threads() -> int:
    """The intra-op threads of each served worker (handler/model_config.yaml; 0 means torch's default)."""
    import torch
    import yaml

    config = yaml.safe_load(MODEL_CONFIG.read_text(encoding="utf-8")) or {}
    return int((config.get("handler") or {}).get("torch_threads") or 0) or torch.get_num_threads()


def load_handler(model_dir: Path, quantization: str = "none", linear_kernels: str = "onednn") -> Any:
    """The project's handler, initialised on ``model_dir`` as a TorchServe worker initialises it (``linear_kernels``:
    handler.linear_kernels, which applies to fp32 only)."""
    from ts.context import Context

    handler = load_handler_module().NerHandler()
    config = {"handler": {"quantization": quantization, "linear_kernels": linear_kernels}}
    handler.initialize(Context("ner_model", str(model_dir), {}, 32, None, "0.12.0", model_yaml_config=config))
    return handler


def handler_f1(handler: Any) -> float:
    """Micro F1 of the handler on the project's evaluation set: what a faster path costs in accuracy."""
    from demo_model.evaluation import EntityDict, evaluate, load_eval_set

    def predict(texts: list[str]) -> list[list[EntityDict]]:
        responses = handler.handle([{"body": {"text": t}} for t in texts], handler_context())
        return [[{"label": e["label"], "start": e["start"], "end": e["end"]} for e in r["entities"]] for r in responses]

    micro = cast(dict[str, float], evaluate(predict, load_eval_set())["micro"])
    return round(micro["f1"], 4)


def bench_raw_ceiling(handler: Any, texts: list[str], batch_size: int = 32) -> dict[str, Any]:
    """Forward passes only, padded (transformers' forward, as the issue defines the ceiling), on the handler's
    windows of all ``texts`` tokenised beforehand and sorted by length across the whole workload
    (``ceiling_batches``). The server's padding-free forward can beat it: that is the point of the goals above 1."""
    import torch

    batches = ceiling_batches(handler, texts, batch_size)
    tensors = [(torch.from_numpy(ids), torch.from_numpy(mask)) for ids, mask in batches]
    with torch.inference_mode():
        handler.model(*tensors[0])
        started = time.perf_counter()
        for ids, mask in tensors:
            handler.model(ids, mask)
    return result_row("raw_forward_ceiling", "in-process", len(texts), time.perf_counter() - started)


def ceiling_batches(handler: Any, texts: list[str], batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, attention_mask) of the ceiling's passes: every window the handler's preprocess makes of
    ``texts`` (with [CLS]/[SEP]), sorted by length across the whole workload and grouped as the handler's padded
    planner groups them (a new pass where a row would be more than half padding, under its padded-token budget:
    a few document windows must not pad 30 sentences to 512 pieces), then cut into batches of ``batch_size``."""
    from nerserve.batch import plan_sub_batches

    batch = handler.preprocess([{"body": {"text": text}} for text in texts])
    rows = [p.input_ids[r, :length] for p in batch.passes for r, length in enumerate(p.lengths)]
    groups = plan_sub_batches([len(row) for row in rows], handler.settings.tokens_per_forward)
    return [
        padded_batch([rows[i] for i in group[start : start + batch_size]])
        for group in groups
        for start in range(0, len(group), batch_size)
    ]


def padded_batch(rows: list[np.ndarray], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` padded to the longest one: (input_ids, attention_mask)."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    return ids, mask


def bench_handler(handler: Any, texts: list[str], batch_size: int = 32) -> dict[str, Any]:
    """The handler's whole handle() (parse, tokenise, window, forward, decode, JSON-ready dicts) per batch."""
    items = [{"body": {"text": t}} for t in texts]
    handler.handle(items[:batch_size], handler_context())
    started = time.perf_counter()
    for i in range(0, len(items), batch_size):
        handler.handle(items[i : i + batch_size], handler_context())
    return result_row(f"our_handler_bs{batch_size}", "in-process", len(texts), time.perf_counter() - started)


def handler_context() -> Any:
    from ts.context import Context

    return Context("ner_model", ".", {}, 32, None, "0.12.0")


def single_forward_latency(handler: Any, threads: int, runs: int = 200, idle_s: float = 0.0) -> list[float]:
    """Milliseconds of the forward pass the handler runs for the short sentence alone (tokenised and planned
    beforehand: packed or padded as its settings say), on ``threads`` intra-op threads (restored afterwards); with
    ``idle_s``, each pass after sleeping that long, as a lone client's requests find a served worker."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _forward_latency(handler, runs, idle_s)
    finally:
        torch.set_num_threads(before)


def _forward_latency(handler: Any, runs: int, idle_s: float) -> list[float]:
    batch = handler.preprocess([{"body": {"text": SHORT_SENTENCE}}])
    out = []
    for _ in range(runs + 5):
        if idle_s:
            time.sleep(idle_s)
        started = time.perf_counter()
        handler.inference(batch)
        out.append((time.perf_counter() - started) * 1000)
    return out[5:]


# --- served measurements -----------------------------------------------------------------------------------


def instances_bodies(texts: list[str], per_request: int) -> list[dict[str, Any]]:
    """``texts`` as KServe v1 bodies of ``per_request`` texts each (the last one holds what is left)."""
    if per_request < 1:
        raise ValueError(f"texts per request must be >= 1, got {per_request}")
    return [{"instances": texts[i : i + per_request]} for i in range(0, len(texts), per_request)]


def failed_texts(status: int, answer: Any, body: dict[str, Any]) -> int:
    """How many texts of ``body`` failed: all of them unless the status is 200; for an ``instances`` body, also each
    prediction that is an error body (a per-text error inside a 200 answer)."""
    texts = len(body["instances"]) if "instances" in body else 1
    if status != 200:
        return texts
    if answer is None:
        return 0
    predictions = answer.get("predictions", []) if isinstance(answer, dict) else []
    return texts - len(predictions) + sum(1 for p in predictions if isinstance(p, dict) and "code" in p)


async def bench_rest(
    url: str, texts: list[str], concurrency: int, name: str = "torchserve_rest", texts_per_request: int = 1
) -> dict[str, Any]:
    """``concurrency`` REST clients posting ``texts`` to ``url`` (a TorchServe on this host, for the CPU figures):
    one text per request as ``{"text": ...}``, or ``texts_per_request`` > 1 texts per KServe v1 ``instances`` body
    (then latencies are per request, throughput and CPU per text). Each client is one kept-alive
    ``nertools.http_load.Connection`` (the load generator shares the server's cores: it must cost little)."""
    bodies = (
        [{"text": text} for text in texts] if texts_per_request == 1 else instances_bodies(texts, texts_per_request)
    )
    queue: asyncio.Queue[tuple[dict[str, Any], bytes]] = asyncio.Queue()
    for body in bodies:  # encoded beforehand, as a load generator prepares its requests
        queue.put_nowait((body, json.dumps(body).encode("utf-8")))
    latencies: list[float] = []
    errors = 0
    # One kept-alive connection per client, opened and used once before the clock starts (connection + warm path).
    connections = [Connection(url) for _ in range(concurrency)]
    warm = json.dumps({"text": SHORT_SENTENCE}).encode("utf-8")

    async def client(connection: Connection) -> None:
        nonlocal errors
        for body, content in drained(queue):
            started = time.perf_counter()
            status, answer = await connection.post(content)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += failed_texts(status, json.loads(answer) if "instances" in body else None, body)

    try:
        await asyncio.gather(*(connection.post(warm) for connection in connections))
        server_before = server_cpu_seconds(url)
        started, cpu_started = time.perf_counter(), time.process_time()
        async with asyncio.TaskGroup() as clients:  # one client failing stops the others before the connections close
            for connection in connections:
                clients.create_task(client(connection))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_after = server_cpu_seconds(url)
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    row = result_row(name, "served", len(texts), seconds, latencies, concurrency, errors)
    row["texts_per_request"] = texts_per_request
    row["client_cpu_share"] = round(cpu / seconds, 3)  # the load generator shares the machine's cores
    row.update(cpu_per_request(server_before, server_after, cpu, len(texts)))
    return row


async def bench_websocket(
    url: str, texts: list[str], concurrency: int, token: str | None, inference_url: str = DEFAULT_INFERENCE
) -> dict[str, Any]:
    """`concurrency` WebSocket connections, each with one message in flight at a time (through the gateway at
    ``url``, in front of the TorchServe at ``inference_url``)."""
    import websockets

    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(texts):
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"} if token else None

    async def connection() -> None:
        nonlocal errors
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            for index, text in drained(queue):
                started = time.perf_counter()
                await ws.send(json.dumps({"id": index, "text": text}))
                reply = json.loads(await ws.recv())
                latencies.append((time.perf_counter() - started) * 1000)
                errors += "error" in reply

    gateway_url = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    server_before = server_cpu_seconds(inference_url, gateway_url)
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server_after = server_cpu_seconds(inference_url, gateway_url)
    row = result_row("gateway_websocket", "served", len(texts), seconds, latencies, concurrency, errors)
    row["client_cpu_share"] = round(cpu / seconds, 3)
    row.update(cpu_per_request(server_before, server_after, cpu, len(texts)))
    return row


def process_role(cmdline: str) -> str | None:
    """Which part of the served path a process is, from its command line (None: not one of ours)."""
    if "model_service_worker" in cmdline:
        return "workers"
    if "org.pytorch.serve.ModelServer" in cmdline:
        return "frontend"
    if "-m gateway" in cmdline:
        return "gateway"
    return None


def inference_of(predict_url: str) -> str:
    """The inference API's base URL of a predictions URL."""
    parts = urlsplit(predict_url)
    return f"{parts.scheme}://{parts.netloc}"


def listening_process(url: str) -> Any:
    """The process listening on ``url``'s port on this host (a psutil.Process), or None."""
    import psutil

    port = urlsplit(url).port
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    return None


def server_cpu_seconds(inference_url: str, gateway_url: str | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the TorchServe listening at ``inference_url`` (its Java frontend,
    and its workers, the frontend's children) and by the gateway at ``gateway_url``: other servers on the host
    (a test run's) are not counted."""
    import psutil

    totals = dict.fromkeys(("frontend", "workers", "gateway"), 0.0)
    parts: list[tuple[str, Any]] = []
    frontend = listening_process(inference_url)
    if frontend is not None:
        parts.append(("frontend", frontend))
        parts += [("workers", child) for child in frontend.children(recursive=True)]
    gateway = listening_process(gateway_url) if gateway_url else None
    if gateway is not None:
        parts.append(("gateway", gateway))
    for role, process in parts:
        try:
            times = process.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        if process_role(" ".join(process.cmdline())) == role:
            totals[role] += times.user + times.system
    return totals


def cpu_per_request(
    before: dict[str, float], after: dict[str, float], client_seconds: float, requests: int
) -> dict[str, float]:
    """Core-milliseconds per request of the load generator and of each server part over one served row."""
    costs = {"client": client_seconds, **{role: after[role] - before[role] for role in before}}
    return {f"{role}_core_ms": round(seconds * 1000 / requests, 3) for role, seconds in costs.items()}


def worker_rss_mb() -> list[float]:
    import psutil

    rss = []
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "model_service_worker" in cmdline and process.info.get("memory_info"):
            rss.append(round(process.info["memory_info"].rss / 2**20, 1))
    return rss


# --- output ------------------------------------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [r["name"] + (f" c{r['concurrency']}" if r["concurrency"] else "") for r in rows]
    left.barh(
        labels, [r["texts_per_s"] for r in rows], color=["#888" if r["kind"] == "in-process" else "#3a7" for r in rows]
    )
    for y, r in enumerate(rows):
        if r["vs_baseline"] is not None:
            left.text(r["texts_per_s"], y, f" {r['vs_baseline']:.2f}x", va="center", fontsize=8)
    left.set_xlabel("texts / s (ratio vs HF pipeline bs32)")
    left.invert_yaxis()
    for name in sorted({r["name"] for r in rows if r["kind"] == "served"}):
        series = sorted((r for r in rows if r["name"] == name), key=lambda r: r["concurrency"])
        conc = [r["concurrency"] for r in series]
        right.plot(conc, [r["p50_ms"] for r in series], marker="o", label=f"{name} p50")
        right.plot(conc, [r["p95_ms"] for r in series], marker="x", linestyle="--", label=f"{name} p95")
    right.set_xscale("log", base=2)
    right.set_xlabel("concurrent clients")
    right.set_ylabel("latency ms")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR, help="checkpoint [%(default)s]")
    parser.add_argument("--url", default="http://127.0.0.1:8080/predictions/ner_model", help="served endpoint")
    parser.add_argument(
        "--gateway-ws", default=None, help="gateway WebSocket URL, e.g. ws://127.0.0.1:8000/ws/entities"
    )
    parser.add_argument("--gateway-token", default=None, help="gateway API key (Bearer)")
    parser.add_argument(
        "--workload",
        choices=["mixed", "short"],
        default="mixed",
        help="mixed: short and medium sentences plus --documents multi-paragraph documents; short: sentences only, "
        "each round's distinct [%(default)s]",
    )
    parser.add_argument("--sentences", type=int, default=600, help="short/medium sentences [%(default)s]")
    parser.add_argument("--documents", type=int, default=4, help="long multi-paragraph documents [%(default)s]")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="served rows send the workload this many times: a few seconds per row would let "
        "where the long documents fall decide the result [%(default)s]",
    )
    parser.add_argument("--skip-bs1", action="store_true", help="skip the slow pipeline batch_size 1 row")
    parser.add_argument("--output", type=Path, default=ROOT / "bench_results", help="output folder [%(default)s]")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--quantization",
        choices=["none", "int8_dynamic"],
        default="none",
        help="for the in-process handler rows; start the server with the same setting "
        "(./scripts/serve.sh --quantization ...) so the served rows match",
    )
    parser.add_argument(
        "--latency-mix",
        action="store_true",
        help="only measure short-text latency under mixed load: --clients closed-loop REST clients against --url "
        "(TorchServe or the gateway's /v1/entities with --gateway-token), every --every-th request a "
        "--document-chars document, after a reference run of the same short texts alone; writes latency_mix.json",
    )
    parser.add_argument(
        "--texts-per-request",
        type=int,
        default=32,
        help="the bulk row: this many texts per KServe v1 'instances' request, from --bulk-clients clients; 0: no "
        "such row [%(default)s]",
    )
    parser.add_argument("--bulk-clients", type=int, default=4, help="clients of the bulk row [%(default)s]")
    parser.add_argument("--document-url", default=None, help="--latency-mix: send the documents here instead of --url")
    parser.add_argument("--clients", type=int, default=16, help="--latency-mix clients [%(default)s]")
    parser.add_argument("--every", type=int, default=20, help="--latency-mix: one document in this many [%(default)s]")
    parser.add_argument("--document-chars", type=int, default=5000, help="--latency-mix [%(default)s]")
    parser.add_argument("--requests", type=int, default=2000, help="--latency-mix requests in all [%(default)s]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "httpcore"):  # transformers' hub client, should anything in-process reach for it
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.latency_mix:
        mix = latency_mix(args.seed, args.requests, args.every, args.document_chars)
        shorts = [item for item in mix if item[0] == "short"]
        reference = asyncio.run(bench_latency_mix(args.url, shorts, args.clients, args.gateway_token))
        mixed = asyncio.run(bench_latency_mix(args.url, mix, args.clients, args.gateway_token, args.document_url))
        result = with_reference(mixed, reference)
        result.update(url=args.url, clients=args.clients, every=args.every, document_chars=args.document_chars)
        result["worker_rss_mb"] = worker_rss_mb()
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "latency_mix.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    from tqdm import tqdm

    if args.workload == "short":
        served_texts = short_workload(args.seed, args.sentences * args.rounds)
        texts = served_texts[: args.sentences]
    else:
        texts = build_workload(args.seed, args.sentences, args.documents)
        served_texts = texts * args.rounds
    steps = ["pipeline bs32", "pipeline bs1", "raw ceiling", "handler", "single sentence", "accuracy"]
    steps += [f"rest c{c}" for c in args.concurrency]
    steps += ["rest bulk"] if args.texts_per_request else []
    steps += [f"ws c{c}" for c in args.concurrency] if args.gateway_ws else []
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with tqdm(total=len(steps), desc="benchmark", unit="step") as bar:

        def step(label: str) -> None:
            bar.set_postfix_str(label)

        step("pipeline bs32")
        rows.append(bench_pipeline(args.model_dir, texts, 32))
        bar.update()
        if not args.skip_bs1:
            step("pipeline bs1")
            rows.append(bench_pipeline(args.model_dir, texts, 1))
        bar.update()
        handler = load_handler(args.model_dir, args.quantization)
        step("raw ceiling")
        rows.append(bench_raw_ceiling(handler, texts))
        if args.quantization == "none":  # the same ceiling on torch's own Linear (MKL): what the kernels buy
            stock = load_handler(args.model_dir, args.quantization, "torch")
            rows.append({**bench_raw_ceiling(stock, texts), "name": TORCH_LINEAR_CEILING})
            del stock
        bar.update()
        step("handler")
        rows.append(bench_handler(handler, texts))
        bar.update()
        step("single sentence")
        import torch

        # The ceiling and handler rows use every core (torch's default); a served worker uses handler.torch_threads.
        # The serving overhead of one request is measured against a forward pass on the worker's threads.
        worker_threads, all_threads = served_torch_threads(), torch.get_num_threads()
        forward_worker = percentile(single_forward_latency(handler, worker_threads), 50)
        forward_all = percentile(single_forward_latency(handler, all_threads), 50)
        served_single = asyncio.run(bench_rest(args.url, [SHORT_SENTENCE] * 200, 1, "single_sentence_rest"))
        # A lone client's request finds its worker idle: the same forward, each after as long a sleep as a request
        # took (on a VM whose idle CPUs halt, what runs after a halt runs slower; nertools.latency_floor).
        idle_s = served_single["p50_ms"] / 1000
        forward_after_idle = percentile(single_forward_latency(handler, worker_threads, idle_s=idle_s), 50)
        extra["single_sentence"] = {
            "worker_threads": worker_threads,
            "raw_forward_p50_ms": round(forward_worker, 2),
            "served_p50_ms": served_single["p50_ms"],
            "overhead_p50_ms": round(served_single["p50_ms"] - forward_worker, 2),
            "raw_forward_after_idle_p50_ms": round(forward_after_idle, 2),
            "overhead_vs_after_idle_p50_ms": round(served_single["p50_ms"] - forward_after_idle, 2),
            "all_threads": all_threads,
            "raw_forward_all_threads_p50_ms": round(forward_all, 2),
            "overhead_vs_all_threads_p50_ms": round(served_single["p50_ms"] - forward_all, 2),
        }
        bar.update()
        step("accuracy")
        extra["handler_f1"] = handler_f1(handler)
        bar.update()
        del handler
        for concurrency in args.concurrency:
            step(f"rest c{concurrency}")
            rows.append(asyncio.run(bench_rest(args.url, served_texts, concurrency)))
            bar.update()
        if args.texts_per_request:
            step(f"rest {args.texts_per_request} texts per request")
            rows.append(
                asyncio.run(
                    bench_rest(
                        args.url, served_texts, args.bulk_clients, "torchserve_rest_bulk", args.texts_per_request
                    )
                )
            )
            bar.update()
        if args.gateway_ws:
            for concurrency in args.concurrency:
                step(f"ws c{concurrency}")
                rows.append(
                    asyncio.run(
                        bench_websocket(
                            args.gateway_ws, served_texts, concurrency, args.gateway_token, inference_of(args.url)
                        )
                    )
                )
                bar.update()
    add_ratios(rows)
    extra["served_vs_ceiling"] = ceiling_ratios(rows)
    if any(r["name"] == TORCH_LINEAR_CEILING for r in rows):
        extra["served_vs_torch_linear_ceiling"] = ceiling_ratios(rows, TORCH_LINEAR_CEILING)
    extra["worker_rss_mb"] = worker_rss_mb()
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "model_dir": str(args.model_dir),
        "quantization": args.quantization,
        "texts": len(texts),
        "workload": args.workload,
        "documents": args.documents if args.workload == "mixed" else 0,
        "served_rounds": args.rounds,
        "mean_chars": round(statistics.mean(len(t) for t in texts), 1),
        "rows": rows,
        **extra,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "bench.json").write_text(json.dumps(report, indent=2))
    table = markdown_table(rows)
    single = extra["single_sentence"]
    notes = (
        f"\n\nquantization (handler rows and the server they were run against): {args.quantization}\n"
        f"handler micro F1 on the evaluation set: {extra['handler_f1']}\n"
        f"single short sentence, one client: served p50 {single['served_p50_ms']} ms; raw forward p50 "
        f"{single['raw_forward_p50_ms']} ms on the worker's {single['worker_threads']} thread(s) (overhead "
        f"{single['overhead_p50_ms']} ms), {single['raw_forward_all_threads_p50_ms']} ms on "
        f"{single['all_threads']} (difference {single['overhead_vs_all_threads_p50_ms']} ms); each pass after "
        f"{single['served_p50_ms']} ms idle, as served: {single['raw_forward_after_idle_p50_ms']} ms (difference "
        f"{single['overhead_vs_after_idle_p50_ms']} ms)\n"
        f"served / raw ceiling: {extra['served_vs_ceiling']}\n"
        f"served / raw ceiling on torch's Linear: {extra.get('served_vs_torch_linear_ceiling', '-')}\n"
        f"worker RSS MB: {extra['worker_rss_mb']}\n"
    )
    (args.output / "bench.md").write_text(table + notes)
    plot(rows, args.output / "bench.png")
    print(table + notes)
    print(f"wrote {args.output / 'bench.json'}, bench.md, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
