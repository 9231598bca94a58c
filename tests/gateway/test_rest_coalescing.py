"""REST ``POST /v1/entities`` coalesced: one text's JSON body joins the texts waiting at the same moment, and its
client sees what passthrough gives it (status, JSON, error body, headers); every other body, and a body over the
coalescer's bytes or the document lane's size, is forwarded as it came, at once; a client that leaves is dropped.

The gateway runs in the test's event loop (httpx2's ASGITransport, lifespan run) over the fake TorchServe, with a
gate (``Held``) so a group slot stays taken exactly as long as a test needs; the disconnect test runs uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from gateway.app import create_app
from gateway.upstream import TorchServeClient
from nerserve.protocol import BATCH_SIZE_HEADER, MODEL_VERSION_HEADER, document_lane, error_body, v2_response
from tests.support.fake_torchserve import NO_WORKER, FakeTorchServe, fake_entities, fake_segments
from tests.support.gateway_harness import AUTH, make_settings
from tests.support.polling import wait_until_async

pytestmark = pytest.mark.anyio

VERSION = "2.1"
LANE = document_lane("ner_model")
HOLD = {"text": "hold the slot"}  # held upstream until the test releases it: the only group slot stays taken


class Held:
    """The fake TorchServe (``fake``) with what these tests need around it: a request whose body holds "hold"
    waits until ``release`` is set, every answer carries a model version, KServe v2 bodies are answered (the fake
    serves one text and v1 ``instances``), and with ``refuse_groups`` a v1 body is refused as a whole (413)."""

    def __init__(self) -> None:
        self.fake = FakeTorchServe()
        self.fake.models.add(LANE)
        self.release = asyncio.Event()
        self.held = 0
        self.refuse_groups = False
        self.refused: list[bytes] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        content = request.content
        if b"hold" in content:
            self.held += 1
            await self.release.wait()
        if self.refuse_groups and b'"instances"' in content:
            self.refused.append(content)
            return httpx2.Response(413, json=error_body(413, "the request's texts have too many word pieces"))
        if b'"inputs"' in content:
            response = self.v2(request)
        else:
            response = await self.fake(request)
        response.headers[MODEL_VERSION_HEADER] = VERSION
        return response

    def v2(self, request: httpx2.Request) -> httpx2.Response:
        self.fake.bodies.append((request.content, request.headers.get("content-type")))
        self.fake.served_by.append(request.url.path.removeprefix("/predictions/"))
        texts = json.loads(request.content)["inputs"][0]["data"]
        body = v2_response("ner_model", VERSION, None, [{"entities": fake_entities(text)} for text in texts])
        return httpx2.Response(200, json=body, headers={BATCH_SIZE_HEADER: "1"})


@contextlib.asynccontextmanager
async def gateway(upstream: Any, **overrides: Any) -> AsyncIterator[tuple[httpx2.AsyncClient, TorchServeClient]]:
    """(an HTTP client of the gateway app, its TorchServe client) over ``upstream``; REST coalesced with one group
    slot unless ``overrides`` say otherwise."""
    settings = make_settings(**{"coalesce_max_texts": 32, "coalesce_groups": 1, **overrides})
    app = create_app(settings, transport=httpx2.MockTransport(upstream))
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver", headers=dict(AUTH)) as http:
            yield http, app.state.services.client


async def take_the_slot(held: Held, http: httpx2.AsyncClient) -> asyncio.Task[httpx2.Response]:
    """A REST call held upstream: the only group slot is taken until ``held.release`` is set."""
    blocker = asyncio.create_task(http.post("/v1/entities", json=HOLD))
    await wait_until_async(lambda: held.held == 1, 5, "the first call upstream")
    return blocker


async def post_all(http: httpx2.AsyncClient, calls: list[dict[str, Any]]) -> list[asyncio.Task[httpx2.Response]]:
    return [asyncio.create_task(http.post("/v1/entities", json=call)) for call in calls]


async def released_together(
    held: Held, client: Any, blocker: asyncio.Task[httpx2.Response], tasks: list[asyncio.Task[httpx2.Response]]
) -> list[httpx2.Response]:
    """Once every call of ``tasks`` waits for a group behind the held ``blocker``, release it: the responses of
    the blocker and of the calls, in that order."""
    await wait_until_async(lambda: client.coalescer.waiting == len(tasks), 5, "the calls to wait for a group")
    held.release.set()
    return list(await asyncio.gather(blocker, *tasks))


async def passthrough(calls: list[dict[str, Any]], script_of: Any = None) -> list[httpx2.Response]:
    """The same calls one after the other through a gateway that coalesces nothing (its fake's script made by
    ``script_of(fake)``): what a client saw before."""
    reference = Held()
    reference.fake.script = script_of(reference.fake) if script_of else None
    async with gateway(reference, coalesce_max_texts=1) as (http, _):
        return [await http.post("/v1/entities", json=call) for call in calls]


def seen(response: httpx2.Response) -> tuple[int, Any, dict[str, str]]:
    """What a client sees of an answer, but for the batch size (which tells the batch it went in)."""
    names = ("content-type", MODEL_VERSION_HEADER.lower(), "retry-after", "connection")
    return response.status_code, response.json(), {name: response.headers.get(name, "") for name in names}


def sent_instances(fake: FakeTorchServe, index: int) -> list[dict[str, Any]]:
    body: dict[str, list[dict[str, Any]]] = json.loads(fake.bodies[index][0])
    return sorted(body["instances"], key=lambda instance: instance["text"])


async def test_rest_calls_waiting_for_a_group_slot_go_up_as_one_v1_request_and_each_gets_its_own_answer():
    calls = [
        {"text": "Angela met Tim in Rome"},
        {"text": "Hi Oslo", "format": "segments"},
        {"text": "Mary and Paris", "aggregation": "max"},
        {"text": "no names here"},
    ]
    held = Held()
    async with gateway(held) as (http, client):
        blocker = await take_the_slot(held, http)
        held_response, *responses = await released_together(held, client, blocker, await post_all(http, calls))
        assert held_response.headers[BATCH_SIZE_HEADER] == "1"
    assert len(held.fake.bodies) == 2  # the held call, then one request for all the others
    assert sent_instances(held.fake, 1) == sorted(calls, key=lambda call: call["text"])
    assert [response.json() for response in responses] == [
        {"entities": fake_entities(calls[0]["text"])},
        {"segments": fake_segments(calls[1]["text"])},
        {"entities": fake_entities(calls[2]["text"])},
        {"entities": []},
    ]
    # The group's headers went to each of its calls; the rest is what passthrough gives each call alone.
    assert [response.headers[BATCH_SIZE_HEADER] for response in responses] == [str(len(calls))] * len(calls)
    assert [seen(response) for response in responses] == [seen(alone) for alone in await passthrough(calls)]


def refuse_like_the_handler(fake: FakeTorchServe) -> Any:
    """A ``fake.script`` giving texts starting "Refused" a 400 and texts starting "Long" a 413, worded as the
    handler words them: the text's own message alone, ``instances[i]: `` before it inside a v1 request."""

    def script(text: str, attempt: int) -> tuple[int, Any] | None:
        status = 400 if text.startswith("Refused") else 413 if text.startswith("Long") else None
        if status is None:
            return None
        request = json.loads(fake.bodies[-1][0])
        instances = [instance["text"] for instance in request.get("instances", [])]
        where = f"instances[{instances.index(text)}]: " if instances else ""
        message = "'aggregation' must be one of [...]" if status == 400 else "the text has 9,000 word pieces"
        return status, error_body(status, where + message)

    return script


