#!/usr/bin/env bash
# Set up, build the demo model if needed, archive, start TorchServe and wait until ner_model can serve.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/serve.sh [--model PATH_OR_HUB_ID] [--quantization none|int8_dynamic] [--fresh] [--help]

  (no option)     serve model_related_data/ as ner_model; builds the demo model there first if it is empty
  --model X       serve X instead: a checkpoint directory (Hugging Face save_pretrained layout, or the classic
                  bert_config.json + bert_for_token_classification_config.json layout) or a hub id such as
                  dslim/bert-base-NER (downloaded once into .cache/models/; needs network access)
  --quantization Q  int8_dynamic: int8 Linear layers on CPU, ~2x the throughput, hand-written-set F1 0.873 against 0.889 (fp32) on the demo model
                  (docs/PERFORMANCE.md); default: the archive config's (none)
  --fresh         forget the served state (versions registered and default set with scripts/manage.py) and
                  serve this model as version 1.0 alone

Creates .venv/ with pinned packages if needed, writes model_store/ner_model.mar, starts TorchServe in the
background with config.properties (inference :8080, management :8081, metrics :8082, all on 127.0.0.1) and
returns once ner_model has a READY worker. Then it serves again what scripts/manage.py recorded in the served
state (.cache/served_state.json): the versions registered, their workers and batching, the default version; the
versions the state does not list (e.g. 1.0 after an upgrade) are unregistered once the default has moved.
Stop everything with scripts/stop.sh.
Environment (defaults in brackets; tests use them to run a second instance on other ports):
  READY_TIMEOUT    seconds to wait for a READY worker [300]
  NER_TS_CONFIG    TorchServe config file [config.properties]
  NER_MODEL_STORE  where the .mar is written and served from [model_store]
  NER_STATE_DIR    TorchServe's TMPDIR: pid file, sockets, unpacked models [.cache/torchserve]
  NER_SERVED_STATE the served state kept across restarts [served_state.json beside NER_STATE_DIR]
  LOG_LOCATION     TorchServe's logs [logs]
  NER_GATEWAY      0 to leave the real-time gateway out [1]; NER_GATEWAY_PORT etc. in docs/GATEWAY.md
USAGE
}

