#!/usr/bin/env bash
# Regenerate requirements.lock (every transitive package version, with hashes) from requirements.txt.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/lock.sh

Resolves requirements.txt with pip (this host's pip configuration: its indexes, find-links and constraints) and
writes requirements.lock with every package's version and sha256. Run it after changing a pin in
requirements.txt and commit both files; scripts/setup_env.sh installs the lock with --require-hashes --no-deps.
The lock is for the platform and Python it was made on (the first lines say which).
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -x .venv/bin/python ]] || { echo "error: .venv/ is missing; run scripts/setup_env.sh first" >&2; exit 1; }
exec .venv/bin/python -m nertools.lock --requirements requirements.txt --output requirements.lock