async def test_a_per_text_error_in_a_group_is_the_calls_own_answer_as_passthrough_gives_it():
    calls = [
        {"text": "Angela in Rome"},
        {"text": "Refused text", "aggregation": "best"},
        {"text": "Long text"},
        {"text": "Tim in Oslo"},
    ]
    held = Held()
    held.fake.script = refuse_like_the_handler(held.fake)
    async with gateway(held) as (http, client):
        blocker = await take_the_slot(held, http)
        responses = await released_together(held, client, blocker, await post_all(http, calls))
    assert len(held.fake.bodies) == 2 and len(sent_instances(held.fake, 1)) == len(calls)
    assert [response.status_code for response in responses[1:]] == [200, 400, 413, 200]
    assert responses[2].json() == {"code": 400, "type": "BadRequest", "message": "'aggregation' must be one of [...]"}
    alone = await passthrough(calls, refuse_like_the_handler)
    assert [seen(response) for response in responses[1:]] == [seen(response) for response in alone]


async def test_a_lone_rest_call_is_sent_at_once_as_it_came():
    content = b'{ "format" : "entities",\n  "text": "Hi Rome" }'
    content_type = "application/json"
    held = Held()
    async with gateway(held, coalesce_groups=4) as (http, client):
        response = await http.post("/v1/entities", content=content, headers={"Content-Type": content_type})
        assert (client.coalescer.sent_groups, client.coalescer.sent_texts) == (1, 1)
    assert held.fake.bodies == [(content, content_type)]
    assert response.status_code == 200 and response.json() == {"entities": fake_entities("Hi Rome")}
    assert response.headers[BATCH_SIZE_HEADER] == "1" and response.headers[MODEL_VERSION_HEADER] == VERSION


V1_BODY = {"instances": [{"text": "Hi Rome"}, {"text": "Oslo"}]}
V2_BODY = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Hi Rome"]}]}


