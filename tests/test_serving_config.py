"""config.properties and handler/model_config.yaml: the values TorchServe would misread or that must agree."""

import json

import yaml

from nerserve.settings import HandlerSettings
from tests.integration.server import ROOT


def properties() -> dict[str, str]:
    values = {}
    for line in (ROOT / "config.properties").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()  # the last duplicate wins, as in TorchServe
    return values


def served_version() -> dict:
    """The models= entry of ner_model 1.0 in config.properties."""
    return json.loads(properties()["models"])["ner_model"]["1.0"]


def archived_config() -> dict:
    """handler/model_config.yaml, the model config packed into the archive."""
    return yaml.safe_load((ROOT / "handler" / "model_config.yaml").read_text())


def test_dynamic_batching_values_are_ones_torchserve_honours():
    version = served_version()
    # TorchServe 0.12 reads maxBatchDelay 0 as "not set" and waits 100 ms for every batch (measured).
    assert version["maxBatchDelay"] >= 1
    assert version["batchSize"] >= 1
    assert 1 <= version["minWorkers"] <= version["maxWorkers"]


def test_workers_times_torch_threads_fit_the_two_core_default():
    version = served_version()
    settings = HandlerSettings.from_mapping(archived_config()["handler"])
    assert settings.torch_threads >= 1, "torch's default (one thread per core) in every worker oversubscribes"
    assert version["maxWorkers"] * settings.torch_threads <= 2


def test_request_size_limit_admits_the_longest_text_the_handler_accepts():
    settings = HandlerSettings.from_mapping(archived_config()["handler"])
    # Worst case JSON: every character escaped as a surrogate pair (12 bytes), plus the envelope.
    assert int(properties()["max_request_size"]) >= 12 * settings.max_text_chars + 1024


def test_response_timeout_covers_a_batch_of_the_longest_documents():
    """TorchServe fails a whole batch and replaces the worker when the batch overruns responseTimeout."""
    version = served_version()
    seconds_per_longest_document = 10  # measured: 100,000 characters, demo model, one thread (docs/PERFORMANCE.md)
    assert version["responseTimeout"] >= version["batchSize"] * seconds_per_longest_document * 1.5
    assert archived_config()["responseTimeout"] == version["responseTimeout"]
