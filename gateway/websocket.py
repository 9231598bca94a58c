"""``/ws/entities``: many NER requests in flight on one WebSocket, replies correlated by ``id``.

Contract with clients (docs/GATEWAY.md): a message is plain text, or a JSON object ``{"id", "text",
"aggregation", "format"}`` when its first non-space character is ``{``. Each message becomes its own TorchServe
request, so the messages of all connections meet in TorchServe's dynamic batches; at most
``max_in_flight_per_connection`` run at once per connection, and a client sending faster is slowed down by
backpressure. Replies come in completion order, each carrying its message's ``id`` (the message's sequence number
on the connection, from 1, when it has none). A problem with one message is an error reply ``{"id", "error":
{"code", "type", "message"}}`` and the connection stays open. Close codes: 1008 failed authentication or a foreign
Origin; 1009 a message over ``max_message_bytes``; 1011 an internal error of the gateway; from uvicorn, 1011
keepalive timeout and 1012 shutdown (the replies in flight are lost: clients resend). A JSON message is parsed
within the handler's bounds (``nerserve.json_limits``: size, nesting depth), so a hostile one is an error reply
like any other bad message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.auth import APP_SUBPROTOCOL, MISSING_KEY_WEBSOCKET
from gateway.errors import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    GatewayError,
    bad_request,
    internal_error,
)
from gateway.net import is_loopback
from gateway.schemas import MAX_ID_CHARS, NerMessage, PredictBody, ensure_text_fits, parse_json, validate_predict_body
from gateway.services import Services
from nerserve.safe_logging import log_failure

logger = logging.getLogger("gateway.websocket")

MessageId = str | int | None


class MessageError(GatewayError):
    """A message that cannot be served, with the id its error reply carries."""

    def __init__(self, error: GatewayError, message_id: MessageId) -> None:
        super().__init__(error.status, error.message, error.type_name)
        self.message_id = message_id


def parse_message(
    text: str, sequence: int, max_text_chars: int, max_message_bytes: int
) -> tuple[MessageId, PredictBody]:
    """(reply id, request) of one text frame; raises MessageError."""
    if not text.lstrip().startswith("{"):
        try:
            ensure_text_fits(text, max_text_chars)
        except GatewayError as err:
            raise MessageError(err, sequence) from None
        return sequence, PredictBody(text=text)
    try:
        body = parse_json(text, max_message_bytes)
    except GatewayError as err:
        raise MessageError(err, None) from None
    message_id = body.get("id", sequence) if isinstance(body, dict) else None
    if (
        not isinstance(message_id, (str, int))
        or isinstance(message_id, bool)
        or (isinstance(message_id, str) and len(message_id) > MAX_ID_CHARS)
    ):
        message_id = None  # an invalid id is not echoed
    try:
        message = validate_predict_body(body, NerMessage, max_text_chars)
    except GatewayError as err:
        raise MessageError(err, message_id) from None
    # The message is the request: its payload() leaves the id out.
    return (message.id if "id" in message.model_fields_set else sequence), message


def origin_allowed(headers: Mapping[str, str], allowed: list[str], auth_enabled: bool) -> bool:
    """Browsers send Origin on every WebSocket and enforce no CORS there: refuse pages from other sites.

    Allowed: no Origin (not a browser), a configured CORS origin, and the gateway's own pages: with authentication
    on, any origin naming the host the request came to (a foreign page would still need a key); with it off, only
    loopback origins, because a page of a foreign site whose name the attacker re-points at 127.0.0.1 (DNS
    rebinding) sends a Host equal to its own origin.
    """
    origin = headers.get("origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:  # an unbalanced IPv6 bracket
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (a sandboxed or file: page) among others
    if not auth_enabled:
        return is_loopback(parts.hostname)
    return parts.netloc.lower() == headers.get("host", "").lower()


class EntitySocket:
    """One accepted connection: reads messages, runs them concurrently within the limit, sends replies."""

    def __init__(self, websocket: WebSocket, services: Services, key_id: str) -> None:
        self.websocket = websocket
        self.services = services
        self.key_id = key_id
        self.settings = services.settings
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages = 0
        self.errors = 0

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.settings.max_in_flight_per_connection)
        close_code = 1000
        held: Mapping[str, Any] | None = None  # a frame read while waiting for a slot
        try:
            while True:
                frame, held = (held, None) if held is not None else (await self.websocket.receive(), None)
                if frame["type"] == "websocket.disconnect":
                    close_code = frame.get("code", 1000)
                    break
                self.messages += 1
                try:
                    text = self._text_of(frame)
                    parsed = (
                        None
                        if text is None
                        else parse_message(
                            text, self.messages, self.settings.max_text_chars, self.settings.max_message_bytes
                        )
                    )
                except MessageError as err:
                    await self._reply({"id": err.message_id, "error": err.to_body()})
                    continue
                except Exception as err:  # a bug with one message must not cost the client its other replies
                    log_failure(logger, f"message {self.messages} could not be read key={self.key_id}", err)
                    await self._reply({"id": None, "error": internal_error(err).to_body()})
                    continue
                if parsed is None:
                    close_code = CLOSE_MESSAGE_TOO_BIG
                    await self.websocket.close(
                        CLOSE_MESSAGE_TOO_BIG, f"message over {self.settings.max_message_bytes} bytes"
                    )
                    break
                message_id, request = parsed
                # Backpressure: with every slot busy this waits, reading at most one more frame; then uvicorn stops
                # reading TCP and a fast sender is slowed down instead of filling memory. uvicorn's ping timeout
                # outlasts a busy slot (gateway.__main__.uvicorn_options), so such a connection is not taken for dead.
                held = await self._acquire(slots)
                if held is not None and held["type"] == "websocket.disconnect":
                    close_code = held.get("code", 1000)
                    break
                self._start(self._answer(message_id, request), slots)
        except WebSocketDisconnect as disconnect:
            close_code = disconnect.code
        except Exception as err:
            # Without this the ASGI server would drop the TCP connection: the client would see 1006 and no reason.
            log_failure(logger, f"websocket failed key={self.key_id}", err)
            close_code = CLOSE_INTERNAL_ERROR
            with contextlib.suppress(Exception):  # the socket may already be unusable; nothing more to tell then
                await self.websocket.close(CLOSE_INTERNAL_ERROR, "internal error of the gateway")
        finally:
            # Nobody is left to read the replies: stop the upstream work.
            await self._cancel_all()
            logger.info(
                "websocket closed key=%s code=%s messages=%d errors=%d",
                self.key_id,
                close_code,
                self.messages,
                self.errors,
            )

    def _start(self, answer: Coroutine[Any, Any, None], slots: asyncio.Semaphore) -> None:
        """Run ``answer`` as a task holding one slot, released when it ends."""
        task = asyncio.create_task(answer)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            slots.release()

        task.add_done_callback(done)

    async def _acquire(self, slots: asyncio.Semaphore) -> Mapping[str, Any] | None:
        """Wait for a free slot while still watching the socket, so that a client leaving with every slot busy
        cancels its work at once. Returns a frame read meanwhile (a disconnect, or the next message, held until
        this one has its slot) or None. Holding at most one frame keeps the backpressure: with every slot busy
        and one message held, nothing more is read and uvicorn stops reading TCP."""
        if not slots.locked():
            await slots.acquire()
            return None
        acquire = asyncio.ensure_future(slots.acquire())
        receive = asyncio.ensure_future(self.websocket.receive())

        def give_back_slot() -> None:
            """The slot is not wanted after all: release it if it was taken, else stop waiting for it."""
            if acquire.done() and not acquire.cancelled():
                slots.release()
            else:
                acquire.cancel()

        try:
            await asyncio.wait({acquire, receive}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            give_back_slot()
            receive.cancel()
            raise
        if not receive.done():
            receive.cancel()
            await asyncio.gather(receive, return_exceptions=True)
            return None
        failure = receive.exception()
        if failure is not None:
            give_back_slot()
            raise failure
        frame = receive.result()
        if frame["type"] == "websocket.disconnect":
            give_back_slot()
            return frame
        await acquire
        return frame

    async def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _text_of(self, frame: Mapping[str, Any]) -> str | None:
        """The frame's text; None when over the size limit; raises MessageError for a binary frame that is not
        UTF-8 (its reply has no id: the message could not be read)."""
        limit = self.settings.max_message_bytes
        text: str | None = frame.get("text")
        if text is not None:
            # 4 bytes per character at most: only count bytes when the length is near the limit.
            if len(text) > limit or (4 * len(text) > limit and len(text.encode("utf-8", "surrogatepass")) > limit):
                return None
            return text
        data: bytes = frame.get("bytes") or b""
        if len(data) > limit:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            error = bad_request(f"a binary message must be UTF-8 text (invalid byte at {err.start})")
            raise MessageError(error, None) from None

    async def _answer(self, message_id: MessageId, request: PredictBody) -> None:
        try:
            body = await self.services.client.predict_json(request.payload())
            self.services.labels.observe(body)
            reply = {"id": message_id, **body}
        except GatewayError as err:
            reply = {"id": message_id, "error": err.to_body()}
        except Exception as err:
            log_failure(logger, f"message failed key={self.key_id}", err)
            reply = {"id": message_id, "error": internal_error(err).to_body()}
        await self._reply(reply)

    async def _reply(self, reply: dict[str, Any]) -> None:
        if "error" in reply:
            self.errors += 1
        data = json.dumps(reply, ensure_ascii=False, separators=(",", ":"))
        try:
            async with self._send_lock:
                await self.websocket.send_text(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The client is gone: its other messages need no answer either (run() sees the disconnect too).
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()


async def serve_entities(websocket: WebSocket, services: Services) -> None:
    """Authenticate, then run the connection. Refusals are an accepted handshake closed with 1008: a refused
    handshake would reach a browser only as code 1006, without the reason."""
    offered = websocket.scope.get("subprotocols") or []
    subprotocol = APP_SUBPROTOCOL if APP_SUBPROTOCOL in offered else None
    try:
        if not origin_allowed(websocket.headers, services.settings.cors_origins, services.auth.enabled):
            raise GatewayError(403, "origin not allowed")
        key_id = services.auth.authenticate(
            websocket.headers, websocket.query_params, offered, missing=MISSING_KEY_WEBSOCKET
        )
    except GatewayError as err:
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(CLOSE_POLICY_VIOLATION, err.message[:120])
        logger.info("websocket refused: %s", err.message)
        return
    await websocket.accept(subprotocol=subprotocol)
    logger.info("websocket opened key=%s", key_id)
    await EntitySocket(websocket, services, key_id).run()
