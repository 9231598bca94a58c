#!/usr/bin/env bash
# Set up, run the static checks, then every test: unit, handler, parity, demo model, integration, containers.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/test.sh [--fast] [PYTEST_ARGS...]

1. scripts/setup_env.sh: .venv/ with the locked packages and the project (editable).
2. scripts/check.sh: ruff, ruff format --check, mypy, shellcheck.
3. pytest over tests/. Extra arguments go to pytest, e.g. scripts/test.sh tests/nerserve -k windows.

Without --fast it first installs the Debian packages the integration and container tiers drive
(scripts/setup_test_deps.sh: Prometheus, Chromium, podman, buildah, runc, mmdebstrap, catatonit, aardvark-dns;
needs root or sudo) and builds the demo model if model_related_data/ has none (cached; a
few minutes once).
--fast: the tiers that need neither root, the demo model nor podman (-m "not integration and not demo and not
  container"): no sudo, no training, no image builds, a couple of minutes.
Tests start their own TorchServe instances on free ports; a running scripts/serve.sh is left alone.
USAGE
}
FAST=0
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --fast) FAST=1; shift ;;
esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup_env.sh"
"$ROOT/scripts/check.sh"
if [[ $FAST -eq 1 ]]; then
  exec "$ROOT/.venv/bin/python" -m pytest -m "not integration and not demo and not container" "$@"
fi
"$ROOT/scripts/setup_test_deps.sh"
"$ROOT/.venv/bin/python" "$ROOT/scripts/build_demo_model.py"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
