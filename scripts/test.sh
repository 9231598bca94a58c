#!/usr/bin/env bash
# Set up and run every test: unit, in-process handler, parity, and the integration tier (real TorchServe).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/test.sh [PYTEST_ARGS...]

Creates .venv/ if needed, installs the system packages tests need (scripts/setup_test_deps.sh: Prometheus,
Chromium; needs root or sudo), builds the demo model if model_related_data/ has none (cached; ~6 minutes once),
then runs pytest over tests/. Extra arguments go to pytest, e.g. scripts/test.sh -m "not integration".
Tests start their own TorchServe instances on free ports; a running scripts/serve.sh is left alone.
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup_env.sh"
"$ROOT/scripts/setup_test_deps.sh"
"$ROOT/.venv/bin/python" "$ROOT/scripts/build_demo_model.py"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
