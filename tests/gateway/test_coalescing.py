"""gateway.coalescing: texts that wait at the same moment share one multi-text request; each caller gets its own
answer or its own error; a lone text is sent at once and alone; callers that leave are dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.coalescing import Answer, Coalescer
from gateway.errors import GatewayError, upstream_refusal
from nerserve.protocol import BATCH_SIZE_HEADER, error_body
from tests.support.fake_torchserve import FakeTorchServe, fake_entities
from tests.support.gateway_harness import AUTH
from tests.support.polling import wait_until_async

pytestmark = pytest.mark.anyio


class Upstream:
    """Answers like TorchServe's handler: one text, or ``{"instances": [...]}`` with one result per instance
    (``refuse`` names texts answered with a per-text error of status ``refusal``), with its batch size header
    (the request's texts). Requests wait until ``release`` is set."""

    def __init__(self, refuse: tuple[str, ...] = (), refusal: int = 400) -> None:
        self.sent: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.refuse = refuse
        self.refusal = refusal
        self.in_flight = 0
        self.cancelled = 0

    def answer(self, payload: dict[str, Any], index: int | None) -> dict[str, Any]:
        if payload["text"] in self.refuse:
            prefix = f"instances[{index}]: " if index is not None else ""
            return error_body(self.refusal, prefix + "unknown aggregation 'x'")
        return {"entities": fake_entities(payload["text"])}

    async def __call__(self, payload: dict[str, Any]) -> Answer:
        self.sent.append(payload)
        self.in_flight += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        if "instances" not in payload:
            answer = self.answer(payload, None)
            if "code" in answer:  # as the upstream client raises a single text's error answer
                raise upstream_refusal(answer["code"], answer["message"], answer["type"])
            return Answer(answer, {BATCH_SIZE_HEADER: "1"})
        results = [self.answer(one, i) for i, one in enumerate(payload["instances"])]
        return Answer({"predictions": results}, {BATCH_SIZE_HEADER: str(len(results))})


async def one_in_flight(upstream: Upstream, max_texts: int = 32, max_bytes: int = 16384) -> tuple[Coalescer, Any]:
    """A coalescer with one group slot, taken by a request for "first" that ``upstream`` holds until released."""
    upstream.release.clear()
    coalescer = Coalescer(upstream, max_texts=max_texts, max_bytes=max_bytes, groups=1)
    first = asyncio.create_task(coalescer.predict({"text": "first"}))
    await wait_until_async(lambda: upstream.in_flight == 1, 5, "the first request upstream")
    return coalescer, first


async def test_a_lone_text_is_sent_at_once_and_alone():
    upstream = Upstream()
    coalescer = Coalescer(upstream, max_texts=32, max_bytes=16384, groups=2)
    assert (await coalescer.predict({"text": "Hi Rome"})).body == {"entities": fake_entities("Hi Rome")}
    assert upstream.sent == [{"text": "Hi Rome"}]


async def test_texts_waiting_while_the_groups_are_busy_share_one_request_and_each_gets_its_own_answer():
    upstream = Upstream()
    coalescer, first = await one_in_flight(upstream)
    texts = [f"text {i}" for i in range(5)]
    waiting = [asyncio.create_task(coalescer.predict({"text": t, "format": "entities"})) for t in texts]
    await asyncio.sleep(0.01)
    assert len(upstream.sent) == 1  # the others wait for the only group slot
    upstream.release.set()
    answers = await asyncio.gather(first, *waiting)
    assert [answer.body for answer in answers] == [{"entities": fake_entities(t)} for t in ["first", *texts]]
    assert [answer.headers for answer in answers] == [{BATCH_SIZE_HEADER: "1"}] + [{BATCH_SIZE_HEADER: "5"}] * 5
    assert upstream.sent[1] == {"instances": [{"text": t, "format": "entities"} for t in texts]}
    assert (coalescer.sent_groups, coalescer.sent_texts) == (2, 6)


async def test_a_per_text_error_goes_to_its_own_caller_as_if_sent_alone():
    upstream = Upstream(refuse=("bad",))
    coalescer, blocker = await one_in_flight(upstream)
    good = asyncio.create_task(coalescer.predict({"text": "good"}))
    bad = asyncio.create_task(coalescer.predict({"text": "bad"}))
    await asyncio.sleep(0.01)
    upstream.release.set()
    await blocker
    assert (await good).body == {"entities": fake_entities("good")}
    with pytest.raises(GatewayError) as error:
        await bad
    assert (error.value.status, error.value.type_name, error.value.message) == (
        400,
        "BadRequest",
        "unknown aggregation 'x'",
    )
    assert upstream.sent[1] == {"instances": [{"text": "good"}, {"text": "bad"}]}


async def test_a_per_text_server_error_in_a_group_is_the_502_the_text_gets_alone():
    upstream = Upstream(refuse=("bad",), refusal=500)
    with pytest.raises(GatewayError) as alone:
        await Coalescer(upstream, max_texts=32, max_bytes=16384, groups=1).predict({"text": "bad"})
    coalescer, blocker = await one_in_flight(upstream)
    grouped = [asyncio.create_task(coalescer.predict({"text": text})) for text in ("bad", "good")]
    await asyncio.sleep(0.01)
    upstream.release.set()
    await blocker
    with pytest.raises(GatewayError) as error:
        await grouped[0]
    assert (await grouped[1]).body == {"entities": fake_entities("good")}
    assert upstream.sent[-1] == {"instances": [{"text": "bad"}, {"text": "good"}]}
    assert error.value.to_body() == alone.value.to_body()
    assert alone.value.to_body() == error_body(502, "TorchServe answered 500: unknown aggregation 'x'", "BadGateway")


async def test_a_text_that_goes_by_itself_goes_by_its_callers_own_way():
    upstream = Upstream()
    own: list[str] = []

    def alone_for(text: str) -> Any:
        async def alone() -> Answer:
            own.append(text)
            return Answer({"entities": []}, {"X-Own": text}, text.encode())

        return alone

    coalescer = Coalescer(upstream, max_texts=32, max_bytes=1024, groups=1)
    lone = await coalescer.predict({"text": "lone"}, alone_for("lone"))
    big = await coalescer.predict({"text": "x" * 2000}, alone_for("big"))
    assert (lone.content, big.headers) == (b"lone", {"X-Own": "big"})
    coalescer, blocker = await one_in_flight(upstream)
    grouped = [asyncio.create_task(coalescer.predict({"text": t}, alone_for(t))) for t in ("a b", "c d")]
    await asyncio.sleep(0.01)
    upstream.release.set()
    answers = await asyncio.gather(blocker, *grouped)
    assert own == ["lone", "big"]  # the grouped texts went in the group's request
    assert [answer.content for answer in answers] == [None, None, None]
    assert upstream.sent == [{"text": "first"}, {"instances": [{"text": "a b"}, {"text": "c d"}]}]


@pytest.mark.parametrize(
    "max_texts, max_bytes, groups",
    [(2, 16384, [1, 2, 2, 1]), (32, 40, [1, 2, 2, 1])],  # 5 texts of 20 bytes each behind a first one
)
async def test_groups_hold_at_most_max_texts_and_max_bytes(max_texts, max_bytes, groups):
    upstream = Upstream()
    coalescer, first = await one_in_flight(upstream, max_texts=max_texts, max_bytes=max_bytes)
    tasks = [first]
    tasks += [asyncio.create_task(coalescer.predict({"text": f"texts {i}"})) for i in range(5)]  # 20 bytes each
    await asyncio.sleep(0.01)
    upstream.release.set()
    await asyncio.gather(*tasks)
    assert [len(sent.get("instances", [sent])) for sent in upstream.sent] == groups


async def test_a_payload_over_max_bytes_is_sent_alone_at_once():
    upstream = Upstream()
    coalescer, blocker = await one_in_flight(upstream, max_bytes=1024)
    big = asyncio.create_task(coalescer.predict({"text": "x" * 2000}))
    await wait_until_async(lambda: upstream.in_flight == 2, 5, "the big text upstream without a group slot")
    upstream.release.set()
    await asyncio.gather(blocker, big)
    assert upstream.sent[1] == {"text": "x" * 2000}


async def test_a_group_refused_as_a_whole_is_sent_again_text_by_text():
    calls: list[dict[str, Any]] = []
    gate = asyncio.Event()

    async def send(payload: dict[str, Any]) -> Answer:
        calls.append(payload)
        await gate.wait()
        if "instances" in payload:
            raise GatewayError(413, "the request's texts have too many word pieces")
        return Answer({"entities": fake_entities(payload["text"])}, {})

    coalescer = Coalescer(send, max_texts=32, max_bytes=16384, groups=1)
    first = asyncio.create_task(coalescer.predict({"text": "first"}))
    await wait_until_async(lambda: len(calls) == 1, 5, "the first request upstream")
    rest = [asyncio.create_task(coalescer.predict({"text": t})) for t in ("a b", "c d")]
    await asyncio.sleep(0.01)
    gate.set()
    answers = await asyncio.gather(first, *rest)
    assert [answer.body for answer in answers] == [{"entities": fake_entities(t)} for t in ("first", "a b", "c d")]
    assert calls[1:] == [{"instances": [{"text": "a b"}, {"text": "c d"}]}, {"text": "a b"}, {"text": "c d"}]


async def test_a_failure_of_the_whole_group_reaches_every_caller():
    gate = asyncio.Event()
    calls = 0

    async def send(payload: dict[str, Any]) -> Answer:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise GatewayError(502, "TorchServe answered 500: Worker died.")

    coalescer = Coalescer(send, max_texts=32, max_bytes=16384, groups=1)
    tasks = [asyncio.create_task(coalescer.predict({"text": "first"}))]
    await wait_until_async(lambda: calls == 1, 5, "the first request upstream")
    tasks += [asyncio.create_task(coalescer.predict({"text": t})) for t in ("a", "b")]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [(type(r), getattr(r, "status", None)) for r in results] == [(GatewayError, 502)] * 3
    assert calls == 2  # never sent again text by text: a 5xx is not the group's own fault


async def test_callers_that_leave_are_dropped_and_a_deserted_group_is_cancelled_upstream():
    upstream = Upstream()
    coalescer, first = await one_in_flight(upstream)
    gone = asyncio.create_task(coalescer.predict({"text": "gone"}))
    stays = asyncio.create_task(coalescer.predict({"text": "stays"}))
    await asyncio.sleep(0.01)
    gone.cancel()  # left while waiting for a group: never sent
    first.cancel()  # left while its group was upstream: that request is cancelled
    await asyncio.gather(gone, first, return_exceptions=True)
    await wait_until_async(lambda: upstream.cancelled == 1, 5, "the deserted request to be cancelled")
    upstream.release.set()
    assert (await stays).body == {"entities": fake_entities("stays")}
    assert upstream.sent == [{"text": "first"}, {"text": "stays"}]


async def test_websocket_messages_sent_together_are_coalesced_and_answered_by_id(make_client, fake: FakeTorchServe):
    fake.delays = {"slow": 0.3}
    client = make_client(coalesce_max_texts=32, coalesce_groups=1)
    texts = ["slow start", *[f"Text number {i}" for i in range(10)]]
    with client.websocket_connect("/ws/entities", headers=dict(AUTH)) as ws:
        for index, text in enumerate(texts):
            ws.send_json({"id": index, "text": text})
        replies = {reply["id"]: reply for reply in (ws.receive_json() for _ in texts)}
    assert {i: r["entities"] for i, r in replies.items()} == {i: fake_entities(t) for i, t in enumerate(texts)}
    requests = [body for body, _ in fake.bodies]
    assert len(requests) < len(texts)  # the texts behind the slow one went up together
    assert sorted(call["text"] for call in fake.calls) == sorted(texts)
