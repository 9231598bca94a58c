#!/usr/bin/env bash
# The project's static checks: lint, format, types, shell scripts. scripts/test.sh runs it before the tests.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/check.sh [--fix]

Runs, from .venv/ (scripts/setup_env.sh makes it):
  ruff check             lint (rules and line length in pyproject.toml)
  ruff format --check    formatting
  mypy                   types (strict for handler/nerserve and gateway; files in pyproject.toml)
  shellcheck             every shell script (scripts/*.sh, .ci/run)
--fix applies ruff's safe fixes and formats the code first. Exit status: 0 when every check passes.
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/.venv/bin"
[[ -x "$BIN/ruff" ]] || { echo "error: $BIN/ruff not found; run scripts/setup_env.sh first" >&2; exit 1; }
if [[ "${1:-}" == "--fix" ]]; then
  "$BIN/ruff" check --fix .
  "$BIN/ruff" format .
fi

failed=()
run() {
  local name="$1"
  shift
  echo "== $name"
  "$@" || failed+=("$name")
}
run "ruff check" "$BIN/ruff" check .
run "ruff format" "$BIN/ruff" format --check .
run "mypy" "$BIN/mypy"
mapfile -t shell_scripts < <(git ls-files --cached --others --exclude-standard '*.sh' .ci/run)
run "shellcheck" "$BIN/shellcheck" "${shell_scripts[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "checks failed: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"
