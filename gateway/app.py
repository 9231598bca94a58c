"""The ASGI app: routes, lifespan (the pooled TorchServe client) and the one mapping of errors to responses.

``create_app(settings)`` builds everything from a validated GatewaySettings; tests pass an httpx2 transport that
stands in for TorchServe. Routes are module-level and read the app's state only through ``services_of``.
Endpoints (docs/GATEWAY.md has examples):

  GET  /                the demo page                      GET  /health   liveness, always 200
  GET  /ready           200 when the model has a READY worker in TorchServe, else 503
  GET  /v1/labels       entity labels for the legend       POST /v1/entities   TorchServe's API (one text coalesced)
  POST /v1/stream       SSE for a document (JSON body)     GET  /v1/stream?text=...   the same, for EventSource
  WS   /ws/entities     many requests in flight on one connection
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.auth import ApiKeys, Authenticator, LoopbackHostOnly
from gateway.errors import GatewayError, bad_request, internal_error, too_large
from gateway.labels import LabelRegistry
from gateway.logs import KEY_ID_SCOPE, AccessLogMiddleware
from gateway.schemas import PredictBody, ensure_text_fits, one_text_payload, parse_json, validate_predict_body
from gateway.services import DemoPage, Services, services_of
from gateway.settings import GatewaySettings
from gateway.streaming import document_events, plan_chunks
from gateway.upstream import TorchServeClient
from gateway.websocket import serve_entities
from nerserve.protocol import RESPONSE_HEADERS, error_body

logger = logging.getLogger("gateway")

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
SSE_PING_S = 15  # a comment line keeps proxies from closing a quiet stream
SSE_SEND_TIMEOUT_S = 30  # a client that stops reading for this long is dropped
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left first: only the access log sees it
T = TypeVar("T")


def create_app(settings: GatewaySettings, transport: httpx2.AsyncBaseTransport | None = None) -> FastAPI:
    """The gateway app; raises SettingsError when the label source in the settings cannot be read."""
    auth = Authenticator(
        None
        if settings.auth_disabled
        else ApiKeys({key_id: secret.get_secret_value() for key_id, secret in settings.keys.items()})
    )
    labels = LabelRegistry.from_settings(settings)
    page = demo_page()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = TorchServeClient(settings, transport)
        app.state.services = Services(settings, client, auth, labels, page)
        announce(settings, auth)
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="NER gateway",
        summary="Real-time API in front of TorchServe",
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        docs_url=None,  # the docs UIs load scripts from a CDN
        redoc_url=None,
    )
    app.add_middleware(AccessLogMiddleware)
    if settings.auth_disabled and not settings.allow_remote_without_auth:
        app.add_middleware(LoopbackHostOnly)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=list(RESPONSE_HEADERS),
        )
    app.include_router(router)
    return app


def announce(settings: GatewaySettings, auth: Authenticator) -> None:
    """Log at start-up who may use the gateway and where it forwards to (key ids only, never secrets)."""
    if auth.keys is not None:
        logger.info("authentication on: %d API key(s), ids %s", len(auth.keys.key_ids), auth.keys.key_ids)
    else:
        logger.warning(
            "AUTHENTICATION IS DISABLED (NER_GATEWAY_AUTH_DISABLED=1): anyone who can reach %s:%d can use the model",
            settings.host,
            settings.port,
        )
    logger.info("forwarding to %s/predictions/%s", settings.inference_url, settings.model_name)


# --- errors -----------------------------------------------------------------------------------------------------


async def gateway_error_response(request: Request, error: GatewayError) -> JSONResponse:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if error.retryable:
        headers["Retry-After"] = "1"
    if error.status in (408, 413):
        # The rest of the body may still be on its way: the connection cannot carry another request.
        headers["Connection"] = "close"
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


async def invalid_request_response(request: Request, error: RequestValidationError) -> JSONResponse:
    # FastAPI's own parameter validation (GET /v1/stream without text): its wording, in the error shape.
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    return JSONResponse(bad_request(problems).to_body(), status_code=400)


async def http_error_response(request: Request, error: StarletteHTTPException) -> JSONResponse:
    body = error_body(error.status_code, str(error.detail))
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def unexpected_error_response(request: Request, error: Exception) -> JSONResponse:
    # Starlette's last resort: the client gets the error shape (not plain text) and uvicorn logs the traceback.
    return JSONResponse(internal_error(error).to_body(), status_code=500)


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    GatewayError: gateway_error_response,
    RequestValidationError: invalid_request_response,
    StarletteHTTPException: http_error_response,
    Exception: unexpected_error_response,
}


# --- routes -----------------------------------------------------------------------------------------------------


def authenticate(request: Request) -> str:
    """The caller's key id (a dependency of every route that needs a key); recorded for the access log."""
    key_id = services_of(request).auth.authenticate(request.headers, request.query_params)
    request.scope[KEY_ID_SCOPE] = key_id
    return key_id


