"""The gateway's one pooled HTTP client to TorchServe, with timeouts and bounded retries that cannot storm.

NER is idempotent, so a request TorchServe could not serve because of its own state is sent again, by what it
may cost other clients (``Failure``):

* never reached a worker: TorchServe's 503 "Model ... has no worker to serve inference request" (no worker
  READY, or its job queue full) and a refused connection. Sent again until the retry deadline or
  ``retry_max_attempts``; nobody else's batch is touched.
* lost with its worker: 507 or 500 "Worker died." (the worker died while its batch ran; TorchServe starts a new
  one in ~6 s) and a connection lost mid-request. Sent again at most ``retry_worker_lost_max`` times (1): the
  request may itself be what killed the worker, and each retry puts it into another batch of other clients'
  requests.

Everything else is answered at once. TorchServe's 503 "Prediction failed" means the handler raised for the whole
batch holding this request: sent again it would fail the next batch too (the retry storm of issue 11), so it is a
502. 4xx answers are the client's fault and pass through with TorchServe's status and message; other 5xx and
timeouts are not retried (a request that timed out would only time out again and double the load). Retries back
off exponentially with jitter and stop at a deadline measured from the first attempt.

Bodies over ``document_bytes`` go to the model's document lane (``nerserve.protocol.document_lane``): the same
archive under a second name with workers and batches of its own, so short texts are never batched behind long
documents. Each lane has its own ``upstream_concurrency`` slots. Where the lane is not registered (TorchServe's
404 ModelNotFoundException), documents go to the model itself and the lane is asked again after
``LANE_RECHECK_S``. A coalesced request of several short texts (``gateway.coalescing``) goes to the model itself,
whatever its envelope adds to its size: each of its texts would go there alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import random
import time
from typing import Any

import httpx2

from gateway.coalescing import Answer, Coalescer
from gateway.errors import GatewayError, Unavailable, upstream_refusal
from gateway.settings import GatewaySettings
from gateway.transport import PooledTransport
from nerserve.protocol import RESPONSE_HEADERS, V1_INSTANCES, document_lane
from nertools.torchserve import count_ready, error_fields

logger = logging.getLogger("gateway.upstream")


class Failure(enum.Enum):
    """Why an attempt failed, when another attempt may succeed."""

    NOT_SERVED = "not served"  # never reached a worker: sent again until the deadline
    LOST = "lost"  # may have been in a batch whose worker died: sent again at most retry_worker_lost_max times


# TorchServe 0.12's frontend answers with exception types and fixed messages, and nothing else tells these cases
# apart. "no worker": ModelManager.addJob refused the job (no worker, or the job queue full): it never reached a
# worker. "Worker died.": sent by WorkerThread to every request of the batch of a worker that exited (507 when it
# saw exit code 137, else 500; also after responseTimeout, which comes long after this gateway's own upstream
# timeout). The handler's own statuses carry nerserve's types (ServiceUnavailable, InternalServerError), never
# these, so a handler's per-request 503 or 500 is not mistaken for them.
NO_WORKER_TYPE = "ServiceUnavailableException"
NO_WORKER_MESSAGE = "has no worker to serve inference request"
WORKER_DIED_TYPE = "InternalServerException"
WORKER_DIED_MESSAGE = "Worker died."
# Connection failures: refused (TorchServe down or restarting) never reached it; lost mid-request may have.
NOT_SERVED_ERRORS = (httpx2.ConnectError, httpx2.ConnectTimeout)
LOST_ERRORS = (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)


def classify(status: int, type_name: str | None, message: str) -> Failure | None:
    """The Failure of a TorchServe error answer, or None when sending it again cannot help or would hurt."""
    if status == 503 and type_name == NO_WORKER_TYPE and NO_WORKER_MESSAGE in message:
        return Failure.NOT_SERVED
    if status in (500, 507) and type_name == WORKER_DIED_TYPE and message == WORKER_DIED_MESSAGE:
        return Failure.LOST
    return None


class Retryable(Exception):
    """One attempt's failure that another attempt may fix (internal to TorchServeClient)."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


