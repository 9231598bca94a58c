"""TorchServeClient: retries on 503/507 and connection errors within a deadline, 4xx passed through, timeouts."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2
import pytest

from gateway.errors import GatewayError
from gateway.upstream import TorchServeClient
from tests.support.fake_torchserve import FakeTorchServe, fake_entities
from tests.support.gateway_harness import make_settings
from tests.support.polling import wait_until_async

pytestmark = pytest.mark.anyio


def client_for(handler, **overrides) -> TorchServeClient:
    return TorchServeClient(make_settings(**overrides), transport=httpx2.MockTransport(handler))


@pytest.mark.parametrize("status", [503, 507])
async def test_worker_restarting_is_retried_until_it_succeeds(fake: FakeTorchServe, status):
    fake.script = lambda text, attempt: (
        (status, {"code": status, "type": "ServiceUnavailableException", "message": "Worker died."})
        if attempt <= 2
        else None
    )
    client = client_for(fake)
    body = await client.predict_json({"text": "Hello Paris"})
    await client.aclose()
    assert body == {
        "entities": [
            {"label": "PER", "text": "Hello", "start": 0, "end": 5, "score": 0.9},
            {"label": "PER", "text": "Paris", "start": 6, "end": 11, "score": 0.9},
        ]
    }
    assert fake.attempts["Hello Paris"] == 3


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
    fake.script = lambda text, attempt: (
        507,
        {"code": 507, "type": "InternalServerException", "message": "Worker died."},
    )
    client = client_for(fake, retry_deadline_s=0.3, retry_backoff_initial_s=0.02, retry_backoff_max_s=0.08)
    started = time.monotonic()
    with pytest.raises(GatewayError) as error:
        await client.predict_json({"text": "x"})
    elapsed = time.monotonic() - started
    await client.aclose()
    assert error.value.status == 503 and error.value.retryable
    assert "TorchServe answered 507: Worker died." in error.value.message
    assert f"gave up after {fake.attempts['x']} attempts" in error.value.message
    assert fake.attempts["x"] >= 4
    assert elapsed < 0.3 + 0.2  # never sleeps past the deadline


async def test_no_retry_when_the_deadline_is_zero(fake: FakeTorchServe):
    fake.script = lambda text, attempt: (503, None)
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


async def test_worker_died_as_500_is_retried(fake: FakeTorchServe):
    """TorchServe 0.12 answers a killed worker's batch with 500 "Worker died." when it has not yet seen the exit
    code (507 otherwise): the worker-kill test saw it in about 1 run in 10."""
    fake.script = lambda text, attempt: (
        (500, {"code": 500, "type": "InternalServerException", "message": "Worker died."}) if attempt == 1 else None
    )
    client = client_for(fake)
    body = await client.predict_json({"text": "Angela"})
    await client.aclose()
    assert body["entities"][0]["text"] == "Angela" and fake.attempts["Angela"] == 2


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
