"""nertools/manage.py without TorchServe: options before or after the command, the archive's name, error text.

The commands against a real TorchServe are in tests/integration/test_versions.py.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nertools.manage import (
    build_parser,
    cmd_register,
    error_message,
    main,
    read_manifest,
)
from nertools.torchserve import read_properties
from tests.support.json_server import json_server
from tests.support.paths import ROOT

GLOBAL = ["--management", "http://m:1", "--inference", "http://i:2", "--key-file", "k.json", "--json"]


@pytest.mark.parametrize(
    "argv",
    [
        [*GLOBAL, "describe", "ner_model"],
        ["describe", "ner_model", *GLOBAL],
        [
            "--json",
            "--management",
            "http://m:1",
            "describe",
            "ner_model",
            "--inference",
            "http://i:2",
            "--key-file",
            "k.json",
        ],
    ],
)
def test_global_options_go_before_or_after_the_command(argv):
    args = build_parser({}).parse_args(argv)
    assert (args.management, args.inference, args.key_file, args.json) == (
        "http://m:1",
        "http://i:2",
        Path("k.json"),
        True,
    )
    assert (args.command, args.name) == ("describe", "ner_model")


def test_after_the_command_wins_and_defaults_stand_when_absent():
    args = build_parser({}).parse_args(["--management", "http://before:1", "list", "--management", "http://after:1"])
    assert args.management == "http://after:1"
    args = build_parser({}).parse_args(["list"])
    assert (args.management, args.inference, args.key_file, args.json) == (
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8080",
        Path("key_file.json"),
        False,
    )


def test_the_environment_sets_the_default_urls_and_the_usage_says_so():
    parser = build_parser({"NER_MANAGEMENT_URL": "http://env:81", "NER_INFERENCE_URL": "http://env:80"})
    args = parser.parse_args(["ready", "ner_model"])
    assert (args.management, args.inference) == ("http://env:81", "http://env:80")
    usage = parser.format_help()
    assert "NER_MANAGEMENT_URL" in usage and "NER_INFERENCE_URL" in usage


def write_mar(path: Path, model: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": model}))
    return path


class RecordingAdmin:
    """Stands in for TorchServeAdmin: records the calls that change something, answers like TorchServe's register;
    ``described`` are the GET answers (by default no model is registered)."""

    def __init__(self, described: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.described = {"/models": {"models": []}, **(described or {})}

    def manage(self, method: str, path: str, ok: tuple[int, ...] = (200,), **params: Any) -> Any:
        if method == "GET":
            return self.described[path]
        self.calls.append((method, path, params))
        return {"status": "registered"}


def register_args(mar: Path | str, *extra: str) -> argparse.Namespace:
    return build_parser({}).parse_args(["register", str(mar), *extra])


def test_register_names_the_model_as_its_archive_does(tmp_path):
    admin = RecordingAdmin()
    mar = write_mar(tmp_path / "other_v3.0.mar", {"modelName": "other_model", "modelVersion": "3.0"})
    cmd_register(admin, register_args(mar))
    [(method, path, params)] = admin.calls
    assert (method, path, params["url"], params["model_name"]) == ("POST", "/models", "other_v3.0.mar", "other_model")


def test_an_explicit_name_wins_and_a_nameless_manifest_gives_ner_model(tmp_path):
    admin = RecordingAdmin()
    mar = write_mar(tmp_path / "a.mar", {"modelName": "other_model", "modelVersion": "1.0"})
    cmd_register(admin, register_args(mar, "--name", "mine"))
    nameless = write_mar(tmp_path / "b.mar", {"modelVersion": "1.0"})
    cmd_register(admin, register_args(nameless))
    assert [params["model_name"] for _, _, params in admin.calls] == ["mine", "ner_model"]


def test_register_also_registers_the_document_lane_with_the_lanes_own_batching(tmp_path):
    lane_default = {
        "modelName": "ner_model_documents",
        "modelVersion": "1.0",
        "modelUrl": "ner_model.mar",
        "batchSize": 4,
        "maxBatchDelay": 3,
        "minWorkers": 2,
        "maxWorkers": 2,
        "responseTimeout": 400,
        "workers": [],
    }
    admin = RecordingAdmin(
        {
            "/models": {"models": [{"modelName": "ner_model"}, {"modelName": "ner_model_documents"}]},
            "/models/ner_model_documents": [lane_default],
        }
    )
    mar = write_mar(tmp_path / "ner_model_v2.0.mar", {"modelName": "ner_model", "modelVersion": "2.0"})
    _, message = cmd_register(admin, register_args(mar, "--batch-size", "16", "--workers", "1"))
    registered = [
        (params["model_name"], params["batch_size"], params["max_batch_delay"], params["initial_workers"])
        for _, _, params in admin.calls
    ]
    assert registered == [("ner_model", 16, 1, 1), ("ner_model_documents", 4, 3, 2)]
    assert {params["url"] for _, _, params in admin.calls} == {"ner_model_v2.0.mar"}
    assert "also registered as ner_model_documents (batch 4, 2 worker(s))" in message


def test_an_archive_that_is_not_a_local_file_is_named_by_torchserve_from_its_manifest():
    admin = RecordingAdmin()
    cmd_register(admin, register_args("https://example.invalid/x.mar"))
    [(_, _, params)] = admin.calls
    assert params["url"] == "https://example.invalid/x.mar" and params["model_name"] is None


def test_read_manifest_of_what_is_not_an_archive_is_none(tmp_path):
    (tmp_path / "x.mar").write_bytes(b"not a zip")
    assert read_manifest(tmp_path / "x.mar") is None
    assert read_manifest(tmp_path / "absent.mar") is None
    with zipfile.ZipFile(tmp_path / "y.mar", "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", "[]")
    assert read_manifest(tmp_path / "y.mar") is None


def response(status: int, body: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content, answer.reason = status, body, "Not Found"
    return answer


def test_error_message_is_torchserves_message_or_the_body():
    body = json.dumps({"code": 404, "type": "ModelNotFoundException", "message": "Model not found: x"}).encode()
    assert error_message(response(404, body)) == "Model not found: x"
    assert error_message(response(502, b"  bad gateway \n")) == "bad gateway"
    assert error_message(response(404, b"")) == "Not Found"


DESCRIPTION = [{"modelName": "ner_model", "modelVersion": "1.0", "workers": [{"id": "1", "status": "READY"}]}]


def fake_management(path: str) -> tuple[int, object]:
    """GET /models/ner_model[/all]: one READY version 1.0, as TorchServe's management API describes it."""
    if path in ("/models/ner_model", "/models/ner_model/all"):
        return 200, DESCRIPTION
    return 404, {"code": 404, "message": "Model not found"}


