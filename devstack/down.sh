#!/usr/bin/env bash
# Stop the application processes (devstack/stop.sh) and then the dev services, including the
# on-demand Kafka cluster (`make up CLUSTER=1`) whenever it runs. Data stays in .devstack/ (Kafka log
# dirs, Redis AOF, chDB data); `rm -rf .devstack` resets everything.
#
#   devstack/down.sh                  # everything (`make down`)
#   devstack/down.sh kafka-cluster    # only the named services (app processes keep running)
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t0="$(now)"
exec 9>"$RUN/stack.lock"
flock -w 300 9 || die "another devstack/up.sh or down.sh holds $RUN/stack.lock"

services=("$@")
if ((${#services[@]} == 0)); then
    bash "$ROOT/devstack/stop.sh" --quiet
    services=(clickhouse redis kafka-cluster kafka)
fi

# stop_cluster: TERM to every node at once (a node shutting down alone after the others would wait
# for a controller quorum that is gone), then KILL what still runs after 40 s.
stop_cluster() {
    local n pids=() pid
    gone() { ! kill -0 "$1" 2>/dev/null || [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" == "Z" ]]; }
    for n in "${KAFKA_CLUSTER_NODES[@]}"; do
        if pid="$(pid_of "kafka-c$n")"; then
            pids+=("$pid")
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    if ((${#pids[@]} == 0)); then
        say "kafka-cluster was not running"
        return 0
    fi
    for _ in $(seq 1 400); do
        local alive=0
        for pid in "${pids[@]}"; do
            gone "$pid" || alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if ! gone "$pid"; then
            warn "kafka-cluster node (pid $pid) did not stop within 40s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for n in "${KAFKA_CLUSTER_NODES[@]}"; do rm -f "$(pidfile "kafka-c$n")"; done
    say "kafka-cluster stopped (${#pids[@]} node(s))"
}

# Kafka gets longer: a controlled shutdown flushes and closes its logs cleanly.
for name in "${services[@]}"; do
    case "$name" in
        kafka-cluster) stop_cluster; continue ;;
        clickhouse) grace=10 ;;
        redis) grace=15 ;;
        kafka) grace=40 ;;
        *) die "unknown service '$name' (kafka, redis, clickhouse, kafka-cluster)" ;;
    esac
    if stop_one "$name" "$grace"; then
        say "$name stopped"
    else
        say "$name was not running"
    fi
done
say "down in $(elapsed "$t0")s"
