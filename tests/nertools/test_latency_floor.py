"""nertools.latency_floor: the batching it copies, the handler it serves, the loopback and idle-penalty probes.
The TorchServe part runs in tests/integration/test_latency_floor.py. Speed is never asserted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nertools.echo_handler import handle
from nertools.latency_floor import echo_config, idle_penalty, loopback_latencies, served_batching
from nertools.paths import TS_CONFIG
from nertools.torchserve import model_versions, read_properties


def test_the_echo_handler_answers_every_request_of_a_batch():
    assert handle(None, None) is None
    assert handle([{"body": {"text": "a"}}, {"body": b"b"}, {"data": None}], None) == [{"answered": True}] * 3


def test_the_served_models_batching_is_copied_from_config_properties():
    batching = served_batching(TS_CONFIG, "ner_model")
    configured = model_versions(read_properties(TS_CONFIG), "ner_model")["1.0"]
    assert batching == {key: configured[key] for key in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")}
    entry = json.loads(echo_config(batching).removeprefix("models="))["echo"]["1.0"]
    assert entry["marName"] == "echo.mar" and entry["defaultVersion"] is True
    assert {key: entry[key] for key in batching} == batching


def test_a_config_without_the_models_batching_is_refused(tmp_path: Path):
    config = tmp_path / "config.properties"
    config.write_text('models={"ner_model": {"1.0": {"defaultVersion": true, "batchSize": 8}}}\n')
    with pytest.raises(ValueError, match="does not set"):
        served_batching(config, "ner_model")
    with pytest.raises(ValueError, match="no models"):
        served_batching(config, "other_model")


def test_the_loopback_probe_records_only_the_measured_requests():
    ticks = []
    latencies = asyncio.run(loopback_latencies(warmup=3, requests=7, tick=lambda: ticks.append(1)))
    assert len(latencies) == 7 and len(ticks) == 10 and all(value > 0 for value in latencies)


def test_the_idle_penalty_compares_the_same_work_with_and_without_a_gap():
    result = idle_penalty(gap_s=0.002, runs=5)
    assert result["gap_ms"] == 2.0
    ratio = result["after_idle_p50_ms"] / result["back_to_back_p50_ms"]
    assert result["slowdown"] == pytest.approx(ratio, abs=0.011)