@pytest.mark.parametrize(
    "content, content_type, model",
    [
        (json.dumps(V1_BODY).encode(), "application/json", "ner_model"),
        (json.dumps(V2_BODY).encode(), "application/json", "ner_model"),
        (b"Hi Rome", "text/plain", "ner_model"),
        (b"Hi Rome", "application/octet-stream", "ner_model"),
        (b'{"text": "Hi Rome", "id": 7}', "application/json", "ner_model"),
        (b'{"text": "Hi Rome", "aggregation": null}', "application/json", "ner_model"),
        (b'{"text": "Hi \\ud800 Rome"}', "application/json", "ner_model"),  # JSON can escape it, UTF-8 cannot hold it
        (json.dumps({"text": "Hi Rome " * 130}).encode(), "application/json", "ner_model"),
        (b'{"text": "Hi Rome"' + b" " * 1100 + b"}", "application/json", "ner_model"),
        (json.dumps({"text": "Hi Rome " * 300}).encode(), "application/json", LANE),
        (b'{"text": "Hi Rome"' + b" " * 2100 + b"}", "application/json", LANE),
    ],
    ids=[
        "v1",
        "v2",
        "plain",
        "bytes",
        "unknown field",
        "null option",
        "lone surrogate",
        "big",
        "padded",
        "document",
        "padded document",
    ],
)
async def test_other_bodies_pass_through_at_once_as_they_came_while_one_texts_wait(content, content_type, model):
    held = Held()
    async with gateway(held, coalesce_max_bytes=1024) as (http, client):
        blocker = await take_the_slot(held, http)
        (waiting,) = await post_all(http, [{"text": "Oslo"}])
        await wait_until_async(lambda: client.coalescer.waiting == 1, 5, "a short text to wait for a group")
        response = await asyncio.wait_for(
            http.post("/v1/entities", content=content, headers={"Content-Type": content_type}), 5
        )
        assert client.coalescer.waiting == 1  # the short text still waits: coalescing is on, this body went by
        held.release.set()
        assert [(await task).status_code for task in (blocker, waiting)] == [200, 200]
    assert response.status_code == 200 and response.headers[MODEL_VERSION_HEADER] == VERSION
    # First to reach the fake: the held call is recorded only once released.
    assert held.fake.bodies[0] == (content, content_type) and held.fake.served_by[0] == model


async def test_a_group_that_torchserve_cannot_serve_yet_is_retried_as_a_group():
    held = Held()
    held.fake.script = lambda text, attempt: NO_WORKER if attempt == 1 and "hold" not in text else None
    calls = [{"text": f"Call {name}"} for name in ("Anna", "Bert", "Carl")]
    async with gateway(held) as (http, client):
        blocker = await take_the_slot(held, http)
        responses = await released_together(held, client, blocker, await post_all(http, calls))
    assert [response.json() for response in responses[1:]] == [{"entities": fake_entities(c["text"])} for c in calls]
    assert len(held.fake.bodies) == 3 and held.fake.bodies[1] == held.fake.bodies[2]  # the same group, twice
    assert sent_instances(held.fake, 2) == calls


async def test_a_group_refused_as_a_whole_sends_each_call_again_as_it_came():
    held = Held()
    held.refuse_groups = True
    contents = [b'{"text":"Anna in Rome"}', b'{ "text" : "Bert in Oslo", "format": "segments" }']
    async with gateway(held) as (http, client):
        blocker = await take_the_slot(held, http)
        tasks = [
            asyncio.create_task(http.post("/v1/entities", content=c, headers={"Content-Type": "application/json"}))
            for c in contents
        ]
        responses = await released_together(held, client, blocker, tasks)
    assert len(held.refused) == 1  # the group, then each call by itself, byte for byte
    assert sorted(body for body, _ in held.fake.bodies[1:]) == sorted(contents)
    assert [response.json() for response in responses[1:]] == [
        {"entities": fake_entities("Anna in Rome")},
        {"segments": fake_segments("Bert in Oslo")},
    ]


async def test_a_rest_client_that_leaves_while_its_text_waits_is_dropped_from_the_group(start_live):
    live = start_live(coalesce_max_texts=32, coalesce_groups=1)
    live.fake.delays = {"slow": 2.0}  # the slot stays taken while the second client comes and goes
    coalescer = live.server.config.app.state.services.client.coalescer
    body = b'{"text": "Gone Away"}'
    head = (
        f"POST /v1/entities HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    async with httpx2.AsyncClient(base_url=live.url, headers=dict(AUTH), timeout=10) as http:
        blocker = asyncio.create_task(http.post("/v1/entities", json={"text": "slow start"}))
        await wait_until_async(lambda: live.fake.in_flight == 1, 5, "the first call upstream")
        _, writer = await asyncio.open_connection("127.0.0.1", httpx2.URL(live.url).port)
        writer.write(head.encode() + body)
        await writer.drain()
        await wait_until_async(lambda: coalescer.waiting == 1, 5, "the second call to wait for a group")
        writer.close()
        await writer.wait_closed()
        await wait_until_async(lambda: coalescer.waiting == 0, 5, "the second call to leave")
        assert live.fake.in_flight == 1  # it left while the first call was still upstream
        assert (await blocker).status_code == 200
        assert (await http.post("/v1/entities", json={"text": "After All"})).status_code == 200
    assert [call["text"] for call in live.fake.calls] == ["slow start", "After All"]
