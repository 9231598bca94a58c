"""Worker memory after huge inputs, on a real TorchServe: the worker's RSS comes back near its baseline.

Without ``handler.release_memory_after_pieces`` glibc keeps what a big batch freed, and the tiny model's worker stays
far above its baseline after batches of 16 texts at the word-piece limit; the figures, this module's and the demo
model's: docs/PERFORMANCE.md, "Memory".
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from nerserve.settings import DEFAULT_MAX_TEXT_PIECES
from nertools.local_torchserve import TorchServe
from tests.support.polling import wait_until
from tests.support.torchserve import build_archive

# How far above its warmed-up baseline the worker may stay once big batches are answered: between what the tiny
# model's worker measured with the release and without it (docs/PERFORMANCE.md, "Memory").
SETTLED_BOUND_MB = 120
# While big batches are in flight the worker holds their buffers; the soak's every sample stays under this.
PEAK_BOUND_MB = 300
CLIENTS = 16  # config.properties' batchSize: one batch of the longest texts
SHORT = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew from new york to paris today", "rome"]
# At the word-piece limit: one piece per character, and a text of whole vocabulary words (one piece per word).
COMMAS = "a," * (DEFAULT_MAX_TEXT_PIECES // 2 - 100)
WORDS = " ".join(itertools.islice(itertools.cycle("the a met john in paris at an of rome".split()), 24_000))


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory, tiny_checkpoint, java_available):
    """The tiny model on one worker that takes all 16 concurrent requests in one batch."""
    workdir = tmp_path_factory.mktemp("ts_memory")
    store = workdir / "model_store"
    build_archive(tiny_checkpoint, store)
    models = (
        'models={"ner_model": {"1.0": {"defaultVersion": true, "marName": "ner_model.mar", "minWorkers": 1, '
        f'"maxWorkers": 1, "batchSize": {CLIENTS}, "maxBatchDelay": 200, "responseTimeout": 300}}}}}}'
    )
    server = TorchServe(workdir, store, "ner_model=ner_model.mar", extra_config=models).start()
    yield server
    server.stop()


def worker_rss_mb(server: TorchServe) -> float:
    (pid,) = server.worker_pids()
    return psutil.Process(pid).memory_info().rss / 2**20


def burst(server: TorchServe, texts: list[str]) -> list[int]:
    url = f"{server.inference}/predictions/ner_model"
    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(lambda text: requests.post(url, json={"text": text}, timeout=300).status_code, texts))


@pytest.fixture(scope="module")
def baseline_mb(memory_server) -> float:
    """The worker's RSS once warm: a few batches of short sentences answered."""
    for _ in range(3):
        assert burst(memory_server, SHORT * 6) == [200] * 18
    return worker_rss_mb(memory_server)


def settled(server: TorchServe, baseline: float) -> float:
    """The worker's RSS once within SETTLED_BOUND_MB of ``baseline``, polled for a few seconds (the second release
    runs 2 s after a big batch); AssertionError with the last RSS seen if it stays above."""
    seen: list[float] = []

    def within() -> bool:
        seen.append(worker_rss_mb(server))
        return seen[-1] <= baseline + SETTLED_BOUND_MB

    try:
        wait_until(within, timeout=10, what="worker RSS near its baseline")
    except AssertionError:
        raise AssertionError(
            f"worker RSS stayed at {seen[-1]:.0f} MB, over its baseline {baseline:.0f} MB + {SETTLED_BOUND_MB} MB"
        ) from None
    return seen[-1]


def test_worker_memory_returns_near_its_baseline_after_batches_of_huge_inputs(memory_server, baseline_mb):
    for text in (COMMAS, WORDS, COMMAS):
        assert burst(memory_server, [text] * CLIENTS) == [200] * CLIENTS
        settled(memory_server, baseline_mb)
    assert burst(memory_server, SHORT * 6) == [200] * 18
    settled(memory_server, baseline_mb)


def test_a_soak_of_short_and_long_texts_from_several_clients_has_no_errors_and_bounded_memory(
    memory_server, baseline_mb
):
    """6 clients for 30 s, every 4th request of each a text near the limit (at least one each), RSS sampled."""
    url = f"{memory_server.inference}/predictions/ner_model"
    deadline = time.monotonic() + 30
    statuses: dict[int, list[int]] = {index: [] for index in range(6)}
    samples: list[float] = []
    done = threading.Event()

    def client(index: int) -> None:
        with requests.Session() as session:
            for sent in range(10_000):  # bounded in count as well as in time
                if sent >= 4 and time.monotonic() >= deadline:
                    return
                long_one = (sent + index) % 4 == 3
                text = (COMMAS if index % 2 else WORDS) if long_one else SHORT[sent % len(SHORT)]
                statuses[index].append(session.post(url, json={"text": text}, timeout=300).status_code)

    def sample() -> None:
        while not done.wait(0.25):
            samples.append(worker_rss_mb(memory_server))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(client, range(6)))
    finally:
        done.set()
        sampler.join()
    assert set(itertools.chain(*statuses.values())) == {200}
    assert samples and max(samples) <= baseline_mb + PEAK_BOUND_MB, (baseline_mb, max(samples))
    settled(memory_server, baseline_mb)
