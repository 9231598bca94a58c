"""SSE clients that leave mid-stream, under load, on the real gateway process in front of the real TorchServe.

Several clients ask for a multi-paragraph document on /v1/stream and hang up after its first event, while other
SSE and REST clients run. The others must all get their whole, correct answers; the gateway must stay healthy;
and an abandoned stream must stop sending its document's chunks to TorchServe (gateway.streaming cancels the
chunks in flight and starts no new one; gateway.coalescing drops them from their upstream request).

The gateway does not expose what it has in flight (the slots of gateway.upstream, the groups of
gateway.coalescing, whose counters are not served), so a leak is measured where it would land: the texts
TorchServe's handler served (``NerWordPiecesPerRequest_count``, one per text however the gateway grouped them) must
settle at what the remaining clients needed plus the few chunks each abandoned stream had started, far below the
whole documents; and a gateway with a single upstream slot and a single coalescing group must still serve after
streams were abandoned with chunks in flight and queued for them (one not given back stalls it).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest

from tests.support.live_gateway import GatewayProcess, gateway_environment
from tests.support.polling import wait_until
from tests.support.prometheus_text import scrape, value

pytestmark = pytest.mark.integration

# One paragraph (80-100 characters) per chunk: the session gateway cuts documents into chunks of at most 120.
PARAGRAPHS = [
    "Angela Merkel met Tim Cook in Berlin.",
    "john smith flew from new york to paris today.",
    "Mary took aspirin in London with John.",
    "The company of José in Zürich said hello.",
    "Rome and London are a city; so is Paris.",
]
PARAGRAPH_COUNT = 30
DOCUMENT = "\n\n".join(
    f"{PARAGRAPHS[n % len(PARAGRAPHS)]} {PARAGRAPHS[(n + 1) % len(PARAGRAPHS)]} Part {n}."
    for n in range(PARAGRAPH_COUNT)
)
NORMAL = ["Angela Merkel met Tim Cook in Berlin.", "Mary took aspirin in London", "rome"]
LEAVING = 6  # streams whose client hangs up after the first event
STAYING = 3  # streams read to the end at the same time
REST_CLIENTS, REST_ROUNDS = 4, 10
# A scenario takes seconds. SSE pings keep a stalled stream's connection alive, so a gateway that stalls (e.g. a
# slot never given back) would hang the test without this bound.
SCENARIO_TIMEOUT_S = 120


def spans(items: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    return [(e["label"], e["text"], e["start"], e["end"]) for e in items]


def chunk_events(events: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The chunks of a complete stream: only data events, in order, ending with [DONE]."""
    assert events and events[-1] == ("message", "[DONE]"), events[-3:]
    assert all(name == "message" for name, _ in events), [name for name, _ in events]
    return [json.loads(data) for _, data in events[:-1]]


async def read_stream(http: httpx2.AsyncClient, headers: dict[str, str]) -> list[tuple[str, str]]:
    async with http.sse("/v1/stream", method="POST", json={"text": DOCUMENT}, headers=headers) as source:
        return [(event.event, event.data) async for event in source]


