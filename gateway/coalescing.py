"""Many clients' texts in one upstream request: WebSocket messages, SSE chunks and REST calls coalesced into KServe
v1 bodies.

TorchServe's frontend costs about as much per request as a short sentence's whole forward pass (docs/PERFORMANCE.md),
so the gateway sends texts that are waiting at the same moment as one multi-text request (``{"instances": [...]}``,
each instance the text's own ``{"text", "aggregation", "format"}``) and hands each result, or each per-text error,
back to its own caller, with the headers of the request's answer (``Answer``). Nothing waits on purpose: a text is
sent with the next group as soon as one of ``groups`` group slots is free, so a lone text goes at once (one
event-loop turn later) and texts only gather while the gateway already has ``groups`` requests in flight. A group
holds at most ``max_texts`` texts and ``max_bytes`` bytes of payload; a bigger payload is sent alone. A text that
goes by itself (alone in its group, too big, or not coalesced at all) is sent by its caller's own ``alone`` where
it gave one (a REST body goes as it came), else as ``send(payload)``. A group TorchServe refuses as a whole with a
4xx (which a group within those bounds should never be) is sent again text by text, so each gets its own answer.
Retries, deadlines and slots are the upstream client's, per group. A caller that goes away (its client left) is
dropped from the group it waits in; when every caller of a group has gone, its upstream request is cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.errors import GatewayError, upstream_refusal
from nerserve.protocol import V1_INSTANCES, V1_PREDICTIONS, error_fields_of, v1_instance_where


@dataclasses.dataclass(frozen=True)
class Answer:
    """One text's answer: its JSON body and the headers of the upstream response that carried it (a group's
    headers go to every text of the group); ``content`` is the upstream's own bytes of ``body`` when the text was
    the whole request."""

    body: dict[str, Any]
    headers: Mapping[str, str]
    content: bytes | None = None


Send = Callable[[dict[str, Any]], Awaitable[Answer]]
Alone = Callable[[], Awaitable[Answer]]


@dataclasses.dataclass
class _Waiting:
    payload: dict[str, Any]
    size: int
    alone: Alone
    future: asyncio.Future[Answer]


class Coalescer:
    """Sends payloads through ``send``, coalescing the ones that wait at the same time (see the module's text)."""

    def __init__(self, send: Send, max_texts: int, max_bytes: int, groups: int) -> None:
        self._send = send
        self.max_texts = max_texts
        self.max_bytes = max_bytes
        self._groups = asyncio.Semaphore(groups)
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.sent_groups = 0  # upstream requests made, for tests and logs
        self.sent_texts = 0

    @property
    def waiting(self) -> int:
        """Texts waiting for a group slot (for tests and logs)."""
        return sum(not waiting.future.done() for waiting in self._waiting)

    def takes(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes may join a group (coalescing is on and it is within ``max_bytes``)."""
        return self.max_texts >= 2 and size <= self.max_bytes

    async def predict(self, payload: dict[str, Any], alone: Alone | None = None) -> Answer:
        """The payload's own answer, as ``send(payload)`` (or ``alone()``, where given) would give it; raises its own
        GatewayError."""
        by_itself = alone or functools.partial(self._send, payload)
        try:
            size = len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate (JSON escapes it, UTF-8 cannot hold it): alone, as it came
            return await by_itself()
        if not self.takes(size):
            return await by_itself()
        waiting = _Waiting(payload, size, by_itself, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await waiting.future  # a caller that is cancelled cancels its future: the drainer skips it

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._groups.acquire()
                group = self._take()
                if not group:
                    self._groups.release()
                    continue
                task = asyncio.create_task(self._run(group))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                deserted = functools.partial(_cancel_if_deserted, group, task)
                for waiting in group:
                    waiting.future.add_done_callback(deserted)
        finally:
            self._drainer = None

    def _take(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        size = 0
        while self._waiting and len(group) < self.max_texts:
            waiting = self._waiting[0]
            if waiting.future.done():  # its caller went away
                self._waiting.popleft()
                continue
            if group and size + waiting.size > self.max_bytes:
                break
            group.append(self._waiting.popleft())
            size += waiting.size
        return group

    async def _run(self, group: list[_Waiting]) -> None:
        try:
            self.sent_groups += 1
            self.sent_texts += len(group)
            if len(group) == 1:
                await _settle(group[0], group[0].alone())
                return
            try:
                answer = await self._send({V1_INSTANCES: [waiting.payload for waiting in group]})
            except GatewayError as error:
                if 400 <= error.status < 500:  # the group as a whole: each text alone gets its own answer
                    await asyncio.gather(*(_settle(waiting, waiting.alone()) for waiting in group))
                    return
                raise
            predictions = answer.body.get(V1_PREDICTIONS)
            if not isinstance(predictions, list) or len(predictions) != len(group):
                raise GatewayError(
                    502, "TorchServe answered a multi-text request with a body that is not one result per text"
                )
            for index, (waiting, result) in enumerate(zip(group, predictions, strict=True)):
                _resolve(waiting, index, result, answer.headers)
        except Exception as error:  # every waiting caller gets the group's failure
            failure = (
                error
                if isinstance(error, GatewayError)
                else GatewayError(500, f"internal error of the gateway ({type(error).__name__})")
            )
            for waiting in group:
                if not waiting.future.done():
                    waiting.future.set_exception(failure)
        finally:
            self._groups.release()


def _cancel_if_deserted(group: list[_Waiting], task: asyncio.Task[None], _: object = None) -> None:
    """Cancel a group's upstream request once none of its callers waits for it any more."""
    if not task.done() and all(waiting.future.cancelled() for waiting in group):
        task.cancel()


def _resolve(waiting: _Waiting, index: int, result: Any, headers: Mapping[str, str]) -> None:
    """One instance's result to its caller: its answer, or its error as the gateway gives it for the text sent
    alone (TorchServe's 4xx as they are, anything else a 502)."""
    if waiting.future.done():
        return
    fields = error_fields_of(result)
    if fields is not None:
        status, type_name, message = fields
        message = message.removeprefix(f"{v1_instance_where(index)}: ")
        waiting.future.set_exception(upstream_refusal(status, message, type_name))
    elif isinstance(result, dict):
        waiting.future.set_result(Answer(result, headers))
    else:
        error = GatewayError(502, "TorchServe answered a text with a result that is not a JSON object")
        waiting.future.set_exception(error)


async def _settle(waiting: _Waiting, answer: Awaitable[Answer]) -> None:
    try:
        result = await answer
    except Exception as error:  # handed to the caller
        if not waiting.future.done():
            waiting.future.set_exception(error)
        return
    if not waiting.future.done():
        waiting.future.set_result(result)
