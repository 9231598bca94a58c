"""Where the project's files are, for the tools: they read handler/, model.py and config.properties from the
checkout (nertools is installed editable, so this module sits in the checkout's nertools/ folder)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLER_DIR = ROOT / "handler"
HANDLER_FILE = HANDLER_DIR / "ner_handler.py"
NERSERVE_DIR = HANDLER_DIR / "nerserve"
MODEL_FILE = ROOT / "model.py"
MODEL_CONFIG = HANDLER_DIR / "model_config.yaml"
TS_CONFIG = ROOT / "config.properties"
CHECKPOINT_DIR = ROOT / "model_related_data"
MODEL_STORE = ROOT / "model_store"
