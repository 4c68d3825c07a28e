#!/usr/bin/env bash
# Install what the dev stack needs; idempotent and fast when everything is in place:
#   1. .venv with the project installed editable (`pip install -e '.[dev]'`), redone only when
#      pyproject.toml changed since the last install (stamp in .devstack/)
#   2. Redis from Debian (`redis-server`), Java and Maven when missing (apt)
#   3. the Kafka jars, resolved by Maven (devstack/kafka/pom.xml) into the local Maven cache;
#      the classpath is written to .devstack/kafka/classpath.txt. Skipped when that file is newer
#      than the pom and every jar on it exists, so a warm run downloads nothing.
set -euo pipefail
# shellcheck source=devstack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
t0="$(now)"

# ---------------------------------------------------------------- apt packages (when missing)
apt_missing=()
command -v redis-server >/dev/null || apt_missing+=(redis-server)
command -v java >/dev/null || apt_missing+=(default-jre-headless)
command -v mvn >/dev/null || apt_missing+=(maven)
# Browser tests of the dashboards (selenium drives Debian's Chromium) and the benchmark's load generator.
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
command -v wrk >/dev/null || apt_missing+=(wrk)
if ((${#apt_missing[@]})); then
    say "apt: installing ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    if [[ " ${apt_missing[*]} " == *" redis-server "* ]]; then
        # Debian may start its own redis on 6379; the dev stack runs its own with its own config.
        as_root service redis-server stop >/dev/null 2>&1 || true
    fi
fi

# ---------------------------------------------------------------- Python venv + project
PY_STAMP="$STATE/pip.stamp"
if [[ ! -x "$PY" ]]; then
    base_py="${PYTHON:-}"
    if [[ -z "$base_py" ]]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
                base_py="$cand"
                break
            fi
        done
    fi
    if [[ -z "$base_py" ]] && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
        say "apt: installing python3 + python3-venv (Debian 12's Python is 3.11)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            python3 python3-venv >/dev/null
        base_py=/usr/bin/python3
    fi
    [[ -n "$base_py" ]] || die "Python 3.11 is needed to create $VENV (set PYTHON=/path/to/python3.11)"
    say "creating $VENV with $base_py"
    "$base_py" -m venv "$VENV"
    rm -f "$PY_STAMP"
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$PY_STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    say "pip: installing the project and its dev dependencies (new venv or pyproject.toml changed)"
    tp="$(now)"
    if ! { "$PY" -m pip install -q --upgrade pip && "$PY" -m pip install -q -e '.[dev]'; } \
        >"$LOGS/pip.log" 2>&1; then
        tail -n 60 "$LOGS/pip.log" >&2
        die "pip install failed (full output in .devstack/logs/pip.log)"
    fi
    say "pip: done in $(elapsed "$tp")s"
    echo "$want" >"$PY_STAMP"
fi

# ---------------------------------------------------------------- Kafka jars (Maven)
KDIR="$STATE/kafka"
CP_FILE="$KDIR/classpath.txt"
POM="$ROOT/devstack/kafka/pom.xml"
mkdir -p "$KDIR"

classpath_ok() {
    [[ -s "$CP_FILE" && "$CP_FILE" -nt "$POM" ]] || return 1
    local jar
    while IFS= read -r jar; do
        [[ -z "$jar" || -f "$jar" ]] || return 1
    done < <(tr ':' '\n' <"$CP_FILE")
    grep -q 'kafka_2.13-' "$CP_FILE"
}

if ! classpath_ok; then
    say "maven: resolving the Kafka jars (the first run downloads ~60 MB into the Maven cache)"
    tm="$(now)"
    tmp="$CP_FILE.tmp"
    rm -f "$tmp"
    # shellcheck disable=SC2086
    if ! mvn -q -B ${MVN_ARGS:-} -f "$POM" dependency:build-classpath \
        -Dmdep.includeScope=runtime -Dmdep.outputFile="$tmp" >"$LOGS/maven.log" 2>&1; then
        cat "$LOGS/maven.log" >&2
        die "maven could not resolve the Kafka jars (full output above and in .devstack/logs/maven.log)"
    fi
    mv "$tmp" "$CP_FILE"
    say "maven: $(tr ':' '\n' <"$CP_FILE" | wc -l) jars resolved in $(elapsed "$tm")s"
fi

say "install ok ($(elapsed "$t0")s)"
