"""TorchServe handler for BERT named-entity recognition.

A thin adapter: it unwraps TorchServe's request items, owns the tokenizer, the model and the device, and calls
the pure core in ``nerserve`` for parsing, windowing, batching and decoding. TorchServe loads a handler module
only if it defines exactly one class, so everything else lives in ``nerserve``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from model import BertTokenClassifier, quantize_int8_dynamic
from nerserve.batch import PreparedBatch, build_responses, prepare_batch, window_logits
from nerserve.decoding import OTHER_SEGMENT
from nerserve.requests import RequestError, parse_request
from nerserve.settings import HandlerSettings, Quantization
from nerserve.tokenization import check_vocabulary, encode_batch, load_tokenizer

logger = logging.getLogger(__name__)

WARMUP_TEXT = "Warm-up sentence one, in Paris."
BATCH_SIZE_HEADER = "X-NER-Batch-Size"
VERSION_HEADER = "X-NER-Model-Version"


class NerHandler(BaseHandler):
    """BERT token classification with long-text windows, dynamic batches and per-request errors."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = HandlerSettings()
        self.tokenizer = None
        self.id2label: dict[int, str] = {}
        self.model_version = "unknown"

    def initialize(self, context) -> None:
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        yaml_config = getattr(context, "model_yaml_config", None) or {}
        settings = HandlerSettings.from_mapping(yaml_config.get("handler"))

        gpu_id = properties.get("gpu_id")
        if gpu_id is not None and torch.cuda.is_available():
            self.device = torch.device(f"cuda:{gpu_id}")
        else:
            self.device = torch.device("cpu")

        if settings.torch_threads and self.device.type == "cpu":
            torch.set_num_threads(settings.torch_threads)
        model = BertTokenClassifier.from_checkpoint(model_dir)
        self.settings = settings.with_model_limit(model.config.max_position_embeddings)
        self.tokenizer = load_tokenizer(model_dir, self.settings.max_length)
        check_vocabulary(self.tokenizer, model.config.vocab_size)
        if self.settings.quantization is Quantization.INT8_DYNAMIC:
            if self.device.type != "cpu":
                raise ValueError("handler.quantization int8_dynamic runs on CPU only; use 'none' on GPU")
            model = quantize_int8_dynamic(model)
        self.model = model.to(self.device).eval()
        self.id2label = dict(model.id2label)
        manifest = getattr(context, "manifest", None) or {}
        self.model_version = str(manifest.get("model", {}).get("modelVersion", "unknown"))
        self.initialized = True
        self._warm_up()
        logger.info(
            "NER model ready on %s (%s, %d torch threads): %d labels, windows of %d word pieces (overlap %d), %d "
            "padded tokens per forward",
            self.device,
            self.settings.quantization.value,
            torch.get_num_threads(),
            len(self.id2label),
            self.settings.max_length,
            self.settings.window_overlap,
            self.settings.tokens_per_forward,
        )

    def _warm_up(self) -> None:
        """One pass before the first request, so its latency does not include lazy initialisation."""
        batch = self.prepare([{"body": {"text": WARMUP_TEXT}}], content_types=[None])
        self.postprocess(self.inference(batch))

    # --- TorchServe stages -------------------------------------------------------------------------------------

    def preprocess(self, data: list[dict[str, Any]]) -> PreparedBatch:
        return self.prepare(data, [self._content_type(i) for i in range(len(data))])

    def prepare(self, data: list[dict[str, Any]], content_types: list[str | None]) -> PreparedBatch:
        parsed: list[Any] = []
        for item, content_type in zip(data, content_types):
            try:
                parsed.append(parse_request(item, content_type, self.settings))
            except RequestError as error:
                parsed.append(error)
        pieces = self._tokenise(parsed)
        tokenizer = self.tokenizer
        return prepare_batch(
            parsed, pieces, self.settings, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        )

    def _tokenise(self, parsed: list[Any]) -> list[Any]:
        """Word pieces of every valid request in one tokenizer call. Should that call fail, each text is tokenised
        on its own and only the ones that fail get a 400 (in ``parsed``), so one text cannot fail its batch."""
        texts = [item.text for item in parsed if not isinstance(item, RequestError)]
        try:
            return encode_batch(self.tokenizer, texts)
        except Exception:
            logger.warning("the tokenizer failed on a batch of %d texts; tokenising them one by one", len(texts))
        pieces = []
        for index, item in enumerate(parsed):
            if isinstance(item, RequestError):
                continue
            try:
                pieces.extend(encode_batch(self.tokenizer, [item.text]))
            except Exception as error:
                parsed[index] = RequestError(400, f"the tokenizer cannot read this text ({type(error).__name__})")
        return pieces

    def inference(self, batch: PreparedBatch, *args, **kwargs) -> tuple[PreparedBatch, list[np.ndarray]]:
        """The forward passes only: one per length-sorted sub-batch, logits back as float32 arrays."""
        outputs = []
        with torch.inference_mode():
            for forward in batch.passes:
                input_ids = torch.from_numpy(forward.input_ids).to(self.device, non_blocking=True)
                mask = torch.from_numpy(forward.attention_mask).to(self.device, non_blocking=True)
                logits = self.model(input_ids=input_ids, attention_mask=mask)
                outputs.append(logits.float().cpu().numpy())
        return batch, outputs

    def postprocess(self, data: tuple[PreparedBatch, list[np.ndarray]]) -> list[dict[str, Any]]:
        batch, pass_logits = data
        responses = build_responses(batch, window_logits(batch, pass_logits), self.id2label)
        for index, error in batch.errors.items():
            self._set_status(index, error)
        self._set_headers(batch.size)
        return responses

    # --- TorchServe context helpers ----------------------------------------------------------------------------

    def _content_type(self, index: int) -> str | None:
        context = getattr(self, "context", None)
        if context is None or getattr(context, "request_processor", None) is None:
            return None
        headers = context.get_all_request_header(index) or {}
        for key, value in headers.items():
            if key.lower() == "content-type":
                return value
        return None

    def _set_status(self, index: int, error: RequestError) -> None:
        context = getattr(self, "context", None)
        if context is not None:
            context.set_response_status(code=error.status, phrase=error.message, idx=index)

    def _set_headers(self, size: int) -> None:
        """JSON content type (TorchServe sets none for dict responses), the model version that answered (so a
        client can tell versions apart during an upgrade), and how many requests shared the batch."""
        context = getattr(self, "context", None)
        if context is None or getattr(context, "request_processor", None) is None:
            return
        for index in range(size):
            context.set_response_content_type(index, "application/json")
            context.set_response_header(index, BATCH_SIZE_HEADER, str(size))
            context.set_response_header(index, VERSION_HEADER, self.model_version)

    def _record_metrics(
        self, batch: PreparedBatch, responses: list[dict[str, Any]], stage_seconds: tuple[float, float, float]
    ) -> None:
        """The metrics declared in handler/metrics.yaml, dimensions in the order declared there."""
        metrics = getattr(self.context, "metrics", None)
        if metrics is None:
            return
        name = getattr(self.context, "model_name", None) or "ner_model"
        base = [Dimension("ModelName", name), Dimension("ModelVersion", self.model_version)]
        level = Dimension("Level", "Model")

        def histogram(metric: str, value: float, unit: str = "Count") -> None:
            metrics.add_metric(metric, value, unit, None, [*base, level], MetricTypes.HISTOGRAM)

        client_errors = len(batch.errors)
        for outcome, count in (("ok", batch.size - client_errors), ("client_error", client_errors)):
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
            body = responses[doc.request_index]
            found = body.get("entities") or [s for s in body.get("segments", []) if s["label"] != OTHER_SEGMENT]
            histogram("NerEntitiesPerRequest", len(found))
            histogram("NerWordPiecesPerRequest", len(doc.pieces))
            histogram("NerWindowsPerRequest", len(doc.windows))
        histogram("NerRequestsPerBatch", batch.size)
        for metric, seconds in zip(
            ("NerPreprocessSeconds", "NerInferenceSeconds", "NerPostprocessSeconds"), stage_seconds
        ):
            histogram(metric, seconds, "Seconds")
        metrics.add_time("HandlerTime", round(sum(stage_seconds) * 1000, 2), None, "ms")

    def handle(self, data, context):
        """BaseHandler's template (preprocess -> inference -> postprocess) plus per-stage timings."""
        self.context = context
        started = time.perf_counter()
        batch = self.preprocess(data)
        prepared = time.perf_counter()
        output = self.inference(batch)
        inferred = time.perf_counter()
        responses = self.postprocess(output)
        done = time.perf_counter()
        self._record_metrics(batch, responses, (prepared - started, inferred - prepared, done - inferred))
        logger.debug(
            "batch of %d: %d windows in %d passes; preprocess %.1f ms, inference %.1f ms, postprocess %.1f ms",
            batch.size,
            len(batch.windows),
            len(batch.passes),
            (prepared - started) * 1000,
            (inferred - prepared) * 1000,
            (done - inferred) * 1000,
        )
        return responses
