"""Resolve --model PATH_OR_HUB_ID to a local checkpoint directory the server can archive, and print its path.

A local directory (Hugging Face save_pretrained layout or the classic layout) is used as it is. Anything else is
taken as a Hugging Face hub id: it is downloaded with from_pretrained (needs network access, or a filled
HF_HOME cache) and saved with save_pretrained under .cache/models/.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from nertools.paths import ROOT

CACHE = ROOT / ".cache" / "models"

logger = logging.getLogger("prepare_model")


def resolve(model: str, cache: Path = CACHE) -> Path:
    """The checkpoint directory for ``model``; ValueError when it is neither a directory nor a loadable hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")):
        raise ValueError(f"{model}: not a checkpoint directory")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model):
        raise ValueError(f"{model}: neither a directory nor a Hugging Face hub id (owner/name)")
    target = cache / model.replace("/", "--")
    if (target / "config.json").is_file():
        logger.info("using cached download %s", target)
        return target
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    logger.info("downloading %s from the Hugging Face hub ...", model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        hub_model = AutoModelForTokenClassification.from_pretrained(model)
    except OSError as err:
        raise ValueError(f"{model}: cannot load from the hub ({err})") from err
    target.mkdir(parents=True, exist_ok=True)
    hub_model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="checkpoint directory or Hugging Face hub id (e.g. dslim/bert-base-NER)")
    args = parser.parse_args(argv)
    try:
        print(resolve(args.model))
    except ValueError as err:
        logger.error("error: %s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
