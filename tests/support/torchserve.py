"""Archives for the tests' TorchServes (nertools.local_torchserve), built by the project's own archive script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def build_archive(
    model_dir: Path, export_path: Path, version: str = "1.0", versioned: bool = False, config: Path | None = None
) -> Path:
    """Run the project's own archive script, as a user would."""
    command = [
        sys.executable,
        str(ROOT / "scripts" / "archive.py"),
        "--model-dir",
        str(model_dir),
        "--export-path",
        str(export_path),
        "--version",
        version,
    ]
    if versioned:
        command.append("--versioned")
    if config is not None:
        command += ["--config", str(config)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"scripts/archive.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return export_path / (f"ner_model_v{version}.mar" if versioned else "ner_model.mar")
