#!/usr/bin/env bash
# Show the dev services and the application processes: running/stopped, pid, port, log; for the app
# processes also their metrics port (GET /metrics, docs/operations.md) and what /readyz answers.
# Exit code 0 when every dev service runs, 1 otherwise (app processes and the on-demand Kafka
# cluster, kafka-c1..3, do not count).
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

row() { printf '  %-12s %-9s %-8s %-7s %s\n' "$@"; }

down=0
echo "dev services:"
row NAME STATE PID PORT LOG
for spec in kafka:$KAFKA_PORT redis:$REDIS_PORT clickhouse:$CLICKHOUSE_PORT; do
    name="${spec%%:*}"
    port="${spec##*:}"
    if [[ "$name" == clickhouse && -n "${CLICKHOUSE_URL:-}" ]]; then
        row "$name" external - - "CLICKHOUSE_URL=$CLICKHOUSE_URL"
        continue
    fi
    if pid="$(pid_of "$name")"; then
        state=running
        port_open "$port" || state=starting
    elif port_open "$port"; then
        state=foreign
        pid=-
    else
        state=stopped
        pid=-
        down=1
    fi
    row "$name" "$state" "$pid" "$port" ".devstack/logs/$name.log"
done
# The on-demand Kafka cluster (`make up CLUSTER=1`): shown once it was ever started; not counted in
# the exit code (it is optional).
if [[ -d "$STATE/kafka-cluster" ]]; then
    for n in "${KAFKA_CLUSTER_NODES[@]}"; do
        name="kafka-c$n"
        port="$(kafka_cluster_port "$n")"
        if pid="$(pid_of "$name")"; then
            state=running
            port_open "$port" || state=starting
        else
            state=stopped
            pid=-
        fi
        row "$name" "$state" "$pid" "$port" ".devstack/logs/$name.log"
    done
fi

# ready PORT -> the HTTP status of GET /readyz (at most 2 s), or "-" when nothing answers
ready() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/readyz" 2>/dev/null || true)"
    [[ -n "$code" && "$code" != 000 ]] && echo "$code" || echo -
}
app_row() { printf '  %-12s %-9s %-8s %-7s %-8s %-6s %s\n' "$@"; }

echo "app processes:"
app_row NAME STATE PID PORT METRICS READY LOG
shopt -s nullglob
for spec in ingest:8080 api:8000 streams:- sink:-; do
    name="${spec%%:*}"
    port="${spec##*:}"
    mport="$(metrics_port "$name")"
    if pid="$(pid_of "$name")"; then state=running rdy="$(ready "$mport")"; else state=stopped pid=- rdy=-; fi
    app_row "$name" "$state" "$pid" "$port" "$mport" "$rdy" ".devstack/logs/$name.log"
done
# extra stream workers (LIVELEDGER_STREAM_WORKERS > 1)
for f in "$RUN"/streams-*.pid; do
    name="$(basename "$f" .pid)"
    if pid="$(pid_of "$name")"; then
        mport="$(metrics_port "$name")"
        app_row "$name" running "$pid" - "$mport" "$(ready "$mport")" ".devstack/logs/$name.log"
    fi
done
exit "$down"
