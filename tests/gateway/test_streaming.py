"""Server-Sent Events: document order whatever finishes first, offsets rebased, [DONE] last, errors, cancellation."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise

import httpx2
import pytest

from gateway.chunking import split_document
from gateway.errors import GatewayError
from gateway.schemas import PredictBody
from gateway.streaming import DONE, document_events, in_order, rebase
from gateway.upstream import TorchServeClient
from tests.support.fake_torchserve import NO_WORKER, fake_entities
from tests.support.gateway_harness import AUTH, TOKEN, make_settings, sse_events
from tests.support.polling import wait_until

DOCUMENT = (
    "Angela Merkel met Tim Cook in Berlin. They talked about Apple and Siemens for an hour.\n\n"
    "Later that day Emmanuel Macron arrived from Paris. Nobody expected him.\n\n"
    "In London, Rishi spoke with Olaf about trade. The weather was grey.\n\n"
    "Finally Mary went home to Rome."
)


def stream(client, body=None, headers=AUTH, **kwargs):
    response = client.post("/v1/stream", json=body, headers=headers, **kwargs)
    return response, sse_events(response.text)


def data_events(events):
    assert events[-1] == ("message", "[DONE]")  # always last
    return [json.loads(data) for event, data in events[:-1] if event == "message"]


def test_events_come_in_document_order_with_offsets_into_the_document(make_client, fake):
    client = make_client(stream_chunk_chars=64, stream_concurrency=4)
    response, events = stream(client, {"text": DOCUMENT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = data_events(events)
    assert [c["chunk"] for c in chunks] == list(range(len(chunks))) and len(chunks) >= 5
    assert all(c["chunks"] == len(chunks) for c in chunks)
    assert chunks[0]["start"] == 0 and chunks[-1]["end"] == len(DOCUMENT)
    assert all(a["end"] == b["start"] for a, b in pairwise(chunks))
    entities = [e for c in chunks for e in c["entities"]]
    for entity in entities:
        assert DOCUMENT[entity["start"] : entity["end"]] == entity["text"]
    # The fake model is context-free, so chunked results must equal the whole document's.
    assert entities == fake_entities(DOCUMENT)
    assert len(fake.calls) == len(chunks)


def test_order_holds_when_later_chunks_finish_first(make_client, fake):
    fake.delays = {"Merkel": 0.6}  # only the first chunk is slow
    client = make_client(stream_chunk_chars=64, stream_concurrency=4)
    _, events = stream(client, {"text": DOCUMENT})
    chunks = data_events(events)
    assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
    assert "Merkel" not in fake.completed[0]  # others finished before the first ...
    assert "Merkel" in chunks[0]["entities"][1]["text"]  # ... yet the first chunk was sent first
    assert fake.peak == 4  # concurrent, within the window


def test_segments_rebased_cover_the_document(make_client):
    client = make_client(stream_chunk_chars=64)
    _, events = stream(client, {"text": DOCUMENT, "format": "segments", "aggregation": "first"})
    segments = [s for c in data_events(events) for s in c["segments"]]
    assert "".join(s["text"] for s in segments) == DOCUMENT
    assert all(DOCUMENT[s["start"] : s["end"]] == s["text"] for s in segments)


def test_get_for_event_source_with_token_in_query(client):
    response = client.get("/v1/stream", params={"text": "Hello Paris", "token": TOKEN, "format": "entities"})
    chunks = data_events(sse_events(response.text))
    assert chunks == [{"chunk": 0, "chunks": 1, "start": 0, "end": 11, "entities": fake_entities("Hello Paris")}]


def test_text_plain_body_and_empty_text(client):
    response = client.post("/v1/stream", content=b"Hi Rome", headers={**AUTH, "Content-Type": "text/plain"})
    assert data_events(sse_events(response.text))[0]["entities"] == fake_entities("Hi Rome")
    _, events = stream(client, {"text": ""})
    assert events == [("message", "[DONE]")]


def test_resume_after_last_event_id(make_client):
    client = make_client(stream_chunk_chars=64)
    _, events = stream(client, {"text": DOCUMENT}, headers={**AUTH, "Last-Event-ID": "1"})
    chunks = data_events(events)
    assert chunks[0]["chunk"] == 2
    # Reconnecting after the last chunk: 204, which stops EventSource from reconnecting again.
    response, _ = stream(client, {"text": DOCUMENT}, headers={**AUTH, "Last-Event-ID": str(chunks[-1]["chunk"])})
    assert response.status_code == 204


def test_an_upstream_error_is_an_error_event_then_done(make_client, fake):
    fake.script = lambda text, attempt: (
        (400, {"code": 400, "type": "BadRequest", "message": "no"}) if "Macron" in text else None
    )
    client = make_client(stream_chunk_chars=64)
    response, events = stream(client, {"text": DOCUMENT})
    assert response.status_code == 200
    names = [event for event, _ in events]
    assert names.count("error") == 1 and events[-1] == ("message", "[DONE]")
    error = json.loads(events[names.index("error")][1])
    assert error == {"chunk": names.index("error"), "error": {"code": 400, "type": "BadRequest", "message": "no"}}
    assert all(name == "message" for name in names[: names.index("error")])  # nothing after the error but DONE
    assert len(events) == names.index("error") + 2


@pytest.mark.anyio
async def test_an_error_cancels_the_chunks_still_in_flight_before_done(fake):
    fake.script = lambda text, attempt: (
        (400, {"code": 400, "type": "BadRequest", "message": "no"}) if "Merkel" in text else None
    )
    fake.delays = {"They": 5.0, "Later": 5.0}  # chunks 1 and 2, started with the failing chunk 0
    client = TorchServeClient(make_settings(), transport=fake.transport())
    chunks = split_document(DOCUMENT, 64)
    names = []
    try:
        async for event in document_events(client.predict_json, PredictBody(text=DOCUMENT), chunks, window=3):
            names.append(event.event)
            if event.data == DONE:
                # Checked as [DONE] is handed over, not later: by then the two slow requests must be cancelled.
                assert (fake.cancelled, fake.in_flight) == (2, 0)
    finally:
        await client.aclose()
    assert names == ["error", None]
    assert len(fake.calls) == 3  # no chunk after the window was sent


def test_deadline_exceeded_is_an_error_event(make_client, fake):
    fake.script = lambda text, attempt: NO_WORKER
    client = make_client(retry_deadline_s=0.2)
    _, events = stream(client, {"text": "Hello"})
    assert events[0][0] == "error" and json.loads(events[0][1])["error"]["code"] == 503
    assert events[-1] == ("message", "[DONE]")


@pytest.mark.parametrize(
    "body, headers, status, message",
    [
        ({"text": "x" * 101}, AUTH, 413, "text has 101 characters, the limit is 100"),
        ({"txt": "x"}, AUTH, 400, "unknown field 'txt'"),
        ({"text": "x", "aggregation": "best"}, AUTH, 400, "aggregation"),
        ({"text": "x"}, {}, 401, "missing API key"),
        ({"text": "x"}, {"Authorization": "Bearer tester.wrong-secret-000000"}, 401, "invalid API key"),
    ],
)
def test_refused_before_the_stream_starts(make_client, body, headers, status, message):
    client = make_client(max_text_chars=100, stream_chunk_chars=64)
    response = client.post("/v1/stream", json=body, headers=headers)
    assert response.status_code == status and message in response.json()["message"]
    assert response.json()["code"] == status


@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000])
def test_deeply_nested_json_is_a_json_400_before_the_stream_starts(client, fake, body):
    """Issue 11: it was a plain-text 500 (a RecursionError)."""
    response = client.post("/v1/stream", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert response.json()["message"].startswith("the JSON body is nested more than 64 levels deep")
    assert fake.calls == []


def test_get_without_token_is_401_and_without_text_400(client):
    response = client.get("/v1/stream", params={"text": "x"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    response = client.get("/v1/stream", params={"token": TOKEN})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "type": "BadRequest", "message": "query.text: Field required"}


@pytest.mark.anyio
async def test_in_order_yields_in_order_within_the_window():
    running, peak = 0, 0

    async def work(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.1 if item == 0 else 0.01)  # the first is the slowest
            if item == 3:
                raise GatewayError(400, "bad three")
            return item * 10
        finally:
            running -= 1

    results = [(item, result) async for item, result in in_order(range(6), work, window=3)]
    assert [item for item, _ in results] == list(range(6)) and peak == 3
    assert isinstance(results[3][1], GatewayError) and results[4][1] == 40


@pytest.mark.anyio
async def test_in_order_cancels_running_work_when_the_consumer_leaves():
    started, cancelled = [], []

    async def work(item: int) -> int:
        started.append(item)
        try:
            await asyncio.sleep(0.01 if item == 0 else 10)
            return item
        except asyncio.CancelledError:
            cancelled.append(item)
            raise

    generator = in_order(range(100), work, window=3)
    assert await generator.__anext__() == (0, 0)
    await generator.aclose()  # the consumer goes away
    assert cancelled == [1, 2] and started == [0, 1, 2]  # the third, queued after the first result, never ran


def test_client_disconnect_cancels_pending_upstream_work(start_live):
    live = start_live(stream_chunk_chars=64, stream_concurrency=2)
    url, fake = live.url, live.fake
    fake.delays = {"Later": 5.0, "Finally": 5.0, "London": 5.0, "They": 5.0}
    with httpx2.Client(timeout=10) as http:
        with http.stream("POST", f"{url}/v1/stream", json={"text": DOCUMENT}, headers=AUTH) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    first = json.loads(line[5:])
                    break
    assert first["chunk"] == 0
    wait_until(lambda: fake.in_flight == 0, 5, "the chunks in flight to be cancelled")
    assert fake.in_flight == 0 and fake.cancelled == 2  # the window's two slow chunks
    assert len(fake.calls) == 3  # and no chunk after them was ever sent


def test_rebase_moves_offsets_and_keeps_everything_else():
    document = "xxxxHello Paris"
    body = {"entities": [{"label": "PER", "text": "Hello", "start": 0, "end": 5, "score": 0.5}]}
    (entity,) = rebase(body, 4)["entities"]
    assert entity == {"label": "PER", "text": "Hello", "start": 4, "end": 9, "score": 0.5}
    assert document[entity["start"] : entity["end"]] == entity["text"]
    with pytest.raises(GatewayError):
        rebase({"something": []}, 0)
