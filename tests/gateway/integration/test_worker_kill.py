"""kill -9 of TorchServe's worker under continuous WebSocket traffic: no client sees a failure.

TorchServe answers the requests the dead worker held with 507 (or 500 "Worker died.") and starts a new worker
(~6 s here); the gateway sends each of them once more (NER_GATEWAY_RETRY_WORKER_LOST_MAX), and retries "no worker"
503s with backoff inside its deadline (30 s by default), so every message still gets its entities.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import psutil
import pytest
import requests
from websockets.asyncio.client import connect

from nertools.ready import ready_workers, wait_ready
from tests.support.polling import wait_until_async

pytestmark = pytest.mark.integration

CLIENTS = 4
IN_FLIGHT_PER_CLIENT = 4
TEXTS = [
    "Angela Merkel met Tim Cook in Berlin.",
    "Mary took aspirin in London",
    "john smith flew to paris today",
    "The company of José in Zürich said hello.",
    "rome",
]


def spans(entities):
    return [(e["label"], e["start"], e["end"]) for e in entities]


def worker_pids(server) -> list[int]:
    """The server's worker pids; [] while a killed worker is still listed (a zombie, or already reaped)."""
    try:
        return server.worker_pids()
    except psutil.Error:
        return []


def test_killing_the_worker_loses_no_reply(gateway, gateway_token, tiny_server):
    expected = {}
    for text in TEXTS:
        response = requests.post(f"{tiny_server.inference}/predictions/ner_model", json={"text": text}, timeout=60)
        expected[text] = spans(response.json()["entities"])
    stats = {"sent": 0, "replies": 0, "failed": 0, "during_outage": 0}
    failures: list[dict] = []
    outage = {"down": False}

    async def client(number: int, stop: asyncio.Event) -> None:
        async with connect(
            f"{gateway.ws_url}/ws/entities", proxy=None, additional_headers={"Authorization": f"Bearer {gateway_token}"}
        ) as ws:
            pending: dict[str, str] = {}

            async def send_one() -> None:
                stats["sent"] += 1
                message_id = f"{number}-{stats['sent']}"
                pending[message_id] = TEXTS[stats["sent"] % len(TEXTS)]
                await ws.send(json.dumps({"id": message_id, "text": pending[message_id]}))

            for _ in range(IN_FLIGHT_PER_CLIENT):
                await send_one()
            while pending:
                async with asyncio.timeout(90):  # not wait_for: in 3.11 it can swallow a cancellation
                    reply = json.loads(await ws.recv())
                text = pending.pop(reply["id"])
                stats["replies"] += 1
                stats["during_outage"] += outage["down"]
                if "error" in reply or spans(reply["entities"]) != expected[text]:
                    stats["failed"] += 1
                    failures.append(reply)
                if not stop.is_set():
                    await send_one()

    async def scenario() -> float:
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(n, stop)) for n in range(CLIENTS)]
        try:
            await wait_until_async(lambda: stats["replies"] >= CLIENTS, 60, "replies before the kill", interval=0.05)
            (old_pid,) = worker_pids(tiny_server)
            os.kill(old_pid, signal.SIGKILL)
            killed = time.monotonic()
            outage["down"] = True

            async def worker_replaced() -> bool:
                pids = await asyncio.to_thread(worker_pids, tiny_server)
                ready = await asyncio.to_thread(ready_workers, tiny_server.management, "ner_model")
                return bool(ready and pids and old_pid not in pids)

            # Keep sending while TorchServe replaces the worker, and until the new one has answered some.
            await wait_until_async(worker_replaced, 120, "TorchServe to restart its worker", interval=0.2)
            recovered = time.monotonic() - killed
            outage["down"] = False
            answered = stats["replies"]
            await wait_until_async(
                lambda: stats["replies"] >= answered + CLIENTS, 60, "replies from the new worker", interval=0.05
            )
        finally:
            stop.set()  # the clients finish what they have in flight and stop, whatever happened above
            async with asyncio.timeout(120):
                await asyncio.gather(*clients)
        return recovered

    log_before = len(gateway.log_text())
    try:
        recovered = asyncio.run(scenario())
    finally:
        # tiny_server is shared by the session: leave it serving.
        assert wait_ready(tiny_server.management, "ner_model", 120), "the worker did not come back"
    retried = gateway.log_text()[log_before:].count("TorchServe could not serve a request")
    print(
        f"worker-kill: {stats['replies']} replies, {stats['failed']} failed "
        f"({stats['during_outage']} answered while the worker was down; worker back after {recovered:.1f} s; "
        f"{retried} upstream attempts retried by the gateway)"
    )
    assert stats["replies"] == stats["sent"]
    assert stats["failed"] == 0, failures[:5]
    assert retried > 0, "no request was caught by the kill; the test did not exercise the retry path"