MODEL=""
FRESH=0
ARCHIVE_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --model) [[ $# -ge 2 ]] || { echo "error: --model needs a value" >&2; exit 2; }; MODEL="$2"; shift 2 ;;
    --model=*) MODEL="${1#--model=}"; shift ;;
    --fresh) FRESH=1; shift ;;
    --quantization) [[ $# -ge 2 ]] || { echo "error: --quantization needs a value" >&2; exit 2; }
      ARCHIVE_ARGS+=(--quantization "$2"); shift 2 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup_env.sh"
PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"
TS_CONFIG="${NER_TS_CONFIG:-$ROOT/config.properties}"
MODEL_STORE="${NER_MODEL_STORE:-$ROOT/model_store}"
# TorchServe keeps its pid file, worker sockets and unpacked models under TMPDIR: one per instance.
export TMPDIR="${NER_STATE_DIR:-$ROOT/.cache/torchserve}"
export LOG_LOCATION="${LOG_LOCATION:-$ROOT/logs}"
export METRICS_LOCATION="$LOG_LOCATION"
# The frontend puts worker sockets in java.io.tmpdir (/tmp by default), not TMPDIR: keep them per instance too.
export JAVA_TOOL_OPTIONS="${JAVA_TOOL_OPTIONS:-} -Djava.io.tmpdir=$TMPDIR"
mkdir -p "$TMPDIR" "$LOG_LOCATION" "$MODEL_STORE"
# What scripts/manage.py recorded (nertools/served_state.py); the same default as manage.py's --state-file.
SERVED_STATE="${NER_SERVED_STATE:-$(dirname "$TMPDIR")/served_state.json}"

if [[ -n "$MODEL" ]]; then
  MODEL_DIR="$("$PY" "$ROOT/scripts/prepare_model.py" "$MODEL")"
else
  MODEL_DIR="$ROOT/model_related_data"
  "$PY" "$ROOT/scripts/build_demo_model.py"
fi

# ${a[@]+"${a[@]}"}: an empty array under set -u works on bash < 4.4 too (macOS /bin/bash).
"$PY" "$ROOT/scripts/archive.py" --model-dir "$MODEL_DIR" --version 1.0 --export-path "$MODEL_STORE" \
  ${ARCHIVE_ARGS[@]+"${ARCHIVE_ARGS[@]}"}

if [[ "$FRESH" == "1" ]]; then
  if [[ -f "$SERVED_STATE" ]]; then
    rm -f "$SERVED_STATE"
    echo "--fresh: forgot the served state in $SERVED_STATE"
  fi
else
  # A recorded archive that is gone stops here, before anything is started, with what to do about it.
  "$PY" -m nertools.served_state check --state "$SERVED_STATE" --store "$MODEL_STORE" >/dev/null
fi

if [[ -f "$TMPDIR/.model_server.pid" ]] && kill -0 "$(cat "$TMPDIR/.model_server.pid")" 2>/dev/null; then
  echo "TorchServe is already running; restarting it with the new archive"
  "$ROOT/scripts/stop.sh" >/dev/null
fi

# The one reader of config.properties (nertools/torchserve.py): the last occurrence of a key wins, as in TorchServe.
address() { "$PY" -m nertools.torchserve get "$1" --config "$TS_CONFIG"; }
# Another server on our ports would answer the readiness check in this one's place: refuse to start instead.
"$PY" -m nertools.torchserve check-free --config "$TS_CONFIG"

echo "starting TorchServe (logs in logs/)"
torchserve --start --ncs --ts-config "$TS_CONFIG" --model-store "$MODEL_STORE" --log-config "$ROOT/log4j2.xml" \
  >"$LOG_LOCATION/torchserve_console.log" 2>&1

# ner_model and its document lane (load_models): both READY before anything is restored or served.
if ! "$PY" "$ROOT/scripts/ready.py" --config "$TS_CONFIG" --loaded-models --timeout "${READY_TIMEOUT:-300}" \
    --pid-file "$TMPDIR/.model_server.pid"; then
  echo "error: the models of load_models did not become READY; last lines of the logs in $LOG_LOCATION:" >&2
  for log in torchserve_console.log ts_log.log model_log.log; do
    [[ -f "$LOG_LOCATION/$log" ]] && { echo "--- $log" >&2; tail -n 25 "$LOG_LOCATION/$log" >&2; }
  done
  exit 1
fi

# TorchServe started only load_models (1.0, the default): serve the recorded versions and default again before
# the gateway and the clients come. manage.py takes key_file.json from here, where TorchServe writes it.
if ! "$PY" "$ROOT/scripts/manage.py" --management "$(address management_address)" \
    --inference "$(address inference_address)" --state-file "$SERVED_STATE" \
    restore --store "$MODEL_STORE" --timeout "${READY_TIMEOUT:-300}"; then
  echo "error: TorchServe runs, but the served state in $SERVED_STATE was not restored (the message above says" \
    "why); fix that and run scripts/serve.sh again, or scripts/serve.sh --fresh to serve this model alone" >&2
  exit 1
fi

# The real-time gateway (WebSocket, SSE, demo page; docs/GATEWAY.md) in front of this TorchServe: it follows the
# addresses in $TS_CONFIG and takes the demo page's labels from $MODEL_DIR. NER_GATEWAY=0 leaves it out.
if [[ "${NER_GATEWAY:-1}" != "0" ]]; then
  GATEWAY_STATE="${NER_GATEWAY_STATE_DIR:-$(dirname "$TMPDIR")/gateway}"
  NER_TS_CONFIG="$TS_CONFIG" NER_GATEWAY_MODEL_DIR="${NER_GATEWAY_MODEL_DIR:-$MODEL_DIR}" \
    NER_GATEWAY_STATE_DIR="$GATEWAY_STATE" "$ROOT/scripts/gateway.sh" restart
fi

INFERENCE="$(address inference_address)"
cat <<MSG
ner_model is READY ($MODEL_DIR).
  predictions  $INFERENCE/predictions/ner_model
  documents    $INFERENCE/predictions/ner_model_documents (long texts; the gateway routes them there itself)
  management   $(address management_address)/models/ner_model
  metrics      $(address metrics_address)/metrics

Try:
  curl -s -H 'Content-Type: application/json' -d '{"text": "Angela Merkel met Tim Cook in Berlin."}' $INFERENCE/predictions/ner_model

Stop with ./scripts/stop.sh
MSG
if [[ "${NER_GATEWAY:-1}" != "0" ]]; then
  GATEWAY_URL="$(cat "$GATEWAY_STATE/url" 2>/dev/null || echo "http://127.0.0.1:${NER_GATEWAY_PORT:-8000}")"
  echo "Real-time gateway: ws${GATEWAY_URL#http}/ws/entities (docs/GATEWAY.md)"
  # Where the key is, never the key: this output ends up in terminals' scrollback and CI logs.
  if [[ -f "$GATEWAY_STATE/api_key" ]]; then
    echo "Demo page   $GATEWAY_URL/  (paste the key from ${GATEWAY_STATE#"$ROOT"/}/api_key)"
  else
    echo "Demo page   $GATEWAY_URL/"
  fi
fi
