"""``python -m nertools.latency_floor`` end to end: a real TorchServe serving the echo handler on free ports, the
batching copied from config.properties, the JSON it writes. Speed is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nertools.latency_floor import served_batching
from nertools.paths import TS_CONFIG


def test_the_command_measures_loopback_torchserve_and_the_idle_penalty(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nertools.latency_floor",
            "--requests",
            "30",
            "--warmup",
            "10",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "latency_floor.json").read_text())
    assert report["requests"] == 30 and report["warmup"] == 10
    echo = report["torchserve_echo"]
    assert {key: echo[key] for key in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")} == served_batching(
        TS_CONFIG, "ner_model"
    )
    for part in (report["loopback"], echo):
        assert 0 < part["p50_ms"] <= part["p90_ms"] <= part["p99_ms"]
    assert report["idle_penalty"]["gap_ms"] == pytest.approx(echo["p50_ms"], abs=0.011)
    assert "TorchServe, a handler doing nothing" in result.stdout


def test_a_bad_request_count_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "nertools.latency_floor", "--requests", "0"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "--requests must be >= 1" in result.stderr
