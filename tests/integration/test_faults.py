"""Faults injected into a real TorchServe under concurrent traffic: degenerate texts over the word-piece limit,
texts right at it, and kill -9 of the worker while 16 clients post to it.

A text over ``max_text_pieces`` must cost its sender a 413 and nobody else anything: no innocent failure and no
worker replaced (the limit exists so that such a batch never reaches responseTimeout, after which TorchServe
kills the worker and fails every request of the batch). A kill -9 may fail the requests the dead worker held,
with TorchServe's own 500/507 "Worker died." (the answer the gateway sends again, gateway.upstream), and nothing
else; the worker comes back READY and serves again.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
import yaml

from gateway.upstream import WORKER_DIED_MESSAGE, WORKER_DIED_TYPE
from nerserve.settings import HandlerSettings
from nertools.paths import MODEL_CONFIG
from nertools.ready import wait_ready
from nertools.torchserve import error_fields
from tests.support.polling import wait_until

NORMAL = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew from new york to paris today", "Mary took aspirin"]
CONCURRENT = 16
# Long enough for a slow loaded machine; a batch over responseTimeout (the archive's, handler/model_config.yaml) shows
# up as TorchServe's 500 "Worker died." and a replaced worker, a hung one as a ReadTimeout: both fail the test.
TIMEOUT_S = 300


def max_text_pieces() -> int:
    """The limit tiny_server serves with: handler/model_config.yaml is packed into its archive."""
    return HandlerSettings.from_mapping(yaml.safe_load(MODEL_CONFIG.read_text())["handler"]).max_text_pieces


def post(server, text: str) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/ner_model", json={"text": text}, timeout=TIMEOUT_S)


def spans(response: requests.Response) -> list[tuple[str, int, int]]:
    return [(e["label"], e["start"], e["end"]) for e in response.json()["entities"]]


def expected_spans(server) -> dict[str, list[tuple[str, int, int]]]:
    """Each normal text's entities, asked alone, before any fault."""
    expected = {}
    for text in NORMAL:
        response = post(server, text)
        assert response.status_code == 200, response.text
        expected[text] = spans(response)
    return expected


def workers(server) -> list[tuple[str, int, str, str]]:
    """(id, pid, start time, status) of every worker of ner_model, from TorchServe's describe API."""
    response = requests.get(f"{server.management}/models/ner_model", timeout=30)
    response.raise_for_status()
    return sorted(
        (str(w["id"]), int(w["pid"]), str(w["startTime"]), str(w["status"]))
        for entry in response.json()
        for w in entry["workers"]
    )


def serving_workers(server) -> tuple[list[tuple[str, int, str, str]], list[int]]:
    """The describe API's workers, all READY, and the worker processes that really run: they must agree."""
    described = workers(server)
    assert described and all(status == "READY" for *_, status in described), described
    assert sorted(pid for _, pid, _, _ in described) == sorted(server.worker_pids()), described
    return described, sorted(server.worker_pids())


def test_sixteen_degenerate_texts_among_normal_traffic_get_their_413_and_no_worker_is_replaced(tiny_server):
    expected = expected_spans(tiny_server)
    before = serving_workers(tiny_server)
    degenerate = "a," * 50_000  # 100,000 characters (within max_text_chars), 100,000 word pieces
    normal = [NORMAL[n % len(NORMAL)] for n in range(3 * CONCURRENT)]
    # The first 2 x 16 calls run at once: all 16 degenerate texts, each beside a normal one; 32 more normal follow.
    calls = [text for pair in zip([degenerate] * CONCURRENT, normal[:CONCURRENT], strict=True) for text in pair]
    calls += normal[CONCURRENT:]
    with ThreadPoolExecutor(2 * CONCURRENT) as pool:
        responses = list(pool.map(lambda text: post(tiny_server, text), calls))

    refused = [r for text, r in zip(calls, responses, strict=True) if text is degenerate]
    served = [(text, r) for text, r in zip(calls, responses, strict=True) if text is not degenerate]
    message = f"the text has {100_000:,} word pieces, the limit is {max_text_pieces():,}; split it"
    assert [(r.status_code, r.json()) for r in refused] == [
        (413, {"code": 413, "type": "PayloadTooLarge", "message": message})
    ] * CONCURRENT
    innocent_failures = [(r.status_code, r.text[:200]) for _, r in served if r.status_code != 200]
    assert innocent_failures == []
    assert [spans(r) for _, r in served] == [expected[text] for text, _ in served]
    assert max(int(r.headers.get("X-NER-Batch-Size", 1)) for r in refused) > 1, "no batch mixed them with others"
    assert serving_workers(tiny_server) == before, "a worker was replaced"


