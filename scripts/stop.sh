#!/usr/bin/env bash
# Stop what scripts/serve.sh started.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "Usage: scripts/stop.sh [--help]"
  echo "Stops the real-time gateway and the TorchServe started by scripts/serve.sh, and waits until they are gone"
  echo "(TorchServe's state lives in \$NER_STATE_DIR, default .cache/torchserve/). The served state (versions and"
  echo "default recorded by scripts/manage.py, .cache/served_state.json) is kept: scripts/serve.sh serves it again."
  exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TMPDIR="${NER_STATE_DIR:-$ROOT/.cache/torchserve}"
# The gateway first: its clients get close code 1012 rather than retries against a TorchServe going away.
NER_GATEWAY_STATE_DIR="${NER_GATEWAY_STATE_DIR:-$(dirname "$TMPDIR")/gateway}" "$ROOT/scripts/gateway.sh" stop
PID_FILE="$TMPDIR/.model_server.pid"
if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  # --foreground waits until the frontend and its workers are gone (up to 60 s), so a serve.sh right after this
  # finds the ports free; plain --stop returns while they are still shutting down.
  "$ROOT/.venv/bin/torchserve" --stop --foreground >/dev/null
  echo "TorchServe stopped"
else
  echo "TorchServe is not running"
fi
SERVED_STATE="${NER_SERVED_STATE:-$(dirname "$TMPDIR")/served_state.json}"
if [[ -f "$SERVED_STATE" ]]; then
  echo "served state kept in $SERVED_STATE: scripts/serve.sh serves it again (--fresh forgets it)"
fi
