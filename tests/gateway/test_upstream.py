"""TorchServeClient: what is retried (never reached a worker: until the deadline; lost with a dying worker: once),
what is not (a batch the handler failed, 4xx, other 5xx, timeouts), and the budget (deadline, attempts)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2
import pytest

import gateway.upstream
from gateway.errors import GatewayError
from gateway.upstream import TorchServeClient
from nerserve.protocol import DEFAULT_DOCUMENT_BYTES, document_lane
from tests.support.fake_torchserve import (
    NO_WORKER,
    NO_WORKER_OF_VERSION,
    PREDICTION_FAILED,
    WORKER_DIED_500,
    WORKER_DIED_507,
    FakeTorchServe,
    fake_entities,
)
from tests.support.gateway_harness import make_settings
from tests.support.polling import wait_until_async

pytestmark = pytest.mark.anyio


def client_for(handler, **overrides) -> TorchServeClient:
    return TorchServeClient(make_settings(**overrides), transport=httpx2.MockTransport(handler))


@pytest.mark.parametrize("answer", [NO_WORKER, NO_WORKER_OF_VERSION], ids=["no worker", "no worker of a version"])
async def test_no_worker_is_retried_until_it_succeeds(fake: FakeTorchServe, answer):
    fake.script = lambda text, attempt: answer if attempt <= 3 else None
    client = client_for(fake)
    body = await client.predict_json({"text": "Hello Paris"})
    await client.aclose()
    assert body == {
        "entities": [
            {"label": "PER", "text": "Hello", "start": 0, "end": 5, "score": 0.9},
            {"label": "PER", "text": "Paris", "start": 6, "end": 11, "score": 0.9},
        ]
    }
    assert fake.attempts["Hello Paris"] == 4


@pytest.mark.parametrize("answer", [WORKER_DIED_507, WORKER_DIED_500], ids=["507", "500"])
async def test_a_request_whose_worker_died_is_sent_once_more(fake: FakeTorchServe, answer):
    """TorchServe 0.12 answers a dead worker's batch with 507 when it saw exit code 137, else 500 "Worker died."
    (about 1 run in 10 of the worker-kill test)."""
    fake.script = lambda text, attempt: answer if attempt == 1 else None
    client = client_for(fake)
    body = await client.predict_json({"text": "Angela"})
    await client.aclose()
    assert body["entities"][0]["text"] == "Angela" and fake.attempts["Angela"] == 2


@pytest.mark.parametrize("answer", [WORKER_DIED_507, WORKER_DIED_500], ids=["507", "500"])
async def test_a_request_whose_worker_dies_again_is_not_sent_a_third_time(fake: FakeTorchServe, answer):
    """It may be what kills the workers: each retry would put it into a batch of other clients' requests."""
    fake.script = lambda text, attempt: answer
    client = client_for(fake)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "poison"})
    await client.aclose()
    assert fake.attempts["poison"] == 2
    assert error.value.status == 502 and not error.value.retryable
    assert f"TorchServe answered {answer[0]}: Worker died.: the worker serving this request died 2 time(s)" in (
        error.value.message
    )


async def test_worker_lost_retries_follow_the_setting(fake: FakeTorchServe):
    fake.script = lambda text, attempt: WORKER_DIED_507
    client = client_for(fake, retry_worker_lost_max=0)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert fake.attempts["x"] == 1 and error.value.status == 502


@pytest.mark.parametrize(
    "answer",
    [
        PREDICTION_FAILED,
        (503, {"code": 503, "type": "InternalServerException", "message": "Invalid model predict output"}),
        (503, {"code": 503, "type": "InternalServerException", "message": "number of batch response mismatched"}),
        # The handler's own per-request statuses carry nerserve's types: its 503 or 500 is not TorchServe's
        (503, {"code": 503, "type": "ServiceUnavailable", "message": "has no worker to serve inference request"}),
        (500, {"code": 500, "type": "InternalServerError", "message": "Worker died."}),
        (503, None),  # not TorchServe's shape at all (a proxy in between)
    ],
    ids=["prediction failed", "invalid output", "batch mismatch", "handler 503", "handler 500", "empty 503"],
)
async def test_a_batch_the_handler_failed_is_answered_at_once_and_never_retried(fake: FakeTorchServe, answer):
    """The storm of issue 11: 503 "Prediction failed" (the handler raised for the whole batch) retried 24 times
    over 28.9 s failed 97 other clients' requests. Sent again, it fails the next batch too."""
    fake.script = lambda text, attempt: answer
    client = client_for(fake)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert fake.attempts["x"] == 1
    assert error.value.status == 502 and not error.value.retryable
    assert error.value.message.startswith(f"TorchServe answered {answer[0]}")