AUTHENTICATED = [Depends(authenticate)]
router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    page = services_of(request).page
    return HTMLResponse(
        page.html,
        headers={
            "Content-Security-Policy": page.policy,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/health", summary="Liveness: 200 while the process runs")
async def health() -> dict[str, str]:
    return {"status": "ok"}


router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)  # for probes that use HEAD


@router.get("/ready", summary="Readiness: 200 when TorchServe has a READY worker for the model, else 503")
async def ready(request: Request) -> JSONResponse:
    services = services_of(request)
    count, reason = await services.client.ready_workers()
    body: dict[str, Any] = {
        "status": "ready" if count else "not ready",
        "model": services.settings.model_name,
        "ready_workers": count,
    }
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=200 if count else 503)


@router.get("/v1/labels", summary="Entity labels of the served model", dependencies=AUTHENTICATED)
async def get_labels(request: Request) -> dict[str, Any]:
    return services_of(request).labels.snapshot()


def _request_body_doc() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": inline_definitions(PredictBody.model_json_schema())},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    }


def inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references replaced by the definitions: the enums' ``#/$defs/...`` would
    not resolve inside the OpenAPI document."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


@router.post(
    "/v1/entities",
    summary="TorchServe's POST /predictions/<model>: one text's JSON coalesced with other clients' texts, the rest "
    "passed through",
    openapi_extra=_request_body_doc(),
    dependencies=AUTHENTICATED,
)
async def entities(request: Request) -> Response:
    """TorchServe's answer to the body, as passthrough gives it. A short body of one text's JSON object goes with
    the other texts waiting at the same moment (``gateway.coalescing``): its answer, its own error and the answer's
    headers are the ones it would get alone; everything else is forwarded as it came."""
    services = services_of(request)
    settings = services.settings
    client = services.client
    body = await read_body(request, settings.max_message_bytes, settings.body_timeout_s)
    content_type = request.headers.get("content-type")
    payload = None
    if content_type and "json" in content_type.lower():
        # The handler parses whatever says JSON (nerserve.requests.decoded_payload): a body it would refuse is
        # refused here, within the same bounds, before it can reach a batch of other clients' requests.
        payload = one_text_payload(await parse_json_off_loop(body, settings.max_message_bytes))
    if payload is None or not client.coalesces(body):
        prediction = await client.predict(body, content_type)
        return Response(prediction.content, media_type="application/json", headers=prediction.headers)
    answer = await unless_client_leaves(request, client.predict_text(payload, body, content_type))
    if answer is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    content = answer.content
    if content is None:  # a text's result out of a group's answer
        content = json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(content, media_type="application/json", headers=dict(answer.headers))


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None once the client has disconnected (``work`` is then cancelled: a text waiting in
    a coalesced group leaves it, as a WebSocket message of a closed connection does)."""
    task = asyncio.ensure_future(work)
    left = asyncio.ensure_future(client_left(request))
    try:
        await asyncio.wait((task, left), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself is cancelled (shutdown)
        task.cancel()
        left.cancel()
        raise
    left.cancel()
    if not task.done() and left.done() and not left.cancelled() and left.exception() is None:
        task.cancel()
        await asyncio.wait((task,))
        return None
    return await task


async def client_left(request: Request) -> None:
    """Returns when the client disconnects: after the body, the server's next message is ``http.disconnect``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/v1/stream",
    summary="Server-Sent Events for a document, in document order",
    openapi_extra=_request_body_doc(),
    dependencies=AUTHENTICATED,
)
async def stream_post(request: Request) -> Response:
    settings = services_of(request).settings
    body = await read_body(request, settings.max_message_bytes, settings.body_timeout_s)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "text/plain":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GatewayError(400, f"the body is not valid UTF-8 (byte {err.start})") from None
        ensure_text_fits(text, settings.max_text_chars)
        predict_body = PredictBody(text=text)
    elif content_type in ("application/json", ""):
        predict_body = validate_predict_body(
            await parse_json_off_loop(body, settings.max_message_bytes), PredictBody, settings.max_text_chars
        )
    else:
        raise GatewayError(415, f"send application/json or text/plain, not {content_type!r}")
    return await event_stream(request, predict_body)


