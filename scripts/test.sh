#!/usr/bin/env bash
# Set up and run every test: unit, in-process handler, parity, and the integration tier (real TorchServe).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/test.sh [PYTEST_ARGS...]

Creates .venv/ if needed, installs the system packages the integration tier needs (scripts/setup_test_deps.sh:
Prometheus, Chromium; needs root or sudo; skipped with -m "not integration"), builds the demo model if
model_related_data/ has none (cached; a few minutes once), then runs pytest over tests/. Extra arguments go to pytest, e.g. scripts/test.sh -m "not integration".
Tests start their own TorchServe instances on free ports; a running scripts/serve.sh is left alone.
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup_env.sh"
# Prometheus and Chromium (Debian packages, root or sudo) serve only the integration tier: a run that deselects
# it (-m "not integration") needs neither, e.g. on a laptop without root.
case " $* " in
  *"not integration"*) echo "integration tier deselected: skipping scripts/setup_test_deps.sh" ;;
  *) "$ROOT/scripts/setup_test_deps.sh" ;;
esac
"$ROOT/.venv/bin/python" "$ROOT/scripts/build_demo_model.py"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