async def test_no_worker_retries_stop_at_the_attempt_budget(fake: FakeTorchServe):
    fake.script = lambda text, attempt: NO_WORKER
    client = client_for(fake, retry_max_attempts=3, retry_deadline_s=30.0, retry_backoff_max_s=0.01)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert fake.attempts["x"] == 3
    assert error.value.status == 503 and error.value.retryable and "gave up after 3 attempts" in error.value.message


async def test_connection_errors_are_retried(fake: FakeTorchServe, caplog):
    caplog.set_level(logging.INFO, logger="gateway.upstream")
    failures = []

    async def flaky(request: httpx2.Request) -> httpx2.Response:
        if len(failures) < 2:
            failures.append(1)
            raise httpx2.ConnectError("connection refused", request=request)
        return await fake(request)

    client = client_for(flaky)
    prediction = await client.predict(b'{"text": "Hi Rome"}', "application/json")
    await client.aclose()
    assert "TorchServe served a request after 3 attempts" in caplog.messages
    assert prediction.headers == {"x-ner-batch-size": "1"}


@pytest.mark.parametrize("losses, attempts, served", [(1, 2, True), (5, 2, False)])
async def test_a_connection_lost_mid_request_counts_as_a_lost_worker(fake: FakeTorchServe, losses, attempts, served):
    """The request may have reached a batch before the connection broke: sent once more, like a dead worker's."""
    tries = []

    async def breaking(request: httpx2.Request) -> httpx2.Response:
        tries.append(1)
        if len(tries) <= losses:
            raise httpx2.RemoteProtocolError("peer closed connection", request=request)
        return await fake(request)

    client = client_for(breaking)
    if served:
        assert await client.predict_json({"text": "Hi"}) == {"entities": fake_entities("Hi")}
    else:
        with pytest.raises(GatewayError, match=r"connection to TorchServe was lost \(RemoteProtocolError\)") as error:
            await client.predict_json({"text": "Hi"})
        assert error.value.status == 502
    await client.aclose()
    assert len(tries) == attempts


@pytest.mark.parametrize(
    "status, body, kind, message",
    [
        (
            400,
            {"code": 400, "type": "BadRequest", "message": "field 'text' is required"},
            "BadRequest",
            "field 'text' is required",
        ),
        (
            413,
            {"code": 413, "type": "PayloadTooLarge", "message": "text has 9 characters, the limit is 5"},
            "PayloadTooLarge",
            "text has 9 characters, the limit is 5",
        ),
        # TorchServe's own 413 (body over max_request_size) has an empty body
        (413, None, "PayloadTooLarge", "the request body is over TorchServe's max_request_size"),
        (
            404,
            {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: ner_model"},
            "ModelNotFoundException",
            "Model not found: ner_model",
        ),
    ],
)
async def test_client_errors_pass_through_without_retry(fake: FakeTorchServe, status, body, kind, message):
    fake.script = lambda text, attempt: (status, body)
    client = client_for(fake)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert (error.value.status, error.value.type_name, error.value.message) == (status, kind, message)
    assert fake.attempts["x"] == 1


async def test_deadline_exceeded_gives_a_503_with_the_attempts(fake: FakeTorchServe):
    fake.script = lambda text, attempt: NO_WORKER
    client = client_for(fake, retry_deadline_s=0.3, retry_backoff_initial_s=0.02, retry_backoff_max_s=0.08)
    started = time.monotonic()
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    elapsed = time.monotonic() - started
    await client.aclose()
    assert error.value.status == 503 and error.value.retryable
    assert 'TorchServe answered 503: Model "ner_model" has no worker' in error.value.message
    assert f"gave up after {fake.attempts['x']} attempts" in error.value.message
    assert fake.attempts["x"] >= 4
    assert elapsed < 0.3 + 0.2  # never sleeps past the deadline


async def test_no_retry_when_the_deadline_is_zero(fake: FakeTorchServe):
    fake.script = lambda text, attempt: NO_WORKER
    client = client_for(fake, retry_deadline_s=0)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert error.value.status == 503 and fake.attempts["x"] == 1


async def test_a_slow_answer_times_out_with_504_and_is_not_retried(fake: FakeTorchServe):
    fake.delays = {"slow": 2.0}
    client = client_for(fake, upstream_timeout_s=0.2)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "slow"})
    await client.aclose()
    assert error.value.status == 504 and "0.2 s" in error.value.message
    assert fake.attempts["slow"] == 1 and fake.cancelled == 1


