"""``python -m nertools.latency_floor`` end to end: a real TorchServe serving the echo handler on free ports, the
batching copied from config.properties, the JSON it writes. Speed is never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nertools.paths import TS_CONFIG
from nertools.torchserve import read_properties, served_batching


def test_the_command_measures_loopback_torchserve_and_the_idle_penalty(java_available, tmp_path: Path):
    scratch = tmp_path / "tmp"  # the tool's temporary directory, TorchServe's included
    scratch.mkdir()
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
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "latency_floor.json").read_text())
    assert report["requests"] == 30 and report["warmup"] == 10
    echo = report["torchserve_echo"]
    batching = served_batching(read_properties(TS_CONFIG), "ner_model")
    assert {key: echo[key] for key in batching} == batching
    assert report["loopback"]["p50_ms"] > 0 and echo["p50_ms"] > 0
    assert report["idle_penalty"]["gap_ms"] == pytest.approx(echo["p50_ms"], abs=0.011)
    assert "TorchServe, a handler doing nothing" in result.stdout
    assert list(scratch.iterdir()) == []  # the temporary directory, TorchServe's logs and archive went with it
