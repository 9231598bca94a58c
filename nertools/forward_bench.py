"""Padded vs padding-free (packed) forward passes on the same batches, in-process: the numbers behind
docs/PERFORMANCE.md, "Padding-free forward".

Each batch is planned twice by the handler's own preprocess (``handler.forward: padded``, then ``packed``) and
timed through its own ``inference()``: the forward passes only, no tokenizing or decoding. The two arms alternate
(padded, packed, padded, packed, ...), each timing every batch of the workload once per repeat, so the machine's
other load falls on both alike; the table gives each arm's median and padded / packed (above 1: packed is faster),
and the largest logit difference between the arms. The fp32 rows run once per ``handler.linear_kernels``
(``none/onednn``, ``none/torch``: docs/PERFORMANCE.md, "Linear kernels"), one handler after the other, so the
kernels are compared across rows, not interleaved.

Workloads: ``short1`` / ``short9`` / ``short32``: short sentences in arrival order, batches of 1 / 9 / 32 (one
client's lone request; a served batch of 9 is what 32 clients gave on 2 cores); ``mixed``: batches of one
multi-paragraph document (512-piece windows) and 15 short sentences; ``long``: documents only, every pass full
windows.

Run: .venv/bin/python -m nertools.forward_bench [--threads 1 2] [--quantization none int8_dynamic]
     [--linear-kernels onednn torch]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nertools.bench import build_workload, load_handler, short_workload
from nertools.paths import CHECKPOINT_DIR

ARMS = ("padded", "packed")
WORKLOADS = ("short1", "short9", "short32", "mixed", "long")
MIXED_SENTENCES_PER_DOCUMENT = 15
DOCUMENT_PARTS = 3


# --- pure helpers (unit-tested) ------------------------------------------------------------------------------


def workload_batches(name: str, sentences: list[str], documents: list[str]) -> list[list[str]]:
    """The batches of texts of one workload, in arrival order (see the module docstring)."""
    if name in ("short1", "short9", "short32"):
        size = int(name.removeprefix("short"))
        return [sentences[i : i + size] for i in range(0, len(sentences), size)]
    if name == "mixed":
        per = MIXED_SENTENCES_PER_DOCUMENT
        return [[document, *sentences[d * per : (d + 1) * per]] for d, document in enumerate(documents)]
    if name == "long":
        return [[document] for document in documents]
    raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")


def interleaved(arms: dict[str, Callable[[], None]], repeats: int, clock: Callable[[], float]) -> dict[str, float]:
    """Run the arms in turn ``repeats`` times (A B A B ...) and return each one's median seconds."""
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, run in arms.items():
            started = clock()
            run()
            seconds[name].append(clock() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def result_row(
    quantization: str, threads: int, workload: str, shape: dict[str, int], medians: dict[str, float], max_diff: float
) -> dict[str, Any]:
    """``quantization`` names the kernels too: ``none/onednn``, ``none/torch`` (handler.linear_kernels), or
    ``int8_dynamic``."""
    return {
        "quantization": quantization,
        "threads": threads,
        "workload": workload,
        **shape,
        "padded_ms": round(medians["padded"] * 1000, 1),
        "packed_ms": round(medians["packed"] * 1000, 1),
        "padded_over_packed": round(medians["padded"] / medians["packed"], 2),
        "max_logit_diff": float(f"{max_diff:.2g}"),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def long_documents(seed: int, count: int) -> list[str]:
    """``count`` documents of ~1,400 word pieces (four windows, three of them full): three of the main benchmark's
    multi-paragraph documents each."""
    paragraphs = build_workload(seed, 0, count * DOCUMENT_PARTS)  # no sentences: documents only
    return ["\n\n".join(paragraphs[i : i + DOCUMENT_PARTS]) for i in range(0, len(paragraphs), DOCUMENT_PARTS)]


# --- the measurement -----------------------------------------------------------------------------------------


def plans(handler: Any, batches: list[list[str]], mode: str) -> list[Any]:
    """The handler's PreparedBatch of each batch with ``handler.forward`` set to ``mode``."""
    from nerserve.settings import ForwardMode

    saved = handler.settings
    handler.settings = dataclasses.replace(saved, forward=ForwardMode(mode))
    try:
        return [handler.preprocess([{"body": {"text": text}} for text in batch]) for batch in batches]
    finally:
        handler.settings = saved


def max_logit_difference(planned: dict[str, list[Any]], logits: dict[str, list[list[np.ndarray]]]) -> float:
    from nerserve.batch import logits_by_document

    worst = 0.0
    for padded, packed, padded_logits, packed_logits in zip(
        planned["padded"], planned["packed"], logits["padded"], logits["packed"], strict=True
    ):
        for doc_a, doc_b in zip(
            logits_by_document(padded, padded_logits), logits_by_document(packed, packed_logits), strict=True
        ):
            for a, b in zip(doc_a, doc_b, strict=True):
                worst = max(worst, float(np.abs(a - b).max(initial=0.0)))
    return worst


def measure(
    handler: Any, quantization: str, threads: int, workloads: dict[str, list[list[str]]], repeats: int
) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(threads)
    rows = []
    for name, batches in workloads.items():
        planned = {arm: plans(handler, batches, arm) for arm in ARMS}
        logits = {arm: [handler.inference(batch) for batch in planned[arm]] for arm in ARMS}  # also the warm-up
        arms = {arm: _runner(handler, planned[arm]) for arm in ARMS}
        medians = interleaved(arms, repeats, time.perf_counter)
        padded = planned["padded"]
        shape = {
            "batches": len(batches),
            "rows": sum(len(forward.rows) for batch in padded for forward in batch.passes),
            "tokens": sum(sum(forward.lengths) for batch in padded for forward in batch.passes),
            "padded_tokens": sum(forward.input_ids.size for batch in padded for forward in batch.passes),
            "passes_padded": sum(len(batch.passes) for batch in padded),
            "passes_packed": sum(len(batch.passes) for batch in planned["packed"]),
        }
        rows.append(result_row(quantization, threads, name, shape, medians, max_logit_difference(planned, logits)))
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)  # progress; the whole table comes last
    return rows


def _runner(handler: Any, batches: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for batch in batches:
            handler.inference(batch)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR, help="checkpoint [%(default)s]")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads [%(default)s]")
    parser.add_argument("--quantization", nargs="+", choices=["none", "int8_dynamic"], default=["none", "int8_dynamic"])
    parser.add_argument(
        "--linear-kernels",
        nargs="+",
        choices=["onednn", "torch"],
        default=["onednn", "torch"],
        help="handler.linear_kernels of the fp32 rows [%(default)s]",
    )
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--sentences", type=int, default=288, help="short sentences [%(default)s]")
    parser.add_argument("--documents", type=int, default=6, help="multi-paragraph documents [%(default)s]")
    parser.add_argument("--repeats", type=int, default=7, help="timings of each arm, interleaved [%(default)s]")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    sentences = short_workload(args.seed, args.sentences)
    documents = long_documents(args.seed, args.documents)
    workloads = {name: workload_batches(name, sentences, documents) for name in args.workloads}
    rows: list[dict[str, Any]] = []
    for quantization in args.quantization:
        for kernels in args.linear_kernels if quantization == "none" else ["-"]:
            handler = load_handler(args.model_dir, quantization, "onednn" if kernels == "-" else kernels)
            label = quantization if kernels == "-" else f"{quantization}/{kernels}"
            for threads in args.threads:
                rows += measure(handler, label, threads, workloads, args.repeats)
            del handler
    print()
    print(markdown_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
