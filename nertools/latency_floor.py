"""How much of a lone request's latency the serving platform takes on this machine, before any model runs.

One client, one request at a time, keep-alive HTTP/1.1 (``nertools.http_load``), no other load:

1. ``loopback``: a bare asyncio HTTP server in a process of its own, answering at once (the client, the
   loopback, two processes waking up);
2. ``torchserve_echo``: TorchServe serving a handler that does no work (``nertools/echo_handler.py``) with the
   workers and batching that config.properties gives ner_model (``batchSize``, ``maxBatchDelay``, workers): the
   frontend, its queue and batch wait, the worker protocol, on free ports in a temporary directory;
3. ``idle_penalty``: a fixed piece of Python (JSON round trips of a reply) timed back to back and after sleeping
   as long as an echo request took. A lone client's every request reaches processes that were idle; where idle
   CPUs halt (virtual machines), the code after a halt runs slower, the model's forward included.

A served request of one short sentence costs about ``torchserve_echo`` plus the handler's own stages (the
``Ner*Seconds`` metrics), each at its after-idle speed: docs/PERFORMANCE.md, "One short sentence". Writes
``latency_floor.json``; about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from nertools.archive import run_archiver
from nertools.bench import SHORT_SENTENCE, percentile
from nertools.http_load import Connection
from nertools.local_torchserve import TorchServe
from nertools.paths import ROOT, TS_CONFIG
from nertools.torchserve import read_properties, served_batching

ECHO_HANDLER = Path(__file__).with_name("echo_handler.py")
BODY = json.dumps({"text": SHORT_SENTENCE}).encode()
# A reply of the size the demo model gives the short sentence, for the idle-penalty work.
REPLY = json.dumps({"entities": [{"label": "PER", "text": "Angela Merkel", "start": 0, "end": 13, "score": 0.99}] * 3})


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(percentile(latencies_ms, q), 3) for q in (50, 90, 99)}


async def sequential_latencies(url: str, warmup: int, requests: int, tick: Callable[[], None]) -> list[float]:
    """Milliseconds of ``requests`` POSTs of the short sentence, one at a time on one connection, after ``warmup``
    unrecorded ones; every answer must be 200."""
    connection = Connection(url, timeout_s=60)
    latencies = []
    try:
        for number in range(warmup + requests):
            started = time.perf_counter()
            status, body = await connection.post(BODY)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"{url} answered {status}: {body[:200]!r}")
            if number >= warmup:
                latencies.append(elapsed)
            tick()
    finally:
        await connection.close()
    return latencies


async def answer_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer ``{}`` to every request of a keep-alive connection as soon as its body is read; close the connection
    when the client does, or on anything that is not a request with a readable Content-Length."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            await reader.readexactly(int(lengths[0].split(b":", 1)[1]) if lengths else 0)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


def _serve_loopback(pipe: Pipe) -> None:
    """The loopback server's process: sends its port through ``pipe``, then serves until terminated."""

    async def serve() -> None:
        server = await asyncio.start_server(answer_at_once, "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    """The URL of an ``answer_at_once`` server in a process of its own, stopped on exit."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_serve_loopback, args=(sender,), daemon=True)
    process.start()
    try:
        if not receiver.poll(30):
            raise RuntimeError("the loopback server did not start in 30 s")
        yield f"http://127.0.0.1:{receiver.recv()}/echo"
    finally:
        process.terminate()
        process.join(10)


def archive_echo(store: Path) -> Path:
    """echo.mar of ``echo_handler.py`` in ``store``."""
    private_tmp = store / ".tmp"
    try:
        arguments = ["--model-name", "echo", "--version", "1.0", "--handler", str(ECHO_HANDLER)]
        run_archiver([*arguments, "--export-path", str(store), "--force"], private_tmp, quiet=True)
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    return store / "echo.mar"


def echo_config(batching: dict[str, Any]) -> str:
    """The ``models=`` line that serves echo.mar with ``batching`` (``nertools.torchserve.served_batching``)."""
    entry = {"defaultVersion": True, "marName": "echo.mar", **batching}
    return "models=" + json.dumps({"echo": {"1.0": entry}})


def idle_penalty(gap_s: float, runs: int = 300) -> dict[str, float]:
    """p50 milliseconds of the same Python work back to back and after sleeping ``gap_s`` before each run."""

    def work() -> None:
        for _ in range(20):
            json.loads(json.dumps(json.loads(REPLY)))

    def timed(gap: float) -> list[float]:
        out = []
        for _ in range(runs):
            if gap:
                time.sleep(gap)
            started = time.perf_counter()
            work()
            out.append((time.perf_counter() - started) * 1000)
        return out

    timed(0)  # warm
    back_to_back, after_idle = percentile(timed(0), 50), percentile(timed(gap_s), 50)
    return {
        "gap_ms": round(gap_s * 1000, 2),
        "back_to_back_p50_ms": round(back_to_back, 4),
        "after_idle_p50_ms": round(after_idle, 4),
        "slowdown": round(after_idle / back_to_back, 2),
    }


def measure(
    workdir: Path, batching: dict[str, Any], warmup: int, requests: int, tick: Callable[[str], Callable[[], None]]
) -> dict[str, Any]:
    """The three measurements (module docstring); TorchServe runs in ``workdir`` and is stopped whatever happens."""
    result: dict[str, Any] = {"requests": requests, "warmup": warmup}
    with loopback_server() as url:
        result["loopback"] = summary(asyncio.run(sequential_latencies(url, warmup, requests, tick("loopback"))))
    store = workdir / "store"
    store.mkdir(parents=True, exist_ok=True)
    archive_echo(store)
    tick("TorchServe start")()
    server = TorchServe(workdir, store, "echo=echo.mar", extra_config=echo_config(batching))
    try:
        server.start()
        url = f"{server.inference}/predictions/echo"
        latencies = asyncio.run(sequential_latencies(url, warmup, requests, tick("TorchServe echo")))
    finally:
        server.stop()
    result["torchserve_echo"] = {**summary(latencies), **batching}
    result["idle_penalty"] = idle_penalty(result["torchserve_echo"]["p50_ms"] / 1000)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nertools.latency_floor",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per server [1000]")
    parser.add_argument(
        "--warmup", type=int, default=2000, help="unmeasured requests first: the JVM compiles its hot paths [2000]"
    )
    parser.add_argument("--config", type=Path, default=TS_CONFIG, help="whose batching to copy [config.properties]")
    parser.add_argument("--model", default="ner_model", help="the model in --config whose batching to copy")
    parser.add_argument("--output", type=Path, default=ROOT / "bench_results" / "latency_floor")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be >= 1 and --warmup >= 0")
    try:
        batching = served_batching(read_properties(args.config), args.model)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    from tqdm import tqdm

    total = 2 * (args.warmup + args.requests) + 1
    with tqdm(total=total, desc="latency floor", unit="request") as bar:

        def tick(step: str) -> Callable[[], None]:
            bar.set_postfix_str(step)
            return lambda: bar.update()

        with tempfile.TemporaryDirectory(prefix="latency_floor.") as workdir:
            result = measure(Path(workdir), batching, args.warmup, args.requests, tick)
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latency_floor.json").write_text(json.dumps(result, indent=2))
    echo, idle = result["torchserve_echo"], result["idle_penalty"]
    print(
        f"one client, one request at a time, {args.requests} requests after {args.warmup}:\n"
        f"  loopback HTTP, an asyncio server in another process answering at once: p50 "
        f"{result['loopback']['p50_ms']} ms, p99 {result['loopback']['p99_ms']} ms\n"
        f"  TorchServe, a handler doing nothing (batchSize {echo['batchSize']}, maxBatchDelay "
        f"{echo['maxBatchDelay']} ms, {echo['minWorkers']} workers): p50 {echo['p50_ms']} ms, p99 {echo['p99_ms']} ms\n"
        f"  the same Python work after {idle['gap_ms']} ms idle: {idle['slowdown']}x its back-to-back time "
        f"({idle['after_idle_p50_ms']} against {idle['back_to_back_p50_ms']} ms)\n"
        f"wrote {args.output / 'latency_floor.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
