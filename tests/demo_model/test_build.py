"""Unit tests for demo_model.build without training: the build key and the decision to skip a build."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from demo_model import build


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """A copy of the demo_model package's build inputs, to edit without touching the real files."""
    source = Path(build.__file__).resolve().parent
    copy = tmp_path / "demo_model"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_build_key_does_not_depend_on_where_the_project_lies(package_copy):
    hp = build.Hyperparameters()
    assert build.build_key(hp, package_copy) == build.build_key(hp)


@pytest.mark.parametrize(
    "relative_path",
    [
        "data/names/cities.txt",
        "data/words/days.txt",
        "data/templates.txt",
        "data/prefixes.txt",
        "data/suffixes.txt",
        "data/eval_sentences.jsonl",
        "corpus.py",
        "evaluation.py",
        "build.py",
    ],
)
def test_build_key_changes_when_an_input_file_changes(package_copy, relative_path):
    hp = build.Hyperparameters()
    before = build.build_key(hp, package_copy)
    path = package_copy / relative_path
    assert path.is_file()
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    assert build.build_key(hp, package_copy) != before


def test_build_key_changes_when_a_data_file_is_added_or_renamed(package_copy):
    hp = build.Hyperparameters()
    before = build.build_key(hp, package_copy)
    cities = package_copy / "data" / "names" / "cities.txt"
    renamed = cities.rename(cities.with_name("towns.txt"))
    after_rename = build.build_key(hp, package_copy)
    (renamed.parent / "villages.txt").write_text("Kavorburg\n", encoding="utf-8")
    assert len({before, after_rename, build.build_key(hp, package_copy)}) == 3


def test_build_key_changes_with_the_hyperparameters():
    hp = build.Hyperparameters()
    assert build.build_key(dataclasses.replace(hp, seed=hp.seed + 1)) != build.build_key(hp)


@pytest.fixture
def offline(monkeypatch):
    """main() sets HF_HUB_OFFLINE for the process; set through monkeypatch, it is restored after the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _fake_checkpoint(output: Path, metrics: dict | None) -> None:
    output.mkdir()
    (output / "config.json").write_text("{}", encoding="utf-8")
    if metrics is not None:
        (output / build.METRICS_FILE).write_text(json.dumps(metrics), encoding="utf-8")


def test_an_up_to_date_checkpoint_is_not_rebuilt(tmp_path, capsys, offline):
    output = tmp_path / "model"
    _fake_checkpoint(output, {"build_key": build.build_key(build.Hyperparameters())})
    assert build.main(["--output", str(output)]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert sorted(path.name for path in output.iterdir()) == ["config.json", build.METRICS_FILE]


def test_a_checkpoint_this_script_did_not_build_is_left_alone(tmp_path, capsys, offline):
    output = tmp_path / "model"
    _fake_checkpoint(output, None)
    assert build.main(["--output", str(output)]) == 0
    assert "not built by this script; left untouched" in capsys.readouterr().out
    assert [path.name for path in output.iterdir()] == ["config.json"]
