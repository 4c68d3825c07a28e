#!/usr/bin/env bash
# Stop the application processes started by devstack/serve.sh: TERM, then KILL after 10 s.
#   devstack/stop.sh              # all of them (ingest, api, streams*, sink)
#   devstack/stop.sh ingest api   # a subset ("streams" includes the extra workers streams-N)
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

quiet=0
names=()
for a in "$@"; do
    if [[ "$a" == --quiet ]]; then quiet=1; else names+=("$a"); fi
done
((${#names[@]})) || names=(ingest api streams sink)

shopt -s nullglob
targets=()
for n in "${names[@]}"; do
    targets+=("$n")
    if [[ "$n" == streams ]]; then
        for f in "$RUN"/streams-*.pid; do targets+=("$(basename "$f" .pid)"); done
    fi
done

# Stop the producers of traffic first, the sink last, so in-flight work can drain.
for name in "${targets[@]}"; do
    if stop_one "$name" "${STOP_GRACE_SECONDS:-10}"; then
        say "$name stopped"
    elif ((quiet == 0)); then
        say "$name was not running"
    fi
done
