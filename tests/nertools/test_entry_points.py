"""scripts/: every documented command answers --help, and each Python one is a thin entry point into nertools."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

PYTHON_TOOLS = ["archive", "manage", "ready", "prepare_model", "bench"]
SHELL_SCRIPTS = ["serve.sh", "stop.sh", "gateway.sh"]


@pytest.mark.parametrize("tool", PYTHON_TOOLS)
def test_python_entry_points_answer_help(tool):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{tool}.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


@pytest.mark.parametrize("tool", PYTHON_TOOLS)
def test_python_entry_points_only_call_their_nertools_module(tool):
    tree = ast.parse((ROOT / "scripts" / f"{tool}.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree)
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [(f"nertools.{tool}", ["main"])]
    assert len(tree.body) == 3  # docstring, import, raise SystemExit(main())


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_scripts_answer_help(script):
    result = subprocess.run([str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: scripts/" + script)


def test_the_readme_lists_every_entry_point():
    readme = (ROOT / "scripts" / "README.md").read_text(encoding="utf-8")
    scripts = sorted(path.name for path in (ROOT / "scripts").iterdir() if path.suffix in (".py", ".sh"))
    assert [name for name in scripts if f"scripts/{name}" not in readme] == []
