"""config.properties and handler/model_config.yaml: the values TorchServe would misread or that must agree.

These are configuration checks, not measurements: the sizing rules and the numbers they use come from the
"Sizing" table of docs/PERFORMANCE.md, so they hold on any machine that runs the tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from nerserve.protocol import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TEXT_CHARS, document_lane
from nerserve.settings import HandlerSettings
from nertools.torchserve import read_properties
from tests.support.paths import ROOT

PERFORMANCE_DOC = ROOT / "docs" / "PERFORMANCE.md"
# Worst-case JSON: every character escaped as a surrogate pair (\ud83d\ude00, 12 bytes), plus the envelope.
ESCAPED_BYTES_PER_CHAR = 12
ENVELOPE_BYTES = 1024


def properties() -> dict[str, str]:
    return read_properties(ROOT / "config.properties")


def served_version(model: str = "ner_model") -> dict[str, Any]:
    """The models= entry of ``model`` 1.0 in config.properties."""
    version: dict[str, Any] = json.loads(properties()["models"])[model]["1.0"]
    return version


LANES = ("ner_model", document_lane("ner_model"))


def test_the_document_lane_serves_the_models_archive_and_both_load_at_start():
    assert served_version(LANES[1])["marName"] == served_version()["marName"]
    loaded = dict(entry.split("=", 1) for entry in properties()["load_models"].split(","))
    assert loaded == {lane: served_version()["marName"] for lane in LANES}


def archived_config() -> dict[str, Any]:
    """handler/model_config.yaml, the model config packed into the archive."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "handler" / "model_config.yaml").read_text())
    return config


def handler_settings() -> HandlerSettings:
    return HandlerSettings.from_mapping(archived_config()["handler"])


def sizing() -> dict[str, float]:
    """The "Sizing" table of docs/PERFORMANCE.md: | `name` | value | what it is |."""
    section = PERFORMANCE_DOC.read_text(encoding="utf-8").split("## Sizing", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([\d.]+) \|", section, flags=re.M)
    return {name: float(value) for name, value in rows}


def test_the_performance_doc_states_the_sizing_inputs():
    assert set(sizing()) == {"cores", "seconds_per_longest_document", "seconds_per_thousand_pieces", "timeout_margin"}


@pytest.mark.parametrize("lane", LANES)
def test_dynamic_batching_values_are_ones_torchserve_honours(lane):
    version = served_version(lane)
    # TorchServe 0.12 reads maxBatchDelay 0 as "not set" and waits 100 ms for every batch (measured).
    assert version["maxBatchDelay"] >= 1
    assert version["batchSize"] >= 1
    assert 1 <= version["minWorkers"] <= version["maxWorkers"]


@pytest.mark.parametrize("lane", LANES)
def test_workers_times_torch_threads_fit_the_documented_cores(lane):
    settings = handler_settings()
    assert settings.torch_threads >= 1, "torch's default (one thread per core) in every worker oversubscribes"
    assert served_version(lane)["maxWorkers"] * settings.torch_threads <= sizing()["cores"]


def test_request_size_limit_admits_the_longest_text_the_handler_accepts():
    limit = int(properties()["max_request_size"])
    assert limit >= ESCAPED_BYTES_PER_CHAR * handler_settings().max_text_chars + ENVELOPE_BYTES


def test_the_protocol_defaults_are_the_served_limits():
    """The gateway takes its limits from nerserve.protocol: they must be the ones TorchServe and the handler apply."""
    assert handler_settings().max_text_chars == DEFAULT_MAX_TEXT_CHARS
    assert int(properties()["max_request_size"]) == DEFAULT_MAX_REQUEST_BYTES
    assert DEFAULT_MAX_REQUEST_BYTES >= ESCAPED_BYTES_PER_CHAR * DEFAULT_MAX_TEXT_CHARS + ENVELOPE_BYTES


@pytest.mark.parametrize("lane", LANES)
def test_response_timeout_covers_a_batch_of_the_longest_documents(lane):
    """TorchServe fails a whole batch and replaces the worker when the batch overruns responseTimeout."""
    version, rule = served_version(lane), sizing()
    worst_batch = version["batchSize"] * rule["seconds_per_longest_document"]
    assert version["responseTimeout"] >= worst_batch * rule["timeout_margin"]
    assert archived_config()["responseTimeout"] == version["responseTimeout"]


@pytest.mark.parametrize("lane", LANES)
def test_response_timeout_covers_a_batch_of_the_most_word_pieces_a_request_may_hold(lane):
    """Word pieces, not characters, bound a text's cost ("a," * 50_000 is 100,000 pieces in 100,000 characters): the
    worst batch is batchSize requests of max_request_pieces each, and it must finish inside responseTimeout."""
    version, rule, settings = served_version(lane), sizing(), handler_settings()
    worst_batch = version["batchSize"] * settings.max_request_pieces / 1000 * rule["seconds_per_thousand_pieces"]
    assert version["responseTimeout"] >= worst_batch * rule["timeout_margin"]
    assert settings.max_text_pieces <= settings.max_request_pieces


def test_the_handler_parses_json_bodies_up_to_torchserves_request_size():
    assert handler_settings().max_request_bytes == int(properties()["max_request_size"])