@pytest.fixture
def management() -> Iterator[str]:
    with json_server(fake_management) as url:
        yield url


def test_describe_with_json_after_the_command_prints_json(management, capsys, tmp_path):
    key_file = str(tmp_path / "absent.json")
    assert main(["describe", "ner_model", "--json", "--management", management, "--key-file", key_file]) == 0
    after = json.loads(capsys.readouterr().out)
    assert main(["--json", "--management", management, "--key-file", key_file, "describe", "ner_model"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert after == before and after[0]["isDefault"] is True and after[0]["modelVersion"] == "1.0"


def test_errors_follow_json_given_after_the_command(management, capsys, tmp_path):
    argv = ["describe", "no_such_model", "--management", management, "--key-file", str(tmp_path / "none.json")]
    assert main([*argv, "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"] == "GET /models/no_such_model/all: HTTP 404: Model not found"
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: GET /models/no_such_model/all: HTTP 404")


def test_ready_counts_ready_workers(management, capsys, tmp_path):
    assert main(["ready", "ner_model", "--management", management, "--key-file", str(tmp_path / "k.json")]) == 0
    assert capsys.readouterr().out == "ner_model: 1 READY worker(s)\n"


def test_register_defaults_are_the_served_configuration(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text(
        'models={"ner_model": {"1.0": {"batchSize": 8, "maxBatchDelay": 5, "minWorkers": 3, "responseTimeout": 400}}}\n'
    )
    args = build_parser({"NER_TS_CONFIG": str(config)}).parse_args(["register", "x.mar"])
    assert (args.batch_size, args.max_batch_delay, args.workers, args.response_timeout) == (8, 5, 3, 400)
    project = build_parser({}).parse_args(["register", "x.mar"])
    served = next(iter(json.loads(read_properties(ROOT / "config.properties")["models"])["ner_model"].values()))
    assert project.response_timeout == served["responseTimeout"] and project.batch_size == served["batchSize"]
    missing = build_parser({"NER_TS_CONFIG": str(tmp_path / "absent")}).parse_args(["register", "x.mar"])
    assert missing.batch_size == 1 and missing.response_timeout == 120  # TorchServe's own defaults
