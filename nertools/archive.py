"""Pack a checkpoint directory, model.py and the handler into a TorchServe model archive (.mar).

Only the files serving reads go in: model.py's config, labels and weights files (the one weights file its loader
picks, so a cloned hub repository's tf_model.h5, flax_model.msgpack, onnx/ ... stay out) and the tokenizer's files.
The rest of the checkpoint directory is listed as left out. Those files are loaded once before archiving, so a
broken checkpoint fails here with a message naming the file and field, instead of as a worker that TorchServe
restarts forever.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nertools.paths import CHECKPOINT_DIR, HANDLER_FILE, MODEL_CONFIG, MODEL_FILE, MODEL_STORE, NERSERVE_DIR

# What nerserve.tokenization.load_tokenizer reads: AutoTokenizer takes the tokenizer class from config.json.
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
)

logger = logging.getLogger("archive")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=CHECKPOINT_DIR,
        help="checkpoint directory, Hugging Face or classic layout (default: model_related_data/)",
    )
    parser.add_argument("--name", default="ner_model", help="model name in TorchServe (default: ner_model)")
    parser.add_argument("--version", default="1.0", help="model version recorded in the archive (default: 1.0)")
    parser.add_argument(
        "--export-path", type=Path, default=MODEL_STORE, help="where the .mar goes (default: model_store/)"
    )
    parser.add_argument(
        "--versioned",
        action="store_true",
        help="name the file NAME_vVERSION.mar (to register several versions side by side)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=MODEL_CONFIG,
        help="per-model YAML with the handler's settings (default: handler/model_config.yaml)",
    )
    parser.add_argument(
        "--quantization",
        choices=["none", "int8_dynamic"],
        default=None,
        help="override handler.quantization of the config (int8_dynamic: faster on CPU, see docs/PERFORMANCE.md)",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip loading the checkpoint before archiving")
    parser.add_argument("--zip-store", action="store_true", help="store without compression (faster, bigger)")
    return parser.parse_args(argv)


def checkpoint_files(model_dir: Path) -> tuple[Path, list[Path], list[Path]]:
    """(weights file, the other files serving reads, what else is in model_dir and stays out of the archive)."""
    from model import model_files

    *model_configs, weights = model_files(model_dir)
    wanted = {p.name for p in model_configs} | set(TOKENIZER_FILES)
    extras = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name in wanted)
    left_out = sorted(p for p in model_dir.iterdir() if p != weights and p not in extras)
    return weights, extras, left_out


def validate(model_dir: Path) -> None:
    """Load the model and tokenizer from model_dir as the handler will; a ValueError names what is wrong."""
    from model import BertTokenClassifier
    from nerserve.tokenization import check_vocabulary, load_tokenizer

    model = BertTokenClassifier.from_checkpoint(model_dir)
    check_vocabulary(load_tokenizer(model_dir, model.config.max_position_embeddings), model.config.vocab_size)
    logger.info("checkpoint ok: %d labels (%s)", model.num_labels, ", ".join(model.id2label.values()))


def validate_packed(files: list[Path], scratch: Path) -> None:
    """validate() on links to exactly the files that go into the archive: the checkpoint as a worker will see it."""
    scratch.mkdir(parents=True)
    for path in files:
        (scratch / path.name).symlink_to(path)
    validate(scratch)


def write_config_override(source: Path, target: Path, handler_values: dict[str, Any]) -> None:
    """A copy of the model-config YAML with some ``handler:`` keys replaced."""
    import yaml

    config = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    config.setdefault("handler", {}).update(handler_values)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def run_archiver(arguments: Sequence[str], private_tmp: Path, quiet: bool = False) -> None:
    """torch-model-archiver ``arguments`` (the venv's when it is not on PATH), with ``private_tmp`` (made here, left
    for the caller to remove) as its TMPDIR: it copies the files into tempfile.gettempdir()/<model name>, removing
    what is there, before packing, so two archives of one name would collide (or a user's own /tmp/ner_model go)."""
    archiver = shutil.which("torch-model-archiver") or str(Path(sys.executable).parent / "torch-model-archiver")
    private_tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [archiver, *arguments],
        check=True,
        env={**os.environ, "TMPDIR": str(private_tmp)},
        stdout=subprocess.DEVNULL if quiet else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    model_dir = args.model_dir.resolve()
    if not model_dir.is_dir():
        logger.error("no checkpoint directory at %s", model_dir)
        return 2
    try:
        weights, extras, left_out = checkpoint_files(model_dir)
    except ValueError as err:
        logger.error("cannot archive %s: %s", model_dir, err)
        return 2
    if left_out:
        logger.info(
            "left out (not read when serving): %s", ", ".join(p.name + ("/" if p.is_dir() else "") for p in left_out)
        )
    args.export_path.mkdir(parents=True, exist_ok=True)
    file_name = f"{args.name}_v{args.version}" if args.versioned else args.name
    # torch-model-archiver names the file after --model-name; build under a staging name, then move into place.
    staging = args.export_path / f".staging-{file_name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if not args.no_validate:
            try:
                validate_packed([weights, *extras], staging / "validate" / model_dir.name)
            except ValueError as err:
                logger.error("cannot archive %s: %s", model_dir, err)
                return 2
        # A directory given to --extra-files has its *contents* copied to the archive root; wrap the package in a
        # folder so that it arrives as the package nerserve/ (TorchServe puts the archive root on sys.path).
        package_parent = staging / "src"
        shutil.copytree(
            NERSERVE_DIR, package_parent / NERSERVE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        config = args.config
        if args.quantization is not None:
            config = staging / "model_config.yaml"
            write_config_override(args.config, config, {"quantization": args.quantization})
        command = [
            "--model-name",
            args.name,
            "--version",
            args.version,
            "--model-file",
            str(MODEL_FILE),
            "--serialized-file",
            str(weights),
            "--handler",
            str(HANDLER_FILE),
            "--extra-files",
            ",".join([str(package_parent), *map(str, extras)]),
            "--config-file",
            str(config),
            "--export-path",
            str(staging),
            "--force",
        ]
        if args.zip_store:
            command += ["--archive-format", "zip-store"]
        logger.info(
            "archiving %s (version %s%s) from %s ...",
            args.name,
            args.version,
            f", quantization {args.quantization}" if args.quantization else "",
            model_dir,
        )
        run_archiver(command, staging / "tmp")
        target = args.export_path / f"{file_name}.mar"
        (staging / f"{args.name}.mar").replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote %s (%.1f MB)", target, target.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