PASSTHROUGH_HEADERS = tuple(name.lower() for name in RESPONSE_HEADERS)
DESCRIBE_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Prediction:
    """TorchServe's 2xx answer as it came: the JSON bytes and the headers worth passing on."""

    content: bytes
    headers: dict[str, str]

    def json(self) -> dict[str, Any]:
        try:
            body = json.loads(self.content)
        except ValueError:
            raise GatewayError(502, "TorchServe answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise GatewayError(502, "TorchServe answered with JSON that is not an object")
        return body


LANE_RECHECK_S = 30.0


@dataclasses.dataclass(frozen=True)
class Lane:
    """A model name TorchServe serves predictions under, with the slots bounding requests in flight to it."""

    model: str
    url: str
    slots: asyncio.Semaphore


class LaneMissing(Exception):
    """TorchServe does not serve this lane's model (404 ModelNotFoundException)."""


class TorchServeClient:
    """Predictions and readiness of one model; create in the app's lifespan, ``aclose()`` at shutdown."""

    def __init__(self, settings: GatewaySettings, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        timeout = httpx2.Timeout(settings.upstream_timeout_s, connect=min(5.0, settings.upstream_timeout_s))
        limits = httpx2.Limits(
            max_connections=settings.upstream_concurrency + 4, max_keepalive_connections=settings.upstream_concurrency
        )
        # Without a transport given (tests give theirs), plain-http TorchServes are reached through pooled lean
        # connections (gateway.transport), which cost less per message than httpx2's own pool; https through httpx2's.
        if transport is None and all(
            url.startswith("http://") for url in (settings.inference_url, settings.management_url)
        ):
            transport = PooledTransport(max_idle=2 * settings.upstream_concurrency + 4)  # two lanes, describe
        # trust_env=False: TorchServe is reached directly; an HTTP(S)_PROXY meant for the outside world must not
        # capture loopback traffic.
        self._client = httpx2.AsyncClient(timeout=timeout, limits=limits, transport=transport, trust_env=False)
        # Slots bound requests in flight to TorchServe across all clients (its job queue answers 503 when full).
        self.model_lane = self._lane(settings.model_name)
        self.document_lane = self._lane(document_lane(settings.model_name)) if settings.document_bytes else None
        self._document_lane_missing_until = 0.0
        self.coalescer = Coalescer(
            self._predict_json_now,
            settings.coalesce_max_texts,
            min(settings.coalesce_max_bytes, settings.document_bytes or settings.coalesce_max_bytes),
            settings.coalesce_groups,
        )
        self._describe_url = f"{settings.management_url}/models/{settings.model_name}"
        self._random = random.Random()

    def _lane(self, model: str) -> Lane:
        url = f"{self.settings.inference_url}/predictions/{model}"
        return Lane(model, url, asyncio.Semaphore(self.settings.upstream_concurrency))

    async def aclose(self) -> None:
        await self._client.aclose()

    def lane_for(self, content: bytes) -> Lane:
        """The document lane for a body over ``document_bytes`` while it is served, else the model's own."""
        documents = self.document_lane
        if documents is None or len(content) <= self.settings.document_bytes:
            return self.model_lane
        return documents if time.monotonic() >= self._document_lane_missing_until else self.model_lane

    async def predict(self, content: bytes, content_type: str | None, lane: Lane | None = None) -> Prediction:
        """POST the body as it is to TorchServe (to ``lane``, else the lane its size picks); retried while
        TorchServe cannot serve it, until the deadline."""
        headers = {"Content-Type": content_type} if content_type else {}
        settings = self.settings
        started = time.monotonic()
        deadline = started + settings.retry_deadline_s
        attempt = lost = 0
        lane = lane or self.lane_for(content)
        while True:
            attempt += 1
            try:
                prediction = await self._attempt(lane, content, headers, deadline)
            except LaneMissing:
                logger.info(
                    "%s is not served: documents go to %s (asked again in %g s)",
                    lane.model,
                    self.model_lane.model,
                    LANE_RECHECK_S,
                )
                self._document_lane_missing_until = time.monotonic() + LANE_RECHECK_S
                lane, attempt = self.model_lane, attempt - 1
                continue
            except Retryable as retryable:
                failure = retryable
            else:
                if attempt > 1:
                    logger.info("TorchServe served a request after %d attempts", attempt)
                return prediction
            delay = self._backoff(attempt)
            spent = time.monotonic() - started
            if failure.failure is Failure.LOST:
                lost += 1
                if lost > settings.retry_worker_lost_max:
                    # Not 503: a client that sends it again may kill another worker. 502, no Retry-After.
                    error = GatewayError(
                        502,
                        f"{failure.message}: the worker serving this request died {lost} time(s); not sent again, "
                        "as the request may be what killed it",
                    )
                    logger.warning("prediction failed after %d attempts: worker lost %d time(s)", attempt, lost)
                    raise error
            if attempt >= settings.retry_max_attempts or time.monotonic() + delay > deadline:
                gave_up = f" (gave up after {attempt} attempts in {spent:.1f} s)" if attempt > 1 else ""
                logger.warning("prediction failed: %s%s", failure.message, gave_up)
                raise Unavailable(failure.message + gave_up)
            logger.info(
                "TorchServe could not serve a request (attempt %d, %s): %s; retrying in %.2f s",
                attempt,
                failure.failure.value,
                failure.message,
                delay,
            )
            await asyncio.sleep(delay)

    async def predict_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One text's answer (a WebSocket message, an SSE chunk), sent with the other texts waiting at the same
        moment as one multi-text request (``gateway.coalescing``)."""
        return (await self.coalescer.predict(payload)).body

    def coalesces(self, content: bytes) -> bool:
        """Whether a REST body of one text (``predict_text``) may join a group: coalescing is on and the body is
        within the coalescer's ``max_bytes``, so never over ``document_bytes`` (a document keeps its lane)."""
        return self.coalescer.takes(len(content))

    async def predict_text(self, payload: dict[str, Any], content: bytes, content_type: str | None) -> Answer:
        """A REST body of one text (``content``, ``payload`` parsed from it), coalesced like a WebSocket message;
        when it goes by itself it is sent as it came (``predict``) and ``Answer.content`` is TorchServe's own."""

        async def alone() -> Answer:
            prediction = await self.predict(content, content_type)
            return Answer(prediction.json(), prediction.headers, prediction.content)

        return await self.coalescer.predict(payload, alone)

    async def _predict_json_now(self, payload: dict[str, Any]) -> Answer:
        content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        # A group of texts goes to the model's own lane even when its envelope takes it over document_bytes.
        lane = self.model_lane if V1_INSTANCES in payload else None
        prediction = await self.predict(content, "application/json", lane)
        return Answer(prediction.json(), prediction.headers)

    async def _attempt(self, lane: Lane, content: bytes, headers: dict[str, str], deadline: float) -> Prediction:
        """One try: a Prediction; raises Retryable when another try may succeed, GatewayError when not.

        Waiting for one of the ``upstream_concurrency`` slots counts against the retry deadline, so a stalled
        TorchServe cannot make requests queue in the gateway for ever."""
        timeout = self.settings.upstream_timeout_s
        if not await self._acquire_slot(lane.slots, deadline):
            raise Retryable(
                Failure.NOT_SERVED,
                f"TorchServe is busy: the gateway's {self.settings.upstream_concurrency} "
                f"requests in flight to it did not finish before the retry deadline",
            )
        try:
            # Enforced here as well as by httpx2, so it holds whatever the transport does.
            async with asyncio.timeout(timeout):
                response = await self._client.post(lane.url, content=content, headers=headers)
        except TimeoutError:
            raise GatewayError(504, f"TorchServe did not answer within {timeout:g} s") from None
        except NOT_SERVED_ERRORS as err:
            raise Retryable(Failure.NOT_SERVED, f"TorchServe is unreachable ({type(err).__name__})") from None
        except httpx2.TimeoutException:
            raise GatewayError(504, f"TorchServe did not answer within {timeout:g} s") from None
        except LOST_ERRORS as err:
            raise Retryable(Failure.LOST, f"the connection to TorchServe was lost ({type(err).__name__})") from None
        except httpx2.HTTPError as err:
            raise GatewayError(502, f"request to TorchServe failed ({type(err).__name__})") from None
        finally:
            lane.slots.release()
        status = response.status_code
        if status < 300:
            passed = {name: response.headers[name] for name in PASSTHROUGH_HEADERS if name in response.headers}
            return Prediction(response.content, passed)
        type_name, message = upstream_error(response)
        if status == 404 and type_name == "ModelNotFoundException" and lane is not self.model_lane:
            raise LaneMissing(lane.model)
        failure = classify(status, type_name, message)
        if failure is not None:
            raise Retryable(failure, f"TorchServe answered {status}: {message}")
        raise upstream_refusal(status, message, type_name)

    @staticmethod
    async def _acquire_slot(slots: asyncio.Semaphore, deadline: float) -> bool:
        """Take one of a lane's slots bounding requests in flight to it; False if none frees up by the deadline."""
        if not slots.locked():
            await slots.acquire()
            return True
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await slots.acquire()
        except TimeoutError:
            return False
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half the step fixed, half random, so clients spread out but wait."""
        step = min(self.settings.retry_backoff_max_s, self.settings.retry_backoff_initial_s * 2.0 ** (attempt - 1))
        return step / 2 + self._random.uniform(0, step / 2)

    async def ready_workers(self) -> tuple[int, str]:
        """(READY workers of the model, a reason when there are none) from TorchServe's management API."""
        try:
            response = await self._client.get(self._describe_url, timeout=DESCRIBE_TIMEOUT_S)
        except httpx2.HTTPError as err:
            return 0, f"management API unreachable ({type(err).__name__})"
        if response.status_code != 200:
            return 0, f"management API answered {response.status_code}: {upstream_error(response)[1]}"
        try:
            ready = count_ready(response.json())
        except ValueError:  # not JSON, or JSON that is not a model description
            return 0, "management API answered something that is not a model description"
        return ready, "" if ready else "no READY worker"


def upstream_error(response: httpx2.Response) -> tuple[str | None, str]:
    """(type, message) of a TorchServe error answer; its bodies are {"code", "type", "message"} or empty."""
    type_name, message = error_fields(response.content)
    if message is not None:
        return type_name, message
    text = response.text.strip()[:300]
    if not text and response.status_code == 413:
        return None, "the request body is over TorchServe's max_request_size"
    return None, text or response.reason_phrase or f"HTTP {response.status_code}"
