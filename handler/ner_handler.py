"""TorchServe handler for BERT named-entity recognition.

A thin adapter: it unwraps TorchServe's request items, owns the tokenizer, the model and the device, and calls
the core in ``nerserve`` for parsing, tokenization, windowing, batching and decoding. TorchServe loads a handler
module only if it defines exactly one class, so everything else lives in ``nerserve`` (and the model in model.py).

A request holds one text, or N texts as a KServe v1 or Open Inference Protocol v2 body (``nerserve.bodies``),
parsed here with TorchServe's ``service_envelope`` off: its kserve/kservev2 envelopes unwrap only the first request
of a batch (pytorch/serve#2158, #1302). Every text of every request of a batch is tokenized in one call and shares
the forward passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from model import BertTokenClassifier, quantize_int8_dynamic
from nerserve.batch import PreparedBatch, build_responses, prepare_batch
from nerserve.bodies import BatchBodies, Body, fail_requests, parse_body, piece_limit_errors
from nerserve.linear_kernels import onednn_linear_unavailable, prepack_linears
from nerserve.memory import MemoryReleaser, padded_pieces
from nerserve.priority import lower_cpu_priority
from nerserve.protocol import BATCH_SIZE_HEADER, MODEL_VERSION_HEADER, OTHER_SEGMENT, is_document_lane
from nerserve.requests import NerRequest, RequestError, internal_error
from nerserve.safe_logging import log_failure
from nerserve.settings import ForwardMode, HandlerSettings, LinearKernels, Quantization
from nerserve.tokenization import WordPieces, check_vocabulary, encode_batch, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

WARMUP_TEXT = "Warm-up sentence one, in Paris."


class NerHandler(BaseHandler):  # type: ignore[misc]  # TorchServe ships no type information
    """BERT token classification with long-text windows, dynamic batches and per-request errors."""

    tokenizer: PreTrainedTokenizerFast
    model: torch.nn.Module
    device: torch.device
    memory: MemoryReleaser

    def __init__(self) -> None:
        super().__init__()
        self.settings = HandlerSettings()
        self.id2label: dict[int, str] = {}
        self.model_name = "ner_model"
        self.model_version = "unknown"

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        yaml_config = getattr(context, "model_yaml_config", None) or {}
        settings = HandlerSettings.from_mapping(yaml_config.get("handler"))
        self.model_name = str(getattr(context, "model_name", None) or self.model_name)
        niceness = None
        if is_document_lane(self.model_name):  # before loading, so every thread started later inherits it
            niceness = lower_cpu_priority(settings.document_lane_niceness)

        gpu_id = properties.get("gpu_id")
        if gpu_id is not None and torch.cuda.is_available():
            self.device = torch.device(f"cuda:{gpu_id}")
        else:
            self.device = torch.device("cpu")

        if settings.torch_threads and self.device.type == "cpu":
            torch.set_num_threads(settings.torch_threads)
        classifier = BertTokenClassifier.from_checkpoint(model_dir)
        self.settings = settings.with_model_limit(classifier.config.max_position_embeddings)
        self.memory = MemoryReleaser(self.settings.release_memory_after_pieces)
        self.tokenizer = load_tokenizer(model_dir, self.settings.max_length)
        check_vocabulary(self.tokenizer, classifier.config.vocab_size)
        self.id2label = dict(classifier.id2label)
        model: torch.nn.Module = classifier
        if self.settings.quantization is Quantization.INT8_DYNAMIC:
            if self.device.type != "cpu":
                raise ValueError("handler.quantization int8_dynamic runs on CPU only; use 'none' on GPU")
            model = quantize_int8_dynamic(classifier)
        self.model = model.to(self.device).eval()
        linear = self._choose_linear_kernels()
        manifest = getattr(context, "manifest", None) or {}
        self.model_version = str(manifest.get("model", {}).get("modelVersion", "unknown"))
        self.initialized = True
        self._warm_up()
        forward = self.settings.forward.value
        if self.settings.forward is ForwardMode.PACKED and classifier.packed_unsupported is not None:
            forward = f"padded, as packed does not cover {classifier.packed_unsupported}"
        logger.info(
            "NER model ready on %s (%s, %s forward, %s, %d torch threads): %d labels, windows of %d word pieces "
            "(overlap %d), %d padded tokens per forward%s",
            self.device,
            self.settings.quantization.value,
            forward,
            linear,
            torch.get_num_threads(),
            len(self.id2label),
            self.settings.max_length,
            self.settings.window_overlap,
            self.settings.tokens_per_forward,
            "" if niceness is None else f"; document lane, CPU priority nice {niceness}",
        )

    def _choose_linear_kernels(self) -> str:
        """Put oneDNN's prepacked GEMMs in place of the fp32 Linear layers where ``handler.linear_kernels`` asks
        for them and they apply (CPU, no int8); what the Linear layers run, for the ready log line."""
        if self.device.type != "cpu" or self.settings.quantization is not Quantization.NONE:
            return "Linear layers: their own kernels"
        if self.settings.linear_kernels is LinearKernels.TORCH:
            return "Linear layers: torch's"
        missing = onednn_linear_unavailable()
        if missing is not None:
            logger.warning("handler.linear_kernels onednn: %s; the Linear layers run torch's kernels", missing)
            return f"Linear layers: torch's, as {missing}"
        return f"Linear layers: oneDNN prepacked ({prepack_linears(self.model)})"

    def _warm_up(self) -> None:
        """One pass before the first request, so its latency does not include lazy initialization."""
        batch = self.preprocess([{"body": {"text": WARMUP_TEXT}}])
        self.postprocess(batch, self.inference(batch))

    # --- the data path, in the order handle() calls it -------------------------------------------------------

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
        """BaseHandler's template (preprocess -> inference -> postprocess), then one response per request from the
        per-text results, every response's status and headers, then the per-stage metrics."""
        self.context = context
        started = time.perf_counter()
        batch = self.preprocess(data, _content_types(context, len(data)))
        prepared = time.perf_counter()
        logits = self.inference(batch)
        inferred = time.perf_counter()
        text_results = self.postprocess(batch, logits)
        responses = batch.bodies.responses(text_results, self.model_name, self.model_version)
        done = time.perf_counter()
        self._set_statuses_and_headers(context, batch)
        try:
            self._record_metrics(
                context, batch, text_results, (prepared - started, inferred - prepared, done - inferred)
            )
        except Exception as err:  # metrics must never cost the batch its answers
            log_failure(logger, "recording the batch's metrics failed", err)
        logger.debug(
            "batch of %d requests, %d texts: %d windows in %d passes; preprocess %.1f ms, inference %.1f ms, "
            "postprocess %.1f ms",
            batch.bodies.size,
            batch.size,
            len(batch.window_refs),
            len(batch.passes),
            (prepared - started) * 1000,
            (inferred - prepared) * 1000,
            (done - inferred) * 1000,
        )
        # Drop the batch's buffers now, not when handle() returns, so that a release after a big batch hands them
        # back to the OS (docs/PERFORMANCE.md, "Memory").
        pieces = padded_pieces(forward.input_ids for forward in batch.passes)
        del batch, logits, text_results
        released = self.memory.after_batch(pieces)
        if released is not None:
            logger.debug("released freed memory after %d padded word pieces in %.1f ms", pieces, released * 1000)
        return responses

    def preprocess(self, data: list[dict[str, Any]], content_types: list[str | None] | None = None) -> PreparedBatch:
        """Validate every request, tokenize the valid texts of all of them in one call, and plan windows and
        forward passes.

        ``content_types`` holds each request's Content-Type header; None (the warm-up, in-process callers) is none.
        A client error stays with its own request, or its own text of a KServe request, and the rest is served.
        """
        if content_types is None:
            content_types = [None] * len(data)
        parsed: list[Body | RequestError] = []
        for item, content_type in zip(data, content_types, strict=True):
            try:
                parsed.append(parse_body(item, content_type, self.settings))
            except RequestError as error:
                parsed.append(error)
            except Exception as error:  # a bug of ours on this body: its own 500, the batch goes on
                parsed.append(internal_error("Parsing", error))
        bodies = BatchBodies.of(parsed)
        slots = bodies.text_slots()
        requests = {index: slot for index, slot in slots.items() if isinstance(slot, NerRequest)}
        errors = {index: slot for index, slot in slots.items() if isinstance(slot, RequestError)}
        pieces, tokenizer_errors = self._tokenize(requests)
        errors |= tokenizer_errors
        # Word pieces bound the cost; characters do not. Over the limit: 413 before any window or forward pass.
        text_errors, request_errors = piece_limit_errors(bodies, {i: len(p) for i, p in pieces.items()}, self.settings)
        errors |= text_errors
        pieces = {index: found for index, found in pieces.items() if index not in text_errors}
        if request_errors:
            bodies, moved = fail_requests(bodies, request_errors)
            requests = {moved[i]: request for i, request in requests.items() if i in moved}
            pieces = {moved[i]: found for i, found in pieces.items() if i in moved}
            errors = {moved[i]: error for i, error in errors.items() if i in moved}
        tokenizer = self.tokenizer
        return prepare_batch(
            bodies.text_count,
            requests,
            pieces,
            errors,
            self.settings,
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.pad_token_id,
            bodies,
        )

    def _tokenize(self, requests: Mapping[int, NerRequest]) -> tuple[dict[int, WordPieces], dict[int, RequestError]]:
        """Word pieces of every request in one tokenizer call, and the requests the tokenizer could not read (none,
        unless that call fails: then each text is tokenized on its own and only the ones that fail get a 400, so
        one text cannot fail its batch). Both are keyed by request index."""
        indices = list(requests)
        try:
            encoded = encode_batch(self.tokenizer, [requests[index].text for index in indices])
        except Exception:
            logger.warning("the tokenizer failed on a batch of %d texts; tokenizing them one by one", len(indices))
        else:
            return dict(zip(indices, encoded, strict=True)), {}
        pieces: dict[int, WordPieces] = {}
        errors: dict[int, RequestError] = {}
        for index in indices:
            try:
                pieces[index] = encode_batch(self.tokenizer, [requests[index].text])[0]
            except Exception as error:
                errors[index] = RequestError(400, f"the tokenizer cannot read this text ({type(error).__name__})")
        return pieces, errors

    def inference(self, batch: PreparedBatch, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """The forward passes only: one per length-sorted sub-batch, logits back as float32 arrays; a packed pass
        (``handler.forward: packed``) runs padding-free and answers (total_tokens, num_labels)."""
        logits = []
        with torch.inference_mode():
            for forward in batch.passes:
                if forward.packed:
                    input_ids = torch.from_numpy(forward.packed_ids).to(self.device, non_blocking=True)
                    model = cast(BertTokenClassifier, self.model)  # also after quantize_int8_dynamic
                    output = model.forward_packed(input_ids, forward.lengths)
                else:
                    input_ids = torch.from_numpy(forward.input_ids).to(self.device, non_blocking=True)
                    mask = torch.from_numpy(forward.attention_mask).to(self.device, non_blocking=True)
                    output = self.model(input_ids=input_ids, attention_mask=mask)
                logits.append(output.float().cpu().numpy())
        return logits

    def postprocess(self, batch: PreparedBatch, logits: list[np.ndarray]) -> list[dict[str, Any]]:
        """One JSON-ready result per text, in text order: its entities or segments, or its error. handle() turns
        them into one response per request (``BatchBodies.responses``: a single text's result, a KServe v1 / v2
        response of one result per text, or the request's error)."""
        return build_responses(batch, logits, self.id2label)

    # --- what TorchServe sends back besides the bodies ----------------------------------------------------------

    def _set_statuses_and_headers(self, context: Any, batch: PreparedBatch) -> None:
        """Each client error's status (a text of a KServe request keeps its error in its slot, and its request
        answers 200); on every response the JSON content type (TorchServe sets none for dict responses), the model
        version that answered (so a client can tell versions apart during an upgrade), and how many requests
        shared the batch."""
        if context.request_processor is None:  # a Context built in-process (the bench) has no responses to annotate
            return
        for index, error in batch.bodies.request_errors(batch.errors).items():
            context.set_response_status(code=error.status, phrase=error.message, idx=index)
        for index in range(batch.bodies.size):
            context.set_response_content_type(index, "application/json")
            context.set_response_header(index, BATCH_SIZE_HEADER, str(batch.bodies.size))
            context.set_response_header(index, MODEL_VERSION_HEADER, self.model_version)

    def _record_metrics(
        self,
        context: Any,
        batch: PreparedBatch,
        text_results: list[dict[str, Any]],
        stage_seconds: tuple[float, float, float],
    ) -> None:
        """The metrics declared in handler/metrics.yaml, dimensions in the order declared there."""
        metrics = getattr(context, "metrics", None)
        if metrics is None:
            return
        name = getattr(context, "model_name", None) or "ner_model"
        base = [Dimension("ModelName", name), Dimension("ModelVersion", self.model_version)]
        level = Dimension("Level", "Model")

        def histogram(metric: str, value: float, unit: str = "Count") -> None:
            metrics.add_metric(metric, value, unit, None, [*base, level], MetricTypes.HISTOGRAM)

        requests = batch.bodies.size
        client_errors = len(batch.bodies.request_errors(batch.errors))
        for outcome, count in (("ok", requests - client_errors), ("client_error", client_errors)):
            if count:
                metrics.add_metric(
                    "NerRequests",
                    count,
                    "Count",
                    None,
                    [*base, Dimension("Outcome", outcome), level],
                    MetricTypes.COUNTER,
                )
        for doc in batch.documents:
            body = text_results[doc.request_index]
            found = body.get("entities") or [s for s in body.get("segments", []) if s["label"] != OTHER_SEGMENT]
            histogram("NerEntitiesPerRequest", len(found))
            histogram("NerWordPiecesPerRequest", len(doc.pieces))
            histogram("NerWindowsPerRequest", len(doc.spans))
        histogram("NerRequestsPerBatch", requests)
        for metric, seconds in zip(
            ("NerPreprocessSeconds", "NerInferenceSeconds", "NerPostprocessSeconds"), stage_seconds, strict=True
        ):
            histogram(metric, seconds, "Seconds")
        metrics.add_time("HandlerTime", round(sum(stage_seconds) * 1000, 2), None, "ms")


def _content_types(context: Any, count: int) -> list[str | None]:
    """Each request's Content-Type header (any case), None where it has none."""
    if context.request_processor is None:
        return [None] * count
    found: list[str | None] = []
    for index in range(count):
        headers = context.get_all_request_header(index) or {}
        found.append(next((str(value) for key, value in headers.items() if key.lower() == "content-type"), None))
    return found
