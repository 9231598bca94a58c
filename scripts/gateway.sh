#!/usr/bin/env bash
# Start, stop or check the real-time gateway (python -m gateway) in the background.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/gateway.sh start|stop|restart|status [--help]

  start    validate the configuration, start the gateway in the background, return once GET /health answers
  stop     stop it (SIGTERM: REST requests get up to 10 s to finish; SSE streams end and WebSockets are closed
           with code 1012 at once, their replies still in flight lost, for clients to resend; SIGKILL after 15 s)
  restart  stop (if running), then start: picks up a changed configuration or model directory
  status   whether it runs, its URL, and whether TorchServe's model is ready (exit 0 running, 3 not running)

The gateway (docs/GATEWAY.md) puts WebSocket /ws/entities, Server-Sent Events /v1/stream, REST /v1/entities and
a demo page at / in front of TorchServe. It is configured by NER_GATEWAY_* variables (or a dotenv file named by
NER_GATEWAY_CONFIG_FILE); it listens on 127.0.0.1:8000 by default. Unless NER_GATEWAY_CONFIG_FILE is set, this
script adds these defaults to the environment:
  * NER_GATEWAY_INFERENCE_URL / _MANAGEMENT_URL from inference_address / management_address in $NER_TS_CONFIG
    (default config.properties), so the gateway follows the TorchServe that scripts/serve.sh started;
  * NER_GATEWAY_MODEL_DIR=model_related_data when it holds a checkpoint (the demo page's label legend);
  * an API key, unless NER_GATEWAY_API_KEYS or NER_GATEWAY_API_KEYS_FILE is set or NER_GATEWAY_AUTH_DISABLED=1:
    a random key is created once in $NER_GATEWAY_STATE_DIR/api_key (mode 600) and used. Clients send it as
      curl -H "Authorization: Bearer $(cat .cache/gateway/api_key)" ...
    With NER_GATEWAY_AUTH_DISABLED=1, start prints a WARNING on stderr: anyone who can reach the port can use it.
Environment (defaults in brackets):
  NER_GATEWAY_STATE_DIR      pid file, URL and local API key [.cache/gateway]
  NER_GATEWAY_LOG_DIR        where gateway.log is written [$LOG_LOCATION, else logs]
  NER_GATEWAY_START_TIMEOUT  seconds to wait for /health [30]
USAGE
}

COMMAND="${1:-}"
case "$COMMAND" in
  -h|--help) usage; exit 0 ;;
  start|stop|restart|status) ;;
  "") echo "error: a command is needed: start, stop, restart or status (see --help)" >&2; exit 2 ;;
  *) echo "error: unknown command $COMMAND (see --help)" >&2; exit 2 ;;
