#!/usr/bin/env bash
# Stop the application processes (devstack/stop.sh) and then the dev services. Data stays in
# .devstack/ (Kafka log dirs, Redis AOF, chDB data); `rm -rf .devstack` resets everything.
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t0="$(now)"
exec 9>"$RUN/stack.lock"
flock -w 300 9 || die "another devstack/up.sh or down.sh holds $RUN/stack.lock"

bash "$ROOT/devstack/stop.sh" --quiet

# Kafka gets longer: a controlled shutdown flushes and closes its logs cleanly.
for spec in clickhouse:10 redis:15 kafka:40; do
    name="${spec%%:*}"
    if stop_one "$name" "${spec##*:}"; then
        say "$name stopped"
    else
        say "$name was not running"
    fi
done
say "down in $(elapsed "$t0")s"
