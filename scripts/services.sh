#!/usr/bin/env bash
# Background services for the Prefect UI: a server on 127.0.0.1 and the deployments served to it.
#   scripts/services.sh server | serve | stop | status
# Each runs in its own process group (set -m), recorded in $RUN_DIR/<name>.pid, so `stop` can
# SIGTERM the whole group (prefect spawns children) and escalate to SIGKILL if it lingers.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
RUN_DIR=${RUN_DIR:-.run}
HOST=127.0.0.1
PORT=${PREFECT_PORT:-4200}
API="http://$HOST:$PORT/api"
WAIT_SECONDS=${WAIT_SECONDS:-120}
mkdir -p "$RUN_DIR"

# Alive = any process left in the group (the leader may be gone while its children still run).
running() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 -- "-$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start() {  # name, command...
  local name=$1; shift
  if running "$name"; then echo "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return 0; fi
  set -m
  nohup "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  set +m
  echo "$name started (pid $!, log $RUN_DIR/$name.log)"
}

healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -sf --noproxy '*' -m 2 "$API/health" >/dev/null 2>&1
  else
    "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      "$API/health" >/dev/null 2>&1
  fi
}

stop_one() {
  local name=$1 pid
  running "$name" || { rm -f "$RUN_DIR/$name.pid"; return 0; }
  pid=$(cat "$RUN_DIR/$name.pid")
  # Signal the whole process group (set -m made the job its leader), never a bare pid that may
  # have been reused by an unrelated process.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 -- "-$pid" 2>/dev/null; then
    echo "$name did not stop on SIGTERM within 10 s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$name.pid"
  echo "$name stopped"
}

case "${1:-}" in
  server)
    # The UI asks the API at PREFECT_UI_API_URL; without it, at the default port, not ours.
    # Offline by default: no telemetry calls from the server (set the variable to true to allow).
    PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false} \
    PREFECT_UI_API_URL="$API" start server "$BIN/prefect" server start --host "$HOST" --port "$PORT"
    for _ in $(seq 1 "$WAIT_SECONDS"); do
      if healthy; then echo "Prefect server ready: http://$HOST:$PORT (API $API)"; exit 0; fi
      running server || { echo "server exited; see $RUN_DIR/server.log" >&2; tail -20 "$RUN_DIR/server.log" >&2; exit 1; }
      sleep 1
    done
    echo "server not healthy after ${WAIT_SECONDS}s; see $RUN_DIR/server.log" >&2; exit 1 ;;
  serve)
    healthy || { echo "no Prefect server at $API: run make server first" >&2; exit 1; }
    PREFECT_API_URL="$API" start serve "$BIN/python" -m deployments.serve
    sleep 3
    running serve || { echo "serve exited; see $RUN_DIR/serve.log" >&2; tail -20 "$RUN_DIR/serve.log" >&2; exit 1; } ;;
  stop)  # clients first, then the server they talk to
    stop_one serve
    stop_one server ;;
  status)
    for name in server serve; do
      if running "$name"; then echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
    healthy && echo "API: $API healthy" || echo "API: $API not answering" ;;
  *) echo "usage: $0 server|serve|stop|status" >&2; exit 2 ;;
esac
