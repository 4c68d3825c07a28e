#!/usr/bin/env bash
# Start the dev services on 127.0.0.1, each only when it is not already running:
#   kafka       Kafka 4.x KRaft single node (broker+controller), :9092 (controller :9093)
#   redis       Debian's redis-server with a generated config (AOF, everysec), :6379
#   clickhouse  the chDB ClickHouse-over-HTTP dev server, :8123; when CLICKHOUSE_URL is set that
#               server is used instead and only checked
#   kafka-cluster  only on demand (CLUSTER=1, or named): a 3-node KRaft cluster beside the single
#               broker, nodes broker+controller on :19092-19094 (controllers :19192-19194), RF 3 /
#               min.insync.replicas 2; writes .devstack/kafka-cluster/bootstrap and cluster.env
#               (docs/operations.md "Kafka cluster")
# Returns once every service answered a real client (devstack/wait.py); on failure names the
# service, prints the tail of its log and exits non-zero.
#
#   devstack/up.sh                 # all three
#   devstack/up.sh kafka redis     # a subset
#   CLUSTER=1 devstack/up.sh       # all three and the Kafka cluster (`make up CLUSTER=1`)
#   devstack/up.sh kafka-cluster   # the cluster alone
# Env: KAFKA_HEAP_OPTS (default "-Xms256m -Xmx1g"), KAFKA_CLUSTER_HEAP_OPTS (per cluster node,
# default "-Xms128m -Xmx512m"), DEVSTACK_WAIT_TIMEOUT (default 120 s).
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t0="$(now)"