async def test_other_server_errors_are_502_and_not_retried(fake: FakeTorchServe):
    fake.script = lambda text, attempt: (501, {"code": 501, "type": "NotImplemented", "message": "not here"})
    client = client_for(fake)
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert error.value.status == 502 and "501: not here" in error.value.message
    assert fake.attempts["x"] == 1


async def test_waiting_for_an_upstream_slot_ends_at_the_retry_deadline(fake: FakeTorchServe):
    fake.delays = {"stalled": 30.0}  # TorchServe never answers the request holding the only slot
    client = client_for(fake, upstream_concurrency=1, retry_deadline_s=0.3, upstream_timeout_s=30.0)
    stalled = asyncio.create_task(client.predict_json({"text": "stalled"}))
    try:
        await wait_until_async(lambda: fake.in_flight == 1, 5, "the stalled request to reach TorchServe")
        started = time.monotonic()
        with pytest.raises(GatewayError) as error:
            async with asyncio.timeout(5):  # without the bound it would wait for the stalled request (30 s)
                await client.predict_json({"text": "second"})
        elapsed = time.monotonic() - started
    finally:
        stalled.cancel()
        await asyncio.gather(stalled, return_exceptions=True)
        await client.aclose()
    assert error.value.status == 503 and error.value.retryable and "TorchServe is busy" in error.value.message
    assert 0.3 <= elapsed < 0.3 + 0.2
    assert "second" not in fake.attempts  # it never reached TorchServe


async def test_a_slot_freed_before_the_deadline_is_used(fake: FakeTorchServe):
    fake.delays = {"slow": 0.2}
    client = client_for(fake, upstream_concurrency=1, retry_deadline_s=2.0)
    first = asyncio.create_task(client.predict_json({"text": "slow"}))
    await wait_until_async(lambda: fake.in_flight == 1, 5, "the slow request to reach TorchServe")
    second = await client.predict_json({"text": "Hi"})
    await first
    await client.aclose()
    assert second == {"entities": fake_entities("Hi")}
    assert fake.completed == ["slow", "Hi"] and fake.peak == 1


DOCUMENT = "Paris " * 400  # 2,400 characters: over the default document_bytes (2,048) as a JSON body


async def test_a_document_goes_to_the_document_lane_and_a_short_text_to_the_model(fake: FakeTorchServe):
    fake.models.add(document_lane("ner_model"))
    client = client_for(fake)
    await client.predict_json({"text": "Hi Rome"})
    await client.predict_json({"text": DEFAULT_DOCUMENT_BYTES * "a"})  # 2,048 characters: a body over the limit
    await client.predict_json({"text": "a" * (DEFAULT_DOCUMENT_BYTES - len('{"text": ""}'))})  # a body at it
    await client.aclose()
    assert fake.served_by == ["ner_model", "ner_model_documents", "ner_model"]