def test_sixteen_texts_at_the_word_piece_limit_are_all_served_by_the_same_worker(tiny_server):
    before = serving_workers(tiny_server)
    limit = max_text_pieces()
    # Exactly max_text_pieces word pieces (each "a" and "," is one): the most a text may have.
    at_limit = "a," * (limit // 2) + "a" * (limit % 2)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(lambda _: post(tiny_server, at_limit), range(CONCURRENT)))
    # Over responseTimeout TorchServe would kill the worker and answer 500 "Worker died." to the whole batch.
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [r.text[:200] for r in responses]
    assert all("entities" in r.json() for r in responses)
    assert max(int(r.headers.get("X-NER-Batch-Size", 1)) for r in responses) > 1, "no batch held several"
    assert serving_workers(tiny_server) == before, "a worker was replaced"


class Load:
    """16 clients posting normal texts in a loop; every answer recorded as (status, error type, error message)."""

    def __init__(self, server, expected: dict[str, list[tuple[str, int, int]]]) -> None:
        self.server = server
        self.expected = expected
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[int, str | None, str | None]] = []
        self.wrong: list[tuple[str, list[tuple[str, int, int]]]] = []
        self.threads = [threading.Thread(target=self.client, args=(n,)) for n in range(CONCURRENT)]

    def client(self, number: int) -> None:
        sent = number
        while not self.stop.is_set():
            text = NORMAL[sent % len(NORMAL)]
            sent += 1
            try:
                response = post(self.server, text)
            except requests.RequestException as err:  # recorded, so that the test sees it: no client is lost
                with self.lock:
                    self.answers.append((-1, type(err).__name__, None))
                continue
            kind, message = (None, None) if response.status_code == 200 else error_fields(response.content)
            with self.lock:
                self.answers.append((response.status_code, kind, message))
                if response.status_code == 200 and spans(response) != self.expected[text]:
                    self.wrong.append((text, spans(response)))

    def served(self) -> int:
        with self.lock:
            return sum(1 for answer in self.answers if answer[0] == 200)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_S)


def test_killing_the_worker_under_sixteen_rest_clients_fails_only_its_requests_with_worker_died(tiny_server):
    expected = expected_spans(tiny_server)
    (old,), _ = serving_workers(tiny_server)
    try:
        with Load(tiny_server, expected) as load:
            wait_until(lambda: load.served() >= CONCURRENT, 60, "answers before the kill", interval=0.05)
            os.kill(old[1], signal.SIGKILL)

            def replaced() -> bool:
                described = workers(tiny_server)
                return any(status == "READY" and pid != old[1] for _, pid, _, status in described)

            wait_until(replaced, 120, "TorchServe to start a new READY worker", interval=0.2)
            served = load.served()
            wait_until(lambda: load.served() >= served + CONCURRENT, 60, "answers from the new worker", interval=0.05)
    finally:
        # tiny_server is shared by the session: leave it serving whatever happened.
        assert wait_ready(tiny_server.management, "ner_model", 120), "the worker did not come back"
    (new,), _ = serving_workers(tiny_server)
    failures = [answer for answer in load.answers if answer[0] != 200]
    print(f"worker kill: {len(load.answers)} answers, {len(failures)} failed: {sorted(set(failures))}")
    assert new[1] != old[1]
    assert failures, "the kill caught no request in flight; the test did not exercise the fault"
    # TorchServe answers 507 when it has already seen exit code 137, 500 otherwise; the same type and message.
    assert set(failures) <= {(status, WORKER_DIED_TYPE, WORKER_DIED_MESSAGE) for status in (500, 507)}
    assert load.wrong == []
    with ThreadPoolExecutor(CONCURRENT) as pool:
        after = list(pool.map(lambda n: post(tiny_server, NORMAL[n % len(NORMAL)]), range(CONCURRENT)))
    assert [(r.status_code, spans(r)) for r in after] == [
        (200, expected[NORMAL[n % len(NORMAL)]]) for n in range(CONCURRENT)
    ]