services=("$@")
((${#services[@]})) || services=(kafka redis clickhouse)
case "${CLUSTER:-0}" in
    "" | 0 | false | no) ;;
    *) [[ " ${services[*]} " == *" kafka-cluster "* ]] || services+=(kafka-cluster) ;;
esac
started=()
cluster=0

# One `make up`/`make down` at a time (several developers or terminals may run it at once).
exec 9>"$RUN/stack.lock"
flock -w 300 9 || die "another devstack/up.sh or down.sh holds $RUN/stack.lock"

[[ -x "$PY" ]] || die "no $VENV; run 'make install' (devstack/install.sh) first"

# ---------------------------------------------------------------- Kafka
start_kafka() {
    local kdir="$STATE/kafka"
    local cp_file="$kdir/classpath.txt" props="$kdir/server.properties" data="$kdir/data"
    if pid="$(pid_of kafka)"; then
        say "kafka      already running (pid $pid)"
        return 0
    fi
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
        warn "port $KAFKA_PORT/$KAFKA_CONTROLLER_PORT is taken by a process the dev stack did not start; checking it as Kafka"
        return 0
    fi
    [[ -s "$cp_file" ]] || die "no Kafka classpath ($cp_file); run 'make install' first"
    command -v java >/dev/null || die "java not found; run 'make install' first"
    mkdir -p "$data"
    sed "s#@DATA_DIR@#$data#" devstack/kafka/server.properties.in >"$props"
    # An argument file keeps the ~50-jar classpath out of `ps` output.
    printf -- '-cp "%s"\n' "$(cat "$cp_file")" >"$kdir/jvm.args"
    local log4j="-Dlog4j2.configurationFile=$ROOT/devstack/kafka/log4j2.properties"
    if [[ ! -f "$data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$("$PY" -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
        say "kafka      formatting storage (cluster id $cluster_id)"
        if ! java "@$kdir/jvm.args" "$log4j" kafka.tools.StorageTool format --standalone \
            --cluster-id="$cluster_id" -c "$props" >>"$(logfile kafka)" 2>&1; then
            echo "[devstack] ERROR: kafka storage format failed" >&2
            tail_log kafka
            exit 1
        fi
    fi
    local heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
    # shellcheck disable=SC2086
    start_bg kafka java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "$log4j" \
        "@$kdir/jvm.args" kafka.Kafka "$props"
    started+=(--started kafka)
    say "kafka      started (pid $(pid_of kafka || echo '?'), log .devstack/logs/kafka.log)"
}

# ---------------------------------------------------------------- Kafka cluster (on demand)
start_kafka_cluster() {
    local base="$STATE/kafka-cluster" cp_file="$STATE/kafka/classpath.txt"
    local log4j="-Dlog4j2.configurationFile=$ROOT/devstack/kafka/log4j2.properties"
    local heap="${KAFKA_CLUSTER_HEAP_OPTS:--Xms128m -Xmx512m}"
    [[ -s "$cp_file" ]] || die "no Kafka classpath ($cp_file); run 'make install' first"
    command -v java >/dev/null || die "java not found; run 'make install' first"
    mkdir -p "$base"
    # One cluster id for the three nodes' storage, kept across restarts.
    [[ -s "$base/cluster.id" ]] || "$PY" -c 'import base64, uuid
print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' >"$base/cluster.id"
    local cluster_id n name dir port cport todo=() formats=()
    cluster_id="$(cat "$base/cluster.id")"
    for n in "${KAFKA_CLUSTER_NODES[@]}"; do
        name="kafka-c$n" dir="$base/$n"
        port="$(kafka_cluster_port "$n")" cport="$(kafka_cluster_controller_port "$n")"
        if pid="$(pid_of "$name")"; then
            say "$name    already running (pid $pid)"
            continue
        fi
        if port_open "$port" || port_open "$cport"; then
            die "port $port/$cport of $name is taken by a process the dev stack did not start"
        fi
        mkdir -p "$dir/data"
        "$PY" -m devstack.kafka_cluster render --node "$n" --data "$dir/data" >"$dir/server.properties"
        printf -- '-cp "%s"\n' "$(cat "$cp_file")" >"$dir/jvm.args"
        todo+=("$n")
        if [[ ! -f "$dir/data/meta.properties" ]]; then
            # the three formats at once; static quorum (controller.quorum.voters): no --standalone
            java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "@$dir/jvm.args" "$log4j" \
                kafka.tools.StorageTool format --cluster-id="$cluster_id" \
                -c "$dir/server.properties" >>"$(logfile "$name")" 2>&1 9>&- &
            formats+=("$n:$!")
        fi
    done
    local f
    for f in "${formats[@]}"; do
        if ! wait "${f#*:}"; then
            echo "[devstack] ERROR: kafka-c${f%%:*} storage format failed" >&2
            tail_log "kafka-c${f%%:*}"
            exit 1
        fi
    done
    for n in "${todo[@]}"; do
        name="kafka-c$n" dir="$base/$n"
        # shellcheck disable=SC2086
        start_bg "$name" java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "$log4j" \
            "@$dir/jvm.args" kafka.Kafka "$dir/server.properties"
        say "$name    started (pid $(pid_of "$name" || echo '?'), :$(kafka_cluster_port "$n"), log .devstack/logs/$name.log)"
    done
    echo "$KAFKA_CLUSTER_BOOTSTRAP" >"$base/bootstrap"
    cat >"$base/cluster.env" <<EOF
# Generated by devstack/up.sh: the application's settings for the dev Kafka cluster.
#   set -a; source .devstack/kafka-cluster/cluster.env; set +a; make serve
LIVELEDGER_KAFKA_BOOTSTRAP=$KAFKA_CLUSTER_BOOTSTRAP
LIVELEDGER_KAFKA_REPLICATION_FACTOR=3
LIVELEDGER_KAFKA_MIN_INSYNC_REPLICAS=2
EOF
    cluster=1
}

# ---------------------------------------------------------------- Redis
start_redis() {
    local rdir="$STATE/redis"
    if pid="$(pid_of redis)"; then
        say "redis      already running (pid $pid)"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        warn "port $REDIS_PORT is taken by a process the dev stack did not start; checking it as Redis"
        return 0
    fi
    command -v redis-server >/dev/null || die "redis-server not found; run 'make install' first"
    mkdir -p "$rdir"
    cat >"$rdir/redis.conf" <<EOF
# Generated by devstack/up.sh -- edit the script, not this file.
port $REDIS_PORT
bind 127.0.0.1
protected-mode yes
daemonize no
logfile ""
dir $rdir
appendonly yes
appendfsync everysec
save 300 100
maxmemory-policy noeviction
EOF
    start_bg redis redis-server "$rdir/redis.conf"
    started+=(--started redis)
    say "redis      started (pid $(pid_of redis || echo '?'), log .devstack/logs/redis.log)"
}

# ---------------------------------------------------------------- ClickHouse
start_clickhouse() {
    if [[ -n "${CLICKHOUSE_URL:-}" ]]; then
        say "clickhouse CLICKHOUSE_URL is set: using that server, not starting the dev server"
        return 0
    fi
    if pid="$(pid_of clickhouse)"; then
        say "clickhouse already running (pid $pid)"
        return 0
    fi
    if port_open "$CLICKHOUSE_PORT"; then
        warn "port $CLICKHOUSE_PORT is taken by a process the dev stack did not start; checking it as ClickHouse"
        return 0
    fi
    [[ -f devstack/chserver.py || -f devstack/chserver/__main__.py ]] \
        || die "devstack/chserver is missing: cannot start the ClickHouse dev server"
    mkdir -p "$STATE/clickhouse"
    start_bg clickhouse "$PY" -m devstack.chserver --host 127.0.0.1 --port "$CLICKHOUSE_PORT" \
        --data "$STATE/clickhouse"
    started+=(--started clickhouse)
    say "clickhouse started (pid $(pid_of clickhouse || echo '?'), log .devstack/logs/clickhouse.log)"
}

for s in "${services[@]}"; do
    case "$s" in
        kafka) start_kafka ;;
        redis) start_redis ;;
        clickhouse) start_clickhouse ;;
        kafka-cluster) start_kafka_cluster ;;
        *) die "unknown service '$s' (kafka, redis, clickhouse, kafka-cluster)" ;;
    esac
done

single=()
for s in "${services[@]}"; do [[ "$s" == kafka-cluster ]] || single+=("$s"); done
if ((${#single[@]})) && ! "$PY" -m devstack.wait --timeout "${DEVSTACK_WAIT_TIMEOUT:-120}" "${started[@]}" "${single[@]}"; then
    die "dev stack did not come up ($(elapsed "$t0")s); see the log above"
fi
if ((cluster)) && ! "$PY" -m devstack.kafka_cluster wait --bootstrap "$KAFKA_CLUSTER_BOOTSTRAP" \
    --timeout "${DEVSTACK_WAIT_TIMEOUT:-120}"; then
    for n in "${KAFKA_CLUSTER_NODES[@]}"; do tail_log "kafka-c$n" 15; done
    die "kafka-cluster did not come up ($(elapsed "$t0")s); see the logs above"
fi
if ((cluster)); then
    say "kafka-cluster: LIVELEDGER_KAFKA_BOOTSTRAP=$KAFKA_CLUSTER_BOOTSTRAP (all its settings: .devstack/kafka-cluster/cluster.env)"
fi
say "up: ${services[*]} ready in $(elapsed "$t0")s"
