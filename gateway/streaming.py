"""Server-Sent Events for a document: chunks predicted concurrently, events sent in document order.

``in_order`` keeps a window of at most ``window`` chunk requests in flight; as soon as the next chunk in document
order is done it is yielded and one more chunk is started. A chunk that finishes early waits in the window, so
memory and upstream load stay bounded however long the document. When the consumer goes away (the client
disconnected and sse-starlette cancelled the response), every request still running is cancelled and no new
one starts.

Events: one per chunk, ``id: <chunk index>`` and data ``{"chunk", "chunks", "start", "end", "entities" or
"segments"}`` with offsets into the whole document; ``event: error`` with ``{"chunk", "error": {...}}`` stops the
stream and cancels the chunks still in flight; the last event is always ``data: [DONE]``. An EventSource that
reconnects sends the last chunk's id as ``Last-Event-ID`` and the stream resumes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sse_starlette import ServerSentEvent

from gateway.chunking import Chunk, split_document
from gateway.errors import GatewayError
from gateway.schemas import PredictBody
from nerserve.safe_logging import log_failure

logger = logging.getLogger("gateway.stream")

DONE = "[DONE]"
Item = TypeVar("Item")
Result = TypeVar("Result")


async def in_order(
    items: Sequence[Item], work: Callable[[Item], Awaitable[Result]], window: int
) -> AsyncGenerator[tuple[Item, Result | GatewayError], None]:
    """(item, result or GatewayError) in the order of ``items``, with at most ``window`` calls of ``work`` running."""
    pending: deque[tuple[Item, asyncio.Future[Result]]] = deque()
    upcoming = iter(items)

    def start_next() -> None:
        for item in upcoming:
            pending.append((item, asyncio.ensure_future(work(item))))
            return

    for _ in range(window):
        start_next()
    current: asyncio.Future[Result] | None = None
    try:
        while pending:
            item, current = pending.popleft()
            try:
                result: Result | GatewayError = await current
            except GatewayError as err:
                result = err
            current = None
            start_next()  # before yielding: upstream work goes on while the consumer sends this result
            yield item, result
    finally:
        tasks = [task for _, task in pending] + ([current] if current is not None else [])
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def plan_chunks(document: str, chunk_chars: int) -> list[Chunk]:
    # Splitting 100,000 characters takes ~15 ms of regular expressions: not on the event loop.
    return await asyncio.to_thread(split_document, document, chunk_chars)


async def document_events(
    predict: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    request: PredictBody,
    chunks: Sequence[Chunk],
    window: int,
    first_chunk: int = 0,
) -> AsyncIterator[ServerSentEvent]:
    """The SSE events for ``request.text`` split into ``chunks``, from chunk ``first_chunk`` on (to resume after
    Last-Event-ID)."""
    document = request.text

    async def predict_chunk(chunk: Chunk) -> dict[str, Any]:
        try:
            return rebase(await predict(request.payload(document[chunk.start : chunk.end])), chunk.start)
        except (GatewayError, asyncio.CancelledError):
            raise
        except Exception as err:  # a malformed answer must end the stream with an error event, not a reset
            log_failure(logger, f"chunk {chunk.index} failed", err)
            raise GatewayError(502, f"unexpected answer from TorchServe ({err.__class__.__name__})") from None

    # aclosing: leaving the loop after an error must cancel the chunks still in flight before [DONE] is sent;
    # an abandoned async generator is only closed whenever the garbage collector finds it.
    async with contextlib.aclosing(in_order(chunks[first_chunk:], predict_chunk, window)) as results:
        async for chunk, result in results:
            if isinstance(result, GatewayError):
                yield ServerSentEvent(_json({"chunk": chunk.index, "error": result.to_body()}), event="error")
                break
            yield ServerSentEvent(
                _json({"chunk": chunk.index, "chunks": len(chunks), "start": chunk.start, "end": chunk.end, **result}),
                id=str(chunk.index),
            )
    yield ServerSentEvent(DONE)


def rebase(body: dict[str, Any], offset: int) -> dict[str, Any]:
    """A TorchServe answer for a chunk with every ``start``/``end`` moved by the chunk's offset in the document."""
    rebased: dict[str, Any] = {}
    for key in ("entities", "segments"):
        if key in body:
            items = body[key]
            if not isinstance(items, list):
                raise GatewayError(502, f"TorchServe answered a non-list '{key}'")
            rebased[key] = [{**item, "start": item["start"] + offset, "end": item["end"] + offset} for item in items]
    if not rebased:
        raise GatewayError(502, "TorchServe's answer has neither 'entities' nor 'segments'")
    return rebased


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