esac
[[ $# -le 1 ]] || { echo "error: unexpected argument $2 (see --help)" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
STATE_DIR="${NER_GATEWAY_STATE_DIR:-$ROOT/.cache/gateway}"
LOG_DIR="${NER_GATEWAY_LOG_DIR:-${LOG_LOCATION:-$ROOT/logs}}"
PID_FILE="$STATE_DIR/gateway.pid"
URL_FILE="$STATE_DIR/url"
KEY_FILE="$STATE_DIR/api_key"
LOG_FILE="$LOG_DIR/gateway.log"

# The pid in the pid file, if that process is alive and is a gateway (a reused pid is not ours to signal).
gateway_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  ps -o args= -p "$pid" 2>/dev/null | grep -q -- "-m gateway" || return 1
  echo "$pid"
}

is_true() { [[ "$(echo "${1:-}" | tr '[:upper:]' '[:lower:]')" =~ ^(1|true|t|yes|y|on)$ ]]; }

# An address from TorchServe's config.properties, read by the project's one reader of that file
# (nertools/torchserve.py); TorchServe's default, as the gateway's, when the file does not set it.
ts_address() { "$PY" -m nertools.torchserve get "$2" --config "$1"; }

add_defaults() {
  [[ -z "${NER_GATEWAY_CONFIG_FILE:-}" ]] || return 0  # the file decides; environment would override it
  local ts_config="${NER_TS_CONFIG:-$ROOT/config.properties}" address
  if [[ -f "$ts_config" ]]; then
    address="$(ts_address "$ts_config" inference_address)"
    [[ -n "${NER_GATEWAY_INFERENCE_URL:-}" || -z "$address" ]] || export NER_GATEWAY_INFERENCE_URL="$address"
    address="$(ts_address "$ts_config" management_address)"
    [[ -n "${NER_GATEWAY_MANAGEMENT_URL:-}" || -z "$address" ]] || export NER_GATEWAY_MANAGEMENT_URL="$address"
  fi
  if [[ -z "${NER_GATEWAY_MODEL_DIR:-}" && -z "${NER_GATEWAY_LABELS:-}" ]] \
      && "$PY" -m nertools.gatewayctl checkpoint "$ROOT/model_related_data"; then
    export NER_GATEWAY_MODEL_DIR="$ROOT/model_related_data"
  fi
  if [[ -z "${NER_GATEWAY_API_KEYS:-}" && -z "${NER_GATEWAY_API_KEYS_FILE:-}" ]] \
      && ! is_true "${NER_GATEWAY_AUTH_DISABLED:-}"; then
    "$PY" -m nertools.gatewayctl create-key "$KEY_FILE"  # once: an existing key is kept
    export NER_GATEWAY_API_KEYS_FILE="$KEY_FILE"
  fi
}

healthy() { "$PY" -m nertools.gatewayctl health "$1"; }

start() {
  local pid url
  if pid="$(gateway_pid)"; then
    echo "the gateway is already running (pid $pid) at $(cat "$URL_FILE" 2>/dev/null)"
    return 0
  fi
  [[ -x "$PY" ]] || { echo "error: $PY not found; run scripts/setup_env.sh first" >&2; exit 1; }
  mkdir -p "$STATE_DIR" "$LOG_DIR"
  add_defaults
  # Validate first, in the foreground: a bad configuration is reported here, not in a log file.
  url="$("$PY" -m gateway --check)" || exit 2
  echo "$url" >"$URL_FILE"
  # setsid: its own session, so a Ctrl-C in this terminal does not reach it; it outlives this script.
  setsid "$PY" -m gateway >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + ${NER_GATEWAY_START_TIMEOUT:-30}))
  until healthy "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "error: the gateway exited during start-up; last lines of $LOG_FILE:" >&2
      tail -n 20 "$LOG_FILE" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "error: the gateway did not answer $url/health within ${NER_GATEWAY_START_TIMEOUT:-30} s; see $LOG_FILE" >&2
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 0.3
  done
  local ws_url="ws${url#http}"
  echo "gateway is up at $url (pid $pid, log $LOG_FILE)"
  echo "  demo page   $url/"
  echo "  websocket   $ws_url/ws/entities"
  echo "  streaming   $url/v1/stream"
  # With authentication off, --check above printed the WARNING (stderr) and no key is needed.
  if [[ "${NER_GATEWAY_API_KEYS_FILE:-}" == "$KEY_FILE" ]] && ! is_true "${NER_GATEWAY_AUTH_DISABLED:-}"; then
    echo "  API key     in $KEY_FILE (Authorization: Bearer <key>; paste it into the demo page)"
  fi
}

stop() {
  local pid
  if ! pid="$(gateway_pid)"; then
    rm -f "$PID_FILE"
    echo "the gateway is not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "the gateway did not stop within 15 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "gateway stopped"
}

status() {
  local pid url
  if ! pid="$(gateway_pid)"; then
    echo "the gateway is not running"
    return 3
  fi
  url="$(cat "$URL_FILE" 2>/dev/null)"
  echo "the gateway is running (pid $pid) at $url"
  if healthy "$url"; then echo "  /health: ok"; else echo "  /health: no answer"; fi
  echo "  $("$PY" -m nertools.gatewayctl ready "$url")"
}

case "$COMMAND" in
  start) start ;;
  stop) stop ;;
  restart) if gateway_pid >/dev/null; then stop; fi; start ;;
  status) status ;;
esac
