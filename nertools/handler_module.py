"""Import handler/ner_handler.py the way a TorchServe worker does: as the top-level module ``ner_handler``.

The handler is not part of an installed package (TorchServe loads it by file name from the archive root, and a
module it loads must define exactly one class); in-process users (the tests, the bench) load it from its file here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HANDLER_FILE = Path(__file__).resolve().parent.parent / "handler" / "ner_handler.py"
MODULE_NAME = "ner_handler"


def load_handler_module() -> ModuleType:
    """The ``ner_handler`` module, loaded once per process from handler/ner_handler.py."""
    loaded = sys.modules.get(MODULE_NAME)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(MODULE_NAME, HANDLER_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the handler from {HANDLER_FILE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module
