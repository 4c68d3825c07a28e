# shellcheck shell=bash
# Shared helpers for the dev-stack scripts (install/up/down/status/serve/stop). Sourced, not run.
#
# Layout of the git-ignored state directory:
#   .devstack/logs/<name>.log   stdout+stderr of every background process
#   .devstack/run/<name>.pid    its pid (a stale file -- dead pid or reused pid -- is ignored)
#   .devstack/kafka/            classpath.txt (Maven), server.properties, data/ (KRaft log dirs)
#   .devstack/redis/            redis.conf, appendonly files
#   .devstack/clickhouse/       chDB data of the ClickHouse dev server
#   .devstack/kafka-cluster/    `make up CLUSTER=1`: cluster.id, bootstrap (the client list),
#                               cluster.env (the app's settings for it), <N>/ per node (1..3):
#                               server.properties, jvm.args, data/

# shellcheck disable=SC2034  # constants used by the scripts that source this file
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.devstack"
LOGS="$STATE/logs"
RUN="$STATE/run"
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PY="$VENV/bin/python"

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
REDIS_PORT=6379
CLICKHOUSE_PORT=8123
# The 3-node KRaft cluster (`make up CLUSTER=1`, devstack/kafka_cluster.py): node N (1..3) serves
# clients on 19091+N and its controller on 19191+N; pid/log name kafka-cN.
KAFKA_CLUSTER_NODES=(1 2 3)
KAFKA_CLUSTER_BOOTSTRAP="127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
kafka_cluster_port() { echo $((19091 + $1)); }
kafka_cluster_controller_port() { echo $((19191 + $1)); }

mkdir -p "$LOGS" "$RUN"

say() { printf '[devstack] %s\n' "$*"; }
warn() { printf '[devstack] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[devstack] ERROR: %s\n' "$*" >&2
    exit 1
}

now() { date +%s.%N; }
# elapsed START -> seconds with one decimal since START (from `now`)
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# The string that must appear in a live process's command line for its pid file to count.
# Guards against stale pid files whose pid the kernel has since given to another process.
signature() {
    case "$1" in
        kafka) echo "kafka.Kafka" ;;
        kafka-c*) echo "kafka.Kafka $STATE/kafka-cluster/${1#kafka-c}/server.properties" ;;
        redis) echo "redis-server" ;;
        clickhouse) echo "devstack.chserver" ;;
        ingest) echo "-m ingest" ;;
        api) echo "-m api" ;;
        streams*) echo "-m streams " ;;  # "-m streams worker" and "-m streams --datadir D worker"
        sink) echo "-m consumers clickhouse" ;;
        *) echo "$1" ;;
    esac
}

# metrics_port NAME -> the port of NAME's /metrics (docs/operations.md): ingest and api on their own
# HTTP port, stream worker streams-N on 9200+N (streams: 9201), the ClickHouse sink on 9301.
metrics_port() {
    case "$1" in
        ingest) echo 8080 ;;
        api) echo 8000 ;;
        streams) echo 9201 ;;
        streams-*) echo $((9200 + ${1#streams-})) ;;
        sink) echo 9301 ;;
        *) echo - ;;
    esac
}

pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOGS/$1.log"; }

# pid_of NAME -> prints the pid and returns 0 when NAME runs; removes a stale pid file.
pid_of() {
    local name="$1" f pid cmd
    f="$(pidfile "$name")"
    [[ -s "$f" ]] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]]; then
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        # A zombie has an empty command line: treat it as gone.
        if [[ -n "$cmd" && "$cmd" == *"$(signature "$name")"* ]]; then
            echo "$pid"
            return 0
        fi
    fi
    rm -f "$f"
    return 1
}

is_running() { pid_of "$1" >/dev/null; }

# port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_bg NAME CMD... : run CMD detached (own session, survives the calling shell), appending
# stdout+stderr to the log and writing the pid file from inside the child, so the pid is exact.
# fd 9 (the up/down lock) is closed in the child so a long-lived service does not hold the lock.
start_bg() {
    local name="$1"
    shift
    local log
    log="$(logfile "$name")"
    # Keep one previous log when it grows past 50 MB.
    if [[ -f "$log" ]] && (($(stat -c %s "$log") > 50 * 1024 * 1024)); then
        mv -f "$log" "$log.1"
    fi
    printf '\n===== %s start %s =====\n' "$name" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
    (
        cd "$ROOT" || exit 1
        # shellcheck disable=SC2016
        nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$name")" "$@" \
            >>"$log" 2>&1 </dev/null 9>&- &
    )
    # Wait (briefly) for the child to write its pid file.
    for _ in $(seq 1 50); do
        [[ -s "$(pidfile "$name")" ]] && return 0
        sleep 0.02
    done
    return 0
}

# stop_one NAME [GRACE_SECONDS] : TERM, then KILL after the grace period. 0 if it was running.
stop_one() {
    local name="$1" grace="${2:-10}" pid
    pid="$(pid_of "$name")" || return 1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        # a zombie (not reaped by us) counts as gone
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]]; then
        warn "$name (pid $pid) did not stop within ${grace}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$(pidfile "$name")"
    return 0
}

# tail_log NAME [LINES] : the last lines of a service's log, indented, for failure reports
tail_log() {
    local log
    log="$(logfile "$1")"
    if [[ -s "$log" ]]; then
        echo "----- last ${2:-40} lines of ${log#"$ROOT"/} (this start) -----" >&2
        # only what the latest start wrote (start_bg marks each start with a ===== line)
        awk '/^===== .* start .* =====$/ { n = 0; delete buf } { buf[n++] = $0 } END { for (i = 0; i < n; i++) print buf[i] }' \
            "$log" | tail -n "${2:-40}" | sed 's/^/  /' >&2
        echo "-----" >&2
    else
        echo "(no log at ${log#"$ROOT"/})" >&2
    fi
}

# as_root CMD... : run as root (directly, or through sudo when available)
as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) for: $*"
    fi
}