async def leave_after_first_event(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Its own connection, closed as soon as the first event has arrived (a browser tab closed mid-stream)."""
    async with httpx2.AsyncClient(base_url=url, timeout=60, trust_env=False) as http:
        async with http.sse("/v1/stream", method="POST", json={"text": DOCUMENT}, headers=headers) as source:
            async for event in source:
                return {"event": event.event, **json.loads(event.data)}
    raise AssertionError("the stream ended without an event")


def troubles(log: str) -> list[str]:
    """The gateway's log lines at WARNING or above, tracebacks, and retries (nothing here should need one)."""
    signs = (" WARNING ", " ERROR ", "Traceback", "TorchServe could not serve a request")
    return [line for line in log.splitlines() if any(sign in line for sign in signs)]


def served_texts(server) -> float:
    """Texts ner_model's handler has answered 200 (per text, so a KServe v1 request of N texts counts N)."""
    return value(scrape(server.metrics), "NerWordPiecesPerRequest_count", ModelName="ner_model")


def settled_texts(server, quiet_s: float = 1.5, timeout: float = 60) -> float:
    """``served_texts`` once it has not moved for ``quiet_s`` (nothing is still on its way there)."""
    last = {"count": -1.0, "since": time.monotonic()}

    def settled() -> tuple[float] | None:
        count, now = served_texts(server), time.monotonic()
        if count != last["count"]:
            last.update(count=count, since=now)
            return None
        return (count,) if now - last["since"] >= quiet_s else None

    return wait_until(settled, timeout, "the count of texts TorchServe served to settle", interval=0.2)[0]


def test_sse_clients_leaving_mid_stream_under_load_cost_nobody_else_and_leak_no_upstream_request(
    gateway, gateway_token, tiny_server
):
    auth = {"Authorization": f"Bearer {gateway_token}"}

    async def alone() -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, str, int, int]]]]:
        async with httpx2.AsyncClient(base_url=gateway.url, timeout=60, trust_env=False) as http:
            chunks = chunk_events(await read_stream(http, auth))
            expected = {}
            for text in NORMAL:
                response = await http.post("/v1/entities", json={"text": text}, headers=auth)
                assert response.status_code == 200, response.text
                expected[text] = spans(response.json()["entities"])
        return chunks, expected

    baseline, expected_rest = asyncio.run(alone())
    assert len(baseline) == PARAGRAPH_COUNT and baseline[-1]["end"] == len(DOCUMENT)
    assert sum(len(chunk["entities"]) for chunk in baseline) > 0  # the comparison below compares something
    rest_failures: list[tuple[int, str]] = []

    async def rest_client(http: httpx2.AsyncClient, number: int) -> None:
        for round_ in range(REST_ROUNDS):
            text = NORMAL[(number + round_) % len(NORMAL)]
            response = await http.post("/v1/entities", json={"text": text}, headers=auth)
            if response.status_code != 200 or spans(response.json()["entities"]) != expected_rest[text]:
                rest_failures.append((response.status_code, response.text[:200]))

    async def scenario() -> tuple[list[dict[str, Any]], list[list[tuple[str, str]]]]:
        async with (
            asyncio.timeout(SCENARIO_TIMEOUT_S),
            httpx2.AsyncClient(base_url=gateway.url, timeout=60, trust_env=False) as http,
        ):
            leaving = [asyncio.create_task(leave_after_first_event(gateway.url, auth)) for _ in range(LEAVING)]
            staying = [asyncio.create_task(read_stream(http, auth)) for _ in range(STAYING)]
            rest = [asyncio.create_task(rest_client(http, n)) for n in range(REST_CLIENTS)]
            firsts = await asyncio.gather(*leaving)
            # The leavers are gone while the others still run: their streams have most of their chunks to go.
            assert not all(task.done() for task in staying)
            streams = await asyncio.gather(*staying)
            await asyncio.gather(*rest)
        return firsts, streams

    log_before = len(gateway.log_text())
    texts_before = settled_texts(tiny_server)
    firsts, streams = asyncio.run(scenario())

    for first in firsts:
        assert first["event"] == "message" and first["chunk"] == 0
        assert spans(first["entities"]) == spans(baseline[0]["entities"])
    for events in streams:
        chunks = chunk_events(events)
        assert [chunk["chunk"] for chunk in chunks] == list(range(len(baseline)))
        assert [spans(chunk["entities"]) for chunk in chunks] == [spans(chunk["entities"]) for chunk in baseline]
    assert rest_failures == []

    with httpx2.Client(base_url=gateway.url, timeout=30, trust_env=False) as http:
        assert http.get("/health").status_code == 200
        ready = http.get("/ready")
        assert ready.status_code == 200 and ready.json()["ready_workers"] >= 1, ready.text

    sent = settled_texts(tiny_server) - texts_before
    needed = STAYING * len(baseline) + REST_CLIENTS * REST_ROUNDS
    abandoned = sent - needed
    print(
        f"SSE leavers: {LEAVING} streams of {len(baseline)} chunks left after one; TorchServe served {sent:.0f} "
        f"texts, {needed} for the others, {abandoned:.0f} for the {LEAVING} abandoned streams"
    )
    # Each abandoned stream had its first chunk served; a stream that went on after its client had gone would have
    # all of them served (gateway.streaming keeps stream_concurrency, 4, in flight; a few more may have started
    # before the gateway saw the hang-up, and a chunk that shares its upstream request with others' is served).
    assert LEAVING <= abandoned <= LEAVING * len(baseline) // 2
    assert troubles(gateway.log_text()[log_before:]) == []


def test_streams_abandoned_with_chunks_in_flight_give_their_upstream_slot_back(tmp_path, tiny_server, gateway_token):
    process = GatewayProcess(
        tmp_path,
        gateway_environment(
            tiny_server,
            gateway_token,
            stream_chunk_chars="120",
            # One request in flight to TorchServe, one coalesced group at a time: each stream's 4 chunks hold them
            # or queue for them when their client leaves. One not given back would leave none, and every later
            # text would wait for ever or the retry deadline and get 503.
            upstream_concurrency="1",
            coalesce_groups="1",
            retry_deadline_s="10",
        ),
    ).start()
    auth = {"Authorization": f"Bearer {gateway_token}"}

    async def abandon_then_serve() -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[int]]:
        firsts = await asyncio.gather(*(leave_after_first_event(process.url, auth) for _ in range(LEAVING)))
        async with httpx2.AsyncClient(base_url=process.url, timeout=60, trust_env=False) as http:
            events = await read_stream(http, auth)
            statuses = [
                response.status_code
                for response in await asyncio.gather(
                    *(http.post("/v1/entities", json={"text": text}, headers=auth) for text in NORMAL)
                )
            ]
        return firsts, events, statuses

    async def scenario() -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[int]]:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            return await abandon_then_serve()

    try:
        firsts, events, statuses = asyncio.run(scenario())
    finally:
        process.stop()
    assert [first["chunk"] for first in firsts] == [0] * LEAVING
    assert len(chunk_events(events)) == PARAGRAPH_COUNT
    assert statuses == [200] * len(NORMAL)
    assert troubles(process.log_text()) == []  # e.g. "TorchServe is busy: the gateway's 1 requests in flight ..."
