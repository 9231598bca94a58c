"""The served state kept across restarts: the file, the restore plan, and who may write it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nertools.manage import TorchServeAdmin, record_state
from nertools.served_state import (
    ModelState,
    StateError,
    Step,
    VersionState,
    default_state_file,
    main,
    missing_archives,
    plan,
    read_state,
    version_from_description,
    write_state,
)
from tests.support.json_server import json_server

V1 = VersionState("ner_model.mar", 16, 1, 2, 2, 300)
V2 = VersionState("ner_model_v2.0.mar", 8, 20, 1, 1, 120)
STARTED = {"ner_model": ModelState("1.0", {"1.0": V1})}  # what serve.sh's load_models brings up
UPGRADED = {"ner_model": ModelState("2.0", {"2.0": V2})}  # after register 2.0, set-default 2.0, unregister 1.0


def test_an_upgrade_is_replayed_register_first_and_removal_after_the_default_moved():
    steps = plan(UPGRADED, STARTED)
    assert [(s.action, s.version) for s in steps] == [
        ("register", "2.0"),
        ("set-default", "2.0"),
        ("unregister", "1.0"),
    ]
    assert steps[0].spec == V2


def test_a_state_that_matches_what_is_served_needs_no_call():
    assert plan(STARTED, STARTED) == []


def test_recorded_worker_counts_are_scaled_back():
    scaled = {"ner_model": ModelState("1.0", {"1.0": VersionState("ner_model.mar", 16, 1, 1, 3, 300)})}
    assert plan(scaled, STARTED) == [Step("scale", "ner_model", "1.0", scaled["ner_model"].versions["1.0"])]


def test_models_the_state_does_not_name_are_left_alone():
    live = {**STARTED, "other": ModelState("1.0", {"1.0": V1})}
    assert plan(STARTED, live) == []


def test_the_file_round_trips_and_is_replaced_whole(tmp_path):
    path = tmp_path / "deep" / "served_state.json"
    write_state(path, "http://127.0.0.1:8081/", UPGRADED)
    assert read_state(path) == ("http://127.0.0.1:8081", UPGRADED)
    write_state(path, "http://127.0.0.1:8081", STARTED)
    assert read_state(path) == ("http://127.0.0.1:8081", STARTED)
    assert [p.name for p in path.parent.iterdir()] == ["served_state.json"]  # no temporary file left behind


def test_no_file_means_no_state(tmp_path):
    assert read_state(tmp_path / "none.json") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"schema": 1}', "not a served-state file"),
        ('{"schema": 9, "management": "x", "models": {}}', "schema 9"),
        (
            '{"schema": 1, "management": "x", "models": {"ner_model": {"default": "3.0", "versions": {}}}}',
            "the default ner_model 3.0 is not among its versions",
        ),
    ],
)
def test_a_broken_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "served_state.json"
    path.write_text(text)
    with pytest.raises(StateError, match=message):
        read_state(path)


def test_missing_archives_are_listed_by_version(tmp_path):
    (tmp_path / "ner_model.mar").write_bytes(b"")
    both = {"ner_model": ModelState("2.0", {"1.0": V1, "2.0": V2})}
    assert missing_archives(both, tmp_path) == [f"ner_model 2.0: ner_model_v2.0.mar is not in {tmp_path}"]


def test_check_refuses_a_state_whose_archive_is_gone(tmp_path, capsys):
    state = tmp_path / "served_state.json"
    write_state(state, "http://127.0.0.1:8081", UPGRADED)
    assert main(["check", "--state", str(state), "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ner_model_v2.0.mar is not in" in err and "scripts/serve.sh --fresh" in err
    (tmp_path / "ner_model_v2.0.mar").write_bytes(b"")
    assert main(["check", "--state", str(state), "--store", str(tmp_path)]) == 0
    assert main(["check", "--state", str(tmp_path / "none.json"), "--store", str(tmp_path)]) == 0


def test_the_state_file_follows_serve_sh_state_dir():
    assert default_state_file({"NER_STATE_DIR": "/srv/ts/torchserve"}) == Path("/srv/ts/served_state.json")
    assert default_state_file({"NER_SERVED_STATE": "/x.json", "NER_STATE_DIR": "/srv/t"}) == Path("/x.json")
    assert default_state_file({}).parts[-2:] == (".cache", "served_state.json")


def test_a_version_is_read_from_torchserve_s_description():
    entry = {
        "modelVersion": "2.0",
        "modelUrl": "ner_model_v2.0.mar",
        "batchSize": 8,
        "maxBatchDelay": 20,
        "minWorkers": 1,
        "maxWorkers": 1,
        "responseTimeout": 120,
    }
    assert version_from_description(entry) == V2


DESCRIPTION = [
    {
        "modelName": "ner_model",
        "modelVersion": "2.0",
        "modelUrl": "ner_model_v2.0.mar",
        "batchSize": 8,
        "maxBatchDelay": 20,
        "minWorkers": 1,
        "maxWorkers": 1,
        "responseTimeout": 120,
        "workers": [{"id": "1", "status": "READY"}],
    }
]


def fake_management(path: str) -> tuple[int, object]:
    """The GETs a recording makes: the model list and ner_model's description (2.0 only, the default)."""
    if path.startswith("/models?") or path == "/models":
        return 200, {"models": [{"modelName": "ner_model", "modelUrl": "ner_model_v2.0.mar"}]}
    if path in ("/models/ner_model", "/models/ner_model/all"):
        return 200, DESCRIPTION
    return 404, {"code": 404, "message": "Model not found"}


@pytest.fixture
def management() -> Iterator[str]:
    with json_server(fake_management) as url:
        yield url


def test_a_change_is_recorded_in_this_servers_state(management, tmp_path):
    state = tmp_path / "served_state.json"
    write_state(state, management, STARTED)
    assert record_state(TorchServeAdmin(management, management, None), state) is None
    assert read_state(state) == (management, UPGRADED)


def test_another_servers_state_is_left_alone(management, tmp_path):
    state = tmp_path / "served_state.json"
    write_state(state, "http://127.0.0.1:8081", STARTED)
    before = state.read_text()
    warning = record_state(TorchServeAdmin(management, management, None), state)
    assert warning is not None and "belongs to the TorchServe at http://127.0.0.1:8081" in warning
    assert state.read_text() == before


def test_without_a_state_file_nothing_is_written(management, tmp_path):
    assert record_state(TorchServeAdmin(management, management, None), tmp_path / "served_state.json") is None
    assert not (tmp_path / "served_state.json").exists()


def test_an_unreadable_state_is_reported_not_a_crash(management, tmp_path):
    state = tmp_path / "served_state.json"
    state.write_text(json.dumps({"schema": 1}))
    warning = record_state(TorchServeAdmin(management, management, None), state)
    assert warning is not None and "a restart would not restore this change" in warning
