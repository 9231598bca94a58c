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


# Files of the package that feed the training (a change rebuilds the model), and files that only score it.
TRAINING_INPUTS = [
    "data/names/cities.txt",
    "data/words/days.txt",
    "data/templates.txt",
    "data/prefixes.txt",
    "data/suffixes.txt",
    "data/headlines.txt",
    "data/sports.txt",
    "data/chat.txt",
    "data/names/clubs.txt",
    "data/words/list_headers.txt",
    "corpus.py",
    "inventory.py",
    "evaluation.py",
    "build.py",
]
SCORING_ONLY = [
    "data/eval_sentences.jsonl",
    "data/eval_handwritten.src.txt",
    "data/eval_handwritten.jsonl",
    "data/dev_handwritten.src.txt",
    "data/dev_handwritten.jsonl",
    "data/EVAL_SET.md",
]


@pytest.mark.parametrize(
    ("relative_path", "feeds_training"),
    [*((path, True) for path in TRAINING_INPUTS), *((path, False) for path in SCORING_ONLY)],
)
def test_build_key_changes_when_a_training_input_changes_and_only_then(package_copy, relative_path, feeds_training):
    """An edited training input changes the key; an edited evaluation or development set does not: they score the
    model and never change it, so editing one must not cost a rebuild."""
    hp = build.Hyperparameters()
    before = build.build_key(hp, package_copy)
    path = package_copy / relative_path
    assert path.is_file()
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    assert (build.build_key(hp, package_copy) != before) == feeds_training


def test_build_key_changes_with_the_inventory_libraries(monkeypatch):
    """Faker's and pycountry's data are inputs of the corpus: another version is another model."""
    hp = build.Hyperparameters()
    before = build.build_key(hp)
    monkeypatch.setattr(build.inventory, "library_versions", lambda: "faker 0.0.1; pycountry 0.0.1")
    assert build.build_key(hp) != before


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


def test_batches_take_every_text_once_and_long_documents_a_few_at_a_time():
    import random

    lengths = [random.Random(i).randint(5, 60) for i in range(3000)] + [300, 420, 512, 250] * 10
    batches = build.bucketed_batches(lengths, 32, 50, random.Random(0), max_tokens=2048)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 32 for batch in batches)
    assert all(len(batch) * max(lengths[i] for i in batch) <= 2048 for batch in batches)
    documents = [batch for batch in batches if max(lengths[i] for i in batch) >= 250]
    assert documents and all(len(batch) <= 8 for batch in documents)
    # without a token cap, batches are counted in texts only (the build before long documents)
    uncapped = build.bucketed_batches(lengths, 32, 50, random.Random(0))
    assert sorted(len(batch) for batch in uncapped)[-1] == 32 and len(uncapped) < len(batches)