async def test_a_group_of_short_texts_goes_to_the_model_even_when_its_body_is_over_document_bytes(
    fake: FakeTorchServe,
):
    fake.models.add(document_lane("ner_model"))
    release, held = asyncio.Event(), []

    async def upstream(request: httpx2.Request) -> httpx2.Response:
        if b"hold" in request.content:
            held.append(request)
            await release.wait()
        return await fake(request)

    client = client_for(upstream, coalesce_max_texts=32, coalesce_groups=1)
    first = asyncio.create_task(client.predict_json({"text": "hold"}))
    await wait_until_async(lambda: held, 5, "the first text upstream")
    texts = [f"{index:02d} " + "x" * 85 for index in range(20)]  # 100 bytes of payload each: 2,000 in all
    grouped = [asyncio.create_task(client.predict_json({"text": text})) for text in texts]
    await wait_until_async(lambda: client.coalescer.waiting == len(texts), 5, "the texts to wait for a group")
    release.set()
    await asyncio.gather(first, *grouped)
    await client.aclose()
    group = fake.bodies[-1][0]
    assert len(group) > DEFAULT_DOCUMENT_BYTES and group.count(b'"text"') == len(texts)
    assert fake.served_by == ["ner_model", "ner_model"]


async def test_without_a_document_lane_documents_go_to_the_model_and_the_lane_is_asked_again_later(
    fake: FakeTorchServe, monkeypatch
):
    monkeypatch.setattr(gateway.upstream, "LANE_RECHECK_S", 0.2)
    client = client_for(fake)
    first = await client.predict_json({"text": DOCUMENT})
    await client.predict_json({"text": DOCUMENT})  # not asked again yet: straight to the model
    fake.models.add(document_lane("ner_model"))
    await asyncio.sleep(0.25)
    await client.predict_json({"text": DOCUMENT})
    await client.aclose()
    assert first == {"entities": fake_entities(DOCUMENT)}
    assert fake.served_by == ["ner_model", "ner_model", "ner_model_documents"]
    assert fake.attempts[DOCUMENT] == 3  # the lane's 404 is not an attempt of the model's


async def test_document_bytes_zero_sends_everything_to_the_model(fake: FakeTorchServe):
    fake.models.add(document_lane("ner_model"))
    client = client_for(fake, document_bytes=0)
    await client.predict_json({"text": DOCUMENT})
    await client.aclose()
    assert fake.served_by == ["ner_model"]


async def test_documents_in_flight_never_take_the_slots_of_short_texts(fake: FakeTorchServe):
    fake.models.add(document_lane("ner_model"))
    fake.delays = {"Paris": 30.0}  # the document holds the lane's only slot
    client = client_for(fake, upstream_concurrency=1, retry_deadline_s=1.0)
    document = asyncio.create_task(client.predict_json({"text": DOCUMENT}))
    try:
        await wait_until_async(lambda: fake.in_flight == 1, 5, "the document to reach TorchServe")
        short = await client.predict_json({"text": "Hi Rome"})
    finally:
        document.cancel()
        await asyncio.gather(document, return_exceptions=True)
        await client.aclose()
    assert short == {"entities": fake_entities("Hi Rome")}
    assert fake.served_by == ["ner_model_documents", "ner_model"]


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    client = client_for(FakeTorchServe(), retry_backoff_initial_s=0.1, retry_backoff_max_s=1.0)
    for attempt, step in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)]:
        delays = [client._backoff(attempt) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 10  # jittered, not constant


async def test_ready_workers_counts_ready_ones_only(fake: FakeTorchServe):
    client = client_for(fake)
    assert await client.ready_workers() == (1, "")
    fake.workers = [{"id": "9000", "status": "UNLOADING"}]
    assert await client.ready_workers() == (0, "no READY worker")
    await client.aclose()

    def down(request):
        raise httpx2.ConnectError("refused", request=request)

    client = client_for(down)
    assert await client.ready_workers() == (0, "management API unreachable (ConnectError)")
    await client.aclose()

    client = client_for(lambda request: httpx2.Response(200, json={"not": "a description"}))
    assert await client.ready_workers() == (0, "management API answered something that is not a model description")
    await client.aclose()


async def test_an_answer_that_is_not_json_is_502():
    client = client_for(lambda request: httpx2.Response(200, text="<html>proxy error</html>"))
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    await client.aclose()
    assert error.value.status == 502
