"""The hand-written evaluation set and its checker (demo_model/eval_set.py, rules in demo_model/data/EVAL_SET.md).

The committed set must pass; each rule must catch a hand-made bad example, named by its line.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from demo_model import build, corpus, eval_set
from demo_model.eval_set import HandwrittenExample, Located
from demo_model.evaluation import EntityDict, load_eval_set


@pytest.fixture(scope="module")
def training() -> frozenset[str]:
    return eval_set.training_texts()


@pytest.fixture(scope="module")
def committed() -> list[Located]:
    examples, problems = eval_set.read_jsonl()
    assert problems == []
    return examples


def test_the_committed_set_passes_every_rule(training):
    assert eval_set.check(training=training) == []


def test_the_command_line_check_passes_and_counts_the_set(training, capsys):
    assert eval_set.main([], training=lambda: training) == 0
    out = capsys.readouterr().out
    assert out.startswith("eval_handwritten.jsonl: ok, ")
    assert "no_entity" in out


def test_the_development_set_passes_the_same_rules(training, capsys):
    """The set the corpus was tuned on (its errors read), apart from the evaluation set (only its scores read)."""
    assert eval_set.main(["--dev"], training=lambda: training) == 0
    assert capsys.readouterr().out.startswith("dev_handwritten.jsonl: ok, ")
    dev = {eval_set.normalise(e["text"]) for e in eval_set.load_handwritten(eval_set.DEV_JSONL_PATH)}
    assert len(dev) >= eval_set.DEV_MIN_SENTENCES
    shared = dev & {eval_set.normalise(e["text"]) for e in eval_set.load_handwritten()}
    assert not shared, f"{len(shared)} texts of the development set are in the evaluation set"  # texts not shown


def test_the_evaluation_code_reads_the_set_as_the_source_marks_it():
    source = eval_set.parse_source()
    loaded = load_eval_set(eval_set.JSONL_PATH)
    assert len(loaded) == len(source) >= eval_set.MIN_SENTENCES
    assert [(e["text"], e["entities"]) for e in loaded] == [
        (item.example["text"], item.example["entities"]) for item in source
    ]
    talks = next(e for e in loaded if e["text"].startswith("Talks between Serbia"))
    assert [talks["text"][s["start"] : s["end"]] for s in talks["entities"]] == [
        "Serbia",
        "Kosovo",
        "Brussels",
        "EU",
        "Miroslav Lajčák",
    ]


def test_the_set_is_not_the_generators_output(committed, training):
    hp = build.Hyperparameters()
    trained_on = {eval_set.normalise(e.text) for e in corpus.generate_corpus(hp.num_sentences, hp.seed)}
    assert trained_on <= training
    assert not {eval_set.normalise(item.example["text"]) for item in committed} & training


# ----------------------------------------------------------------------------------------------------------
# Each rule against one bad line in an otherwise valid set
# ----------------------------------------------------------------------------------------------------------

Mutation = Callable[[list[Located]], int]  # edits the list in place; returns the index of the bad line


def _find(examples: list[Located], wanted: Callable[[str, EntityDict], bool]) -> tuple[int, EntityDict]:
    """The first example and entity for which wanted(text, entity) holds."""
    for index, item in enumerate(examples):
        for entity in item.example["entities"]:
            if wanted(item.example["text"], entity):
                return index, entity
    raise AssertionError("no example fits the mutation")


def _followed_by(char: str) -> Callable[[str, EntityDict], bool]:
    return lambda text, e: text[e["end"] : e["end"] + 1] == char


def _end_one_short(examples: list[Located]) -> int:
    index, entity = _find(examples, lambda text, e: e["end"] - e["start"] > 2)
    entity["end"] -= 1
    return index


def _start_one_early(examples: list[Located]) -> int:
    index, entity = _find(examples, lambda text, e: text[e["start"] - 1 : e["start"]] == " ")
    entity["start"] -= 1
    return index


def _trailing_space(examples: list[Located]) -> int:
    index, entity = _find(examples, _followed_by(" "))
    entity["end"] += 1
    return index


def _trailing_full_stop(examples: list[Located]) -> int:
    index, entity = _find(examples, lambda text, e: _followed_by(".")(text, e) and e["label"] == "LOC")
    entity["end"] += 1
    return index


def _overlap(examples: list[Located]) -> int:
    index, entity = _find(examples, lambda text, e: " " in text[e["start"] : e["end"]])
    entities = examples[index].example["entities"]
    position = entities.index(entity)
    second_word = EntityDict(
        label="LOC", start=entity["start"] + entity_text(examples[index], entity).index(" ") + 1, end=entity["end"]
    )
    entities.insert(position + 1, second_word)
    return index


def entity_text(item: Located, entity: EntityDict) -> str:
    return item.example["text"][entity["start"] : entity["end"]]


def _bad_label(examples: list[Located]) -> int:
    index, entity = _find(examples, lambda text, e: e["label"] == "PER")
    entity["label"] = "PERSON"
    return index


def _out_of_range(examples: list[Located]) -> int:
    index = next(i for i, item in enumerate(examples) if item.example["entities"])
    examples[index].example["entities"][-1]["end"] = len(examples[index].example["text"]) + 3
    return index


def _unsorted(examples: list[Located]) -> int:
    index = next(i for i, item in enumerate(examples) if len(item.example["entities"]) >= 2)
    examples[index].example["entities"].reverse()
    return index


def _duplicate(examples: list[Located]) -> int:
    """Line 40 repeats line 3 in capitals: case and spacing do not make a new sentence."""
    original = examples[2].example
    examples[39].example.update(text="  ".join(original["text"].upper().split(" ")), entities=[], style="no_entity")
    return 39


def _generated(examples: list[Located]) -> int:
    generated = corpus.generate_corpus(5, build.Hyperparameters().seed)[4]
    entities = [EntityDict(label=s.label, start=s.start, end=s.end) for s in generated.entities]
    examples[7].example.update(text=generated.text, entities=entities)
    return 7


def _unknown_style(examples: list[Located]) -> int:
    examples[11].example["style"] = "poetry"
    return 11


def _text_with_trailing_space(examples: list[Located]) -> int:
    examples[5].example["text"] += " "
    return 5


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_end_one_short, "starts or ends inside a word"),
        (_start_one_early, "leading or trailing whitespace"),
        (_trailing_space, "leading or trailing whitespace"),
        (_trailing_full_stop, "ends with punctuation"),
        (_overlap, "overlap"),
        (_bad_label, "label 'PERSON' is not one of PER, ORG, LOC, MISC"),
        (_out_of_range, "outside the text"),
        (_unsorted, "not sorted"),
        (_duplicate, "duplicate of eval_handwritten.jsonl:3"),
        (_generated, "the training corpus generator produces this sentence"),
        (_unknown_style, "style 'poetry' is not one of"),
        (_text_with_trailing_space, "text is empty or has leading or trailing whitespace"),
    ],
)
def test_each_rule_names_the_bad_line(committed, training, mutate: Mutation, reason: str):
    examples = copy.deepcopy(committed)
    index = mutate(examples)
    problems = eval_set.check_examples(examples, training=training, where="set")
    assert [problem.where for problem in problems] == [f"eval_handwritten.jsonl:{index + 1}"]
    assert reason in problems[0].reason


def test_an_abbreviation_keeps_its_full_stop_and_nothing_else_does(training):
    def example(text: str, surface: str) -> Located:
        start = text.index(surface)
        entity = EntityDict(label="LOC", start=start, end=start + len(surface))
        return Located("x:1", HandwrittenExample(text=text, entities=[entity], style="news"))

    assert eval_set.example_problems(example("U.S. stocks rose.", "U.S.").example) == []
    assert eval_set.example_problems(example("Talks in Oslo. Then", "Oslo.").example) == [
        "LOC 'Oslo.' ends with punctuation (only an abbreviation keeps its full stop)"
    ]
    assert eval_set.example_problems(example('He said "Oslo" twice', '"Oslo').example) == [
        "LOC '\"Oslo' starts with punctuation"
    ]


@pytest.mark.parametrize(
    ("shrink", "reason"),
    [
        (lambda items: [item for i, item in enumerate(items) if i % 4], "at least 300 required"),
        (lambda items: [item for item in items if item.example["style"] != "chat"], "no sentence of style chat"),
        (
            lambda items: (
                [item for item in items if item.example["entities"]][:320]
                + [i for i in items if not i.example["entities"]][-20:]
            ),
            "at least 10% required",
        ),
    ],
)
def test_the_set_as_a_whole_is_checked(committed, training, shrink, reason):
    problems = eval_set.check_examples(shrink(committed), training=training, where="set")
    assert [(problem.where, reason in problem.reason) for problem in problems] == [("set", True)]


# ----------------------------------------------------------------------------------------------------------
# Files: the command line, the source and its agreement with the jsonl
# ----------------------------------------------------------------------------------------------------------


def test_the_command_line_fails_on_a_bad_jsonl_line_and_names_it(tmp_path, committed, training, capsys):
    examples = copy.deepcopy(committed)
    index = _end_one_short(examples)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(eval_set.to_jsonl([item.example for item in examples]), encoding="utf-8")
    assert eval_set.main(["--jsonl", str(bad), "--no-source"], training=lambda: training) == 1
    assert capsys.readouterr().err.startswith(f"bad.jsonl:{index + 1}: ")


def test_a_malformed_jsonl_line_is_named(tmp_path, training):
    lines = eval_set.JSONL_PATH.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[4])
    record["entities"][0]["start"] = "0"
    lines[4] = json.dumps(record) + "\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines), encoding="utf-8")
    problems = eval_set.check(bad, None, training=training)
    assert [(p.where, "malformed record" in p.reason) for p in problems] == [("bad.jsonl:5", True)]


@pytest.fixture
def files_copy(tmp_path) -> tuple[Path, Path]:
    """Copies of the committed source and jsonl, to edit."""
    source = shutil.copy(eval_set.SOURCE_PATH, tmp_path / eval_set.SOURCE_PATH.name)
    jsonl = shutil.copy(eval_set.JSONL_PATH, tmp_path / eval_set.JSONL_PATH.name)
    return Path(source), Path(jsonl)


def test_an_edited_source_disagrees_with_the_jsonl_until_it_is_regenerated(files_copy, training, capsys):
    source, jsonl = files_copy
    text = source.read_text(encoding="utf-8")
    source.write_text(text.replace("in [LOC Warsaw] on Monday", "in [LOC Warsaw] on Sunday"), encoding="utf-8")
    args = ["--jsonl", str(jsonl), "--source", str(source)]
    assert eval_set.main(args, training=lambda: training) == 1
    assert "eval_handwritten.jsonl:1: differs from eval_handwritten.src.txt:" in capsys.readouterr().err
    assert eval_set.main([*args, "--write"], training=lambda: training) == 0
    assert json.loads(jsonl.read_text(encoding="utf-8").splitlines()[0])["text"].endswith(
        "arrived in Warsaw on Sunday for talks on energy prices. He is expected to meet Donald Tusk before flying "
        "on to Vilnius."
    )


def test_regenerating_the_committed_jsonl_changes_nothing(files_copy, training):
    source, jsonl = files_copy
    assert eval_set.main(["--jsonl", str(jsonl), "--source", str(source), "--write"], training=lambda: training) == 0
    assert jsonl.read_bytes() == eval_set.JSONL_PATH.read_bytes()


def test_a_missing_sentence_in_the_jsonl_is_reported(files_copy, training):
    source, jsonl = files_copy
    jsonl.write_text("".join(jsonl.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    problems = eval_set.check(jsonl, source, training=training)
    assert [problem.reason.split(";")[0] for problem in problems] == [
        f"{len(eval_set.parse_source(source)) - 1} lines, the source has {len(eval_set.parse_source(source))} sentences"
    ]


def test_markup_gives_offsets_and_honours_escapes():
    text, entities = eval_set.parse_markup(r"\[update\] [PER Jean-Luc] met [ORG Acme]'s boss\nin [LOC Zürich].")
    assert text == "[update] Jean-Luc met Acme's boss\nin Zürich."
    assert [(e["label"], text[e["start"] : e["end"]]) for e in entities] == [
        ("PER", "Jean-Luc"),
        ("ORG", "Acme"),
        ("LOC", "Zürich"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[PER Angela Merkel met Tim", "is not closed"),
        ("[PERSON Angela] met", "unknown label 'PERSON'"),
        ("[PER Angela [LOC Berlin]]", "an entity inside another entity"),
        ("a note] here", "']' without an open entity"),
        ("[see below]", "unknown label 'see'"),
        ("[x", "'[' must open an entity"),
        (r"a \t tab", r"unknown escape \t"),
    ],
)
def test_bad_markup_is_refused(line, reason):
    with pytest.raises(eval_set.SourceError) as raised:
        eval_set.parse_markup(line)
    assert reason in str(raised.value)


def test_a_bad_source_line_is_named(files_copy, training):
    source, jsonl = files_copy
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines, start=1) if "[LOC Warsaw]" in line)
    lines[number - 1] = lines[number - 1].replace("[LOC Warsaw]", "[LOC Warsaw")
    source.write_text("".join(lines), encoding="utf-8")
    problems = eval_set.check(jsonl, source, training=training)
    assert [str(problem) for problem in problems] == [
        f"eval_handwritten.src.txt:{number}: an entity inside another entity"
    ]


# ----------------------------------------------------------------------------------------------------------
# IOB2 and per-style scores
# ----------------------------------------------------------------------------------------------------------


def test_iob2_tags_words_with_their_offsets():
    text, entities = eval_set.parse_markup("[PER Jean-Luc Mélenchon]'s visit to [LOC Zürich].")
    lines = eval_set.iob2_lines(HandwrittenExample(text=text, entities=entities, style="accented"))
    assert lines == [
        "Jean\t0\t4\tB-PER",
        "-\t4\t5\tI-PER",
        "Luc\t5\t8\tI-PER",
        "Mélenchon\t9\t18\tI-PER",
        "'\t18\t19\tO",
        "s\t19\t20\tO",
        "visit\t21\t26\tO",
        "to\t27\t29\tO",
        "Zürich\t30\t36\tB-LOC",
        ".\t36\t37\tO",
    ]


def test_the_command_line_prints_the_whole_set_as_iob2(training, capsys, committed):
    assert eval_set.main(["--iob2"], training=lambda: training) == 0
    blocks = capsys.readouterr().out.strip("\n").split("\n\n")
    assert len(blocks) == len(committed)
    begins = sum(
        line.endswith("\tB-" + label)
        for block in blocks
        for line in block.splitlines()
        for label in corpus.ENTITY_TYPES
    )
    assert begins == sum(len(item.example["entities"]) for item in committed)
    assert blocks[0].splitlines()[:3] == [
        "# sent_id = 1",
        "# style = news",
        '# text = "Olaf Scholz arrived in Warsaw on Monday for talks on energy prices. He is expected to meet '
        'Donald Tusk before flying on to Vilnius."',
    ]


def test_scores_per_style_come_from_one_prediction_call(committed):
    examples = [item.example for item in committed]
    calls = []

    def gold_for_chat_only(texts: list[str]) -> list[list[EntityDict]]:
        calls.append(len(texts))
        return [e["entities"] if e["style"] == "chat" else [] for e in examples]

    by_style = eval_set.evaluate_by_style(gold_for_chat_only, examples)
    assert calls == [len(examples)]
    assert set(by_style) == set(eval_set.STYLES)
    assert by_style["chat"]["micro"]["f1"] == 1.0
    assert by_style["news"]["micro"]["recall"] == 0.0
    assert by_style["no_entity"]["micro"]["support"] == 0
    assert sum(metrics["num_sentences"] for metrics in by_style.values()) == len(examples)
