"""nertools/torchserve.py: the one reader of config.properties, the READY count, error bodies, and its CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from nertools.ports import free_port
from nertools.torchserve import (
    DEFAULT_ADDRESSES,
    address,
    count_ready,
    error_fields,
    in_use,
    main,
    parse_properties,
    read_properties,
)
from tests.support.paths import ROOT


@pytest.mark.parametrize(
    "line",
    ["key=value", "key = value", "  key=value  ", "key:value", "key : value", "\tkey\t=\tvalue"],
)
def test_every_separator_style_reads_the_same(line):
    assert parse_properties(line + "\n") == {"key": "value"}


def test_comments_and_blank_lines_are_skipped():
    text = "# a=1\n! b=2\n\n   # c=3\nd=4\n"
    assert parse_properties(text) == {"d": "4"}


def test_the_last_occurrence_of_a_key_wins():
    assert parse_properties("a=1\nb=2\na = 3\n") == {"a": "3", "b": "2"}


def test_a_backslash_continues_the_value_on_the_next_line():
    text = 'models={"a": 1, \\\n    "b": 2}\nafter=x\n'
    assert parse_properties(text) == {"models": '{"a": 1, "b": 2}', "after": "x"}
    assert parse_properties("last=a\\") == {"last": "a"}  # a file may end mid-continuation


def test_only_the_first_separator_splits():
    assert parse_properties("inference_address=http://127.0.0.1:8080\n") == {
        "inference_address": "http://127.0.0.1:8080"
    }
    assert parse_properties("vmargs=-Xmx256m -Da=b\n") == {"vmargs": "-Xmx256m -Da=b"}


def test_a_key_without_a_value_is_empty():
    assert parse_properties("flag\n") == {"flag": ""}


def test_the_project_config_reads_as_torchserve_reads_it():
    properties = read_properties(ROOT / "config.properties")
    assert json.loads(properties["models"])["ner_model"]["1.0"]["batchSize"] >= 1
    assert properties["management_address"].startswith("http://127.0.0.1:")


def test_addresses_fall_back_to_torchserve_defaults():
    assert address({}, "metrics_address") == DEFAULT_ADDRESSES["metrics_address"]
    assert address({"metrics_address": "http://127.0.0.1:1"}, "metrics_address") == "http://127.0.0.1:1"


def worker(status: str) -> dict[str, str]:
    return {"id": "9000", "status": status}


def test_count_ready_counts_ready_workers_of_every_version():
    description = [
        {"modelVersion": "1.0", "workers": [worker("READY"), worker("UNLOADING")]},
        {"modelVersion": "2.0", "workers": [worker("READY"), worker("READY")]},
        {"modelVersion": "3.0", "workers": []},
    ]
    assert count_ready(description) == 3
    assert count_ready([]) == 0


@pytest.mark.parametrize("not_a_description", [{"code": 404}, "x", None, [1], [{"workers": "READY"}]])
def test_count_ready_refuses_what_is_not_a_description(not_a_description):
    with pytest.raises(ValueError):
        count_ready(not_a_description)


def test_error_fields_reads_torchserve_error_bodies():
    body = json.dumps({"code": 404, "type": "ModelNotFoundException", "message": "Model not found: x"})
    assert error_fields(body) == ("ModelNotFoundException", "Model not found: x")
    assert error_fields(body.encode()) == ("ModelNotFoundException", "Model not found: x")
    assert error_fields('{"message": "no type"}') == (None, "no type")


@pytest.mark.parametrize("body", [b"", b"<html>", b"[]", b'{"message": 5}', b'{"status": "ok"}', b"[" * 100_000])
def test_error_fields_of_anything_else_is_none(body):
    assert error_fields(body) == (None, None)


def test_cli_get_prints_a_value(tmp_path, capsys):
    config = tmp_path / "c.properties"
    config.write_text("inference_address = http://127.0.0.1:1\nmax_request_size=10\n")
    assert main(["get", "inference_address", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "http://127.0.0.1:1\n"
    assert main(["get", "management_address", "--config", str(config)]) == 0  # TorchServe's default
    assert capsys.readouterr().out == "http://127.0.0.1:8081\n"
    assert main(["get", "vmargs", "--config", str(config), "--default", "none"]) == 0
    assert capsys.readouterr().out == "none\n"


def test_cli_get_fails_on_a_key_that_is_not_set_or_a_missing_file(tmp_path, capsys):
    config = tmp_path / "c.properties"
    config.write_text("a=1\n")
    assert main(["get", "vmargs", "--config", str(config)]) == 1
    assert "does not set vmargs" in capsys.readouterr().err
    assert main(["get", "a", "--config", str(tmp_path / "absent")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_runs_as_a_module_from_the_shell(tmp_path):
    config = tmp_path / "c.properties"
    config.write_text("metrics_address: http://127.0.0.1:5\n")
    result = subprocess.run(
        [sys.executable, "-m", "nertools.torchserve", "get", "metrics_address", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == "http://127.0.0.1:5\n"


def test_in_use_sees_a_listening_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert in_use(f"http://127.0.0.1:{listener.getsockname()[1]}")
    assert not in_use(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError):
        in_use("not a url")


def test_cli_check_free_names_each_address_in_use(tmp_path, capsys):
    config = tmp_path / "c.properties"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config.write_text(
            f"inference_address=http://127.0.0.1:{free_port()}\nmanagement_address={taken}\n"
            f"metrics_address=http://127.0.0.1:{free_port()}\n"
        )
        assert main(["check-free", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{taken} (management_address in {config}) is already in use" in err
    assert "inference_address" not in err and "metrics_address" not in err
    assert main(["check-free", "--config", str(config), "inference_address"]) == 0
    assert main(["check-free", "--config", str(config), "models"]) == 2