@router.get(
    "/v1/stream",
    summary="Server-Sent Events for a short text given in the URL (for EventSource)",
    dependencies=AUTHENTICATED,
)
async def stream_get(
    request: Request, text: str = Query(...), aggregation: str | None = None, format: str | None = None
) -> Response:
    fields = {"text": text, "aggregation": aggregation, "format": format}
    predict_body = validate_predict_body(
        {k: v for k, v in fields.items() if v is not None}, PredictBody, services_of(request).settings.max_text_chars
    )
    return await event_stream(request, predict_body)


@router.websocket("/ws/entities")
async def websocket_entities(websocket: WebSocket) -> None:
    await serve_entities(websocket, services_of(websocket))


async def event_stream(request: Request, predict_body: PredictBody) -> Response:
    services = services_of(request)
    chunks = await plan_chunks(predict_body.text, services.settings.stream_chunk_chars)
    first_chunk = resume_from(request)
    if first_chunk and first_chunk >= len(chunks):
        # EventSource reconnects whenever a stream ends; 204 is the one answer that stops it (the stream was
        # complete: the Last-Event-ID it sends is the last chunk's).
        return Response(status_code=204)

    async def predict(payload: dict[str, Any]) -> dict[str, Any]:
        body = await services.client.predict_json(payload)
        services.labels.observe(body)
        return body

    events = document_events(predict, predict_body, chunks, services.settings.stream_concurrency, first_chunk)
    return EventSourceResponse(events, ping=SSE_PING_S, send_timeout=SSE_SEND_TIMEOUT_S)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (never buffered beyond it), and
    with 408 when it has not all arrived ``timeout_s`` after the head (a client trickling it holds a connection
    and a buffer)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"request body of {declared} bytes is over the limit of {limit}")
    parts, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise too_large(f"request body is over the limit of {limit} bytes")
                parts.append(part)
    except TimeoutError:
        raise GatewayError(408, f"the request body did not arrive within {timeout_s:g} s") from None
    return b"".join(parts)


# Under this size parsing takes well under a millisecond; above it, up to max_message_bytes (1.3 MB), milliseconds
# that would stall every other connection on the event loop.
PARSE_ON_LOOP_MAX_BYTES = 64 * 1024


async def parse_json_off_loop(body: bytes, max_bytes: int) -> Any:
    """``parse_json`` (bounded size and depth), in a worker thread when the body is large."""
    if len(body) <= PARSE_ON_LOOP_MAX_BYTES:
        return parse_json(body, max_bytes)
    return await asyncio.to_thread(parse_json, body, max_bytes)


def resume_from(request: Request) -> int:
    """The first chunk to send: after the one named by ``Last-Event-ID`` when EventSource reconnects."""
    last = request.headers.get("last-event-id", "")
    return int(last) + 1 if last.isdigit() and len(last) < 9 else 0


def demo_page() -> DemoPage:
    """The page and a Content-Security-Policy that allows exactly its inline script and style, nothing remote."""
    html = PAGE.read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies
        )

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return DemoPage(html, policy)
