"""Where the project's files are, for tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLER_DIR = ROOT / "handler"
DEMO_MODEL_DIR = ROOT / "model_related_data"
