#!/usr/bin/env bash
# Start the application processes in the background (logs .devstack/logs/<name>.log, pid files
# .devstack/run/<name>.pid), each only when its module entry point exists and it is not running:
#   ingest   python -m ingest                  (waits for GET :8080/healthz)
#   api      python -m api                     (waits for GET :8000/healthz)
#   streams  python -m streams worker          (LIVELEDGER_STREAM_WORKERS of them, default 1;
#                                               extra workers are streams-2.. with their own
#                                               Faust web port and data dir; metrics port
#                                               9201 for streams, 9200+N for streams-N)
#   sink     python -m consumers clickhouse    (metrics port 9301)
# Metrics ports (LIVELEDGER_METRICS_PORT, docs/operations.md) are set explicitly here, so that
# `make status` and deploy/prometheus.yml know them; ingest and api serve /metrics on 8080 / 8000.
#
#   devstack/serve.sh               # all of them
#   devstack/serve.sh ingest api    # a subset
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t0="$(now)"

all=(ingest api streams sink)
wanted=("$@")
((${#wanted[@]})) || wanted=("${all[@]}")
workers="${LIVELEDGER_STREAM_WORKERS:-1}"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "LIVELEDGER_STREAM_WORKERS must be a positive integer (got '$workers')"

[[ -x "$PY" ]] || die "no $VENV; run 'make install' first"

module_of() {
    case "$1" in
        ingest) echo ingest ;;
        api) echo api ;;
        streams) echo streams ;;
        sink) echo consumers ;;
        *) die "unknown app process '$1' (one of: ${all[*]})" ;;
    esac
}

started=()
wait_started=()
http_checks=()

launch() { # launch NAME CMD...
    local name="$1"
    shift
    if pid="$(pid_of "$name")"; then
        say "$name already running (pid $pid)"
        return 0
    fi
    start_bg "$name" "$@"
    started+=("$name")
    if [[ "$name" == ingest || "$name" == api ]]; then wait_started+=(--started "$name"); fi
    say "$name started (pid $(pid_of "$name" || echo '?'), log .devstack/logs/$name.log)"
}

for name in "${wanted[@]}"; do
    mod="$(module_of "$name")"
    if [[ ! -f "$mod/__main__.py" ]]; then
        say "$name skipped: $mod/__main__.py does not exist yet"
        continue
    fi
    case "$name" in
        ingest | api)
            launch "$name" "$PY" -m "$mod"
            http_checks+=("$name")
            ;;
        streams)
            launch streams env LIVELEDGER_METRICS_PORT="$(metrics_port streams)" "$PY" -m streams worker
            for ((i = 2; i <= workers; i++)); do
                launch "streams-$i" env LIVELEDGER_METRICS_PORT="$(metrics_port "streams-$i")" \
                    "$PY" -m streams --datadir "$STATE/streams-$i" worker --web-port $((6066 + i - 1))
            done
            ;;
        sink)
            launch sink env LIVELEDGER_METRICS_PORT="$(metrics_port sink)" "$PY" -m consumers clickhouse
            ;;
    esac
done

if ((${#http_checks[@]})); then
    "$PY" -m devstack.wait --timeout "${DEVSTACK_WAIT_TIMEOUT:-60}" "${wait_started[@]}" "${http_checks[@]}" \
        || die "app processes did not come up ($(elapsed "$t0")s)"
fi

# Processes without a health endpoint: make sure they survived their first seconds.
if ((${#started[@]})); then
    sleep 1
    failed=0
    for name in "${started[@]}"; do
        if ! is_running "$name"; then
            echo "[devstack] ERROR: $name exited right after starting" >&2
            tail_log "$name"
            failed=1
        fi
    done
    ((failed == 0)) || exit 1
fi
say "serve: ready in $(elapsed "$t0")s"
