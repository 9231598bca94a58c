"""nertools.latency_floor: the handler it serves, the batching it copies, the loopback and idle-penalty probes,
its arguments. The TorchServe part runs in tests/integration/test_latency_floor.py. Speed is never asserted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import nertools.latency_floor as latency_floor
from nertools.echo_handler import handle
from nertools.latency_floor import echo_config, idle_penalty, loopback_server, sequential_latencies
from nertools.paths import TS_CONFIG
from nertools.torchserve import BATCH_KEYS, model_versions, read_properties, served_batching


def test_the_echo_handler_answers_every_request_of_a_batch():
    assert handle(None, None) is None
    assert handle([{"body": {"text": "a"}}, {"body": b"b"}, {"data": None}], None) == [{"answered": True}] * 3


def test_the_served_models_batching_is_copied_from_config_properties():
    properties = read_properties(TS_CONFIG)
    batching = served_batching(properties, "ner_model")
    configured = model_versions(properties, "ner_model")["1.0"]
    assert batching == {key: configured[key] for key in BATCH_KEYS}
    entry = json.loads(echo_config(batching).removeprefix("models="))["echo"]["1.0"]
    assert entry["marName"] == "echo.mar" and entry["defaultVersion"] is True
    assert {key: entry[key] for key in batching} == batching


def test_the_default_version_is_the_one_copied_unless_a_version_is_named():
    entry = {key: 1 for key in BATCH_KEYS}
    models = {"m": {"1.0": {**entry, "batchSize": 8}, "2.0": {**entry, "batchSize": 4, "defaultVersion": True}}}
    properties = {"models": json.dumps(models)}
    assert served_batching(properties, "m")["batchSize"] == 4
    assert served_batching(properties, "m", "1.0")["batchSize"] == 8
    assert served_batching(properties, "m", "3.0")["batchSize"] == 4


def test_a_config_without_the_models_batching_is_refused():
    properties = {"models": '{"ner_model": {"1.0": {"defaultVersion": true, "batchSize": 8}}}'}
    with pytest.raises(ValueError, match="does not set"):
        served_batching(properties, "ner_model")
    with pytest.raises(ValueError, match="no models"):
        served_batching(properties, "other_model")


def test_the_loopback_probe_answers_from_another_process_and_records_only_the_measured_requests():
    ticks = []
    with loopback_server() as url:
        latencies = asyncio.run(sequential_latencies(url, warmup=3, requests=7, tick=lambda: ticks.append(1)))
    assert len(latencies) == 7 and len(ticks) == 10 and all(value > 0 for value in latencies)


def test_the_idle_penalty_sleeps_before_every_after_idle_run_and_never_back_to_back(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(latency_floor.time, "sleep", sleeps.append)
    result = idle_penalty(gap_s=0.002, runs=5)
    assert sleeps == [0.002] * 5  # the warm-up and the back-to-back runs sleep not at all
    assert result["gap_ms"] == 2.0
    ratio = result["after_idle_p50_ms"] / result["back_to_back_p50_ms"]
    assert result["slowdown"] == pytest.approx(ratio, abs=0.011)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--requests", "0"], "--requests must be >= 1"),
        (["--warmup", "-1"], "--warmup >= 0"),
        (["--model", "no_such_model"], "no models={'no_such_model': ...} entry"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(argv, message, capsys, tmp_path: Path):
    with pytest.raises(SystemExit) as exited:
        latency_floor.main([*argv, "--output", str(tmp_path)])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "latency_floor.json").exists()
