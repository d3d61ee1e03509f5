#!/usr/bin/env bash
# Benchmark: session creation throughput with 1 and with 3 managers on one PostgreSQL, side by
# side in one run. Each round: a fresh database, the managers (sharing the cluster secret), one
# real agent (podman) that registers and is then excluded from scheduling, so sessions are
# created and stay PENDING (the API's and the database's work, not container starts). Clients
# (threads) POST /session (enqueueOnly) to the managers in turn for a fixed time.
#   Tools/bench/managers.sh [clients, default 16] [seconds, default 10]
# HANGAR_BENCH_BIN / HANGAR_BENCH_PLUGINS: see common.sh. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-16}
seconds=${2:-10}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-managers-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
engine=${HANGAR_TEST_ENGINE_SOCKET:-}
[ -n "$engine" ] || engine=$(Tools/scripts/podman-service.sh start "$work/engine")
postgres=${HANGAR_TEST_POSTGRES_URL:-}
[ -n "$postgres" ] || postgres=$(Tools/scripts/postgres.sh start "$work/pg" "$(free_port)")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; [ -z "${HANGAR_TEST_ENGINE_SOCKET:-}" ] && Tools/scripts/podman-service.sh stop "$work/engine"; [ -z "${HANGAR_TEST_POSTGRES_URL:-}" ] && Tools/scripts/postgres.sh stop "$work/pg"; rm -rf "$work"' EXIT
echo "build: $bin; $clients clients, $seconds s per round"
for managers in 1 3; do
    db="hangar_bench_m${managers}_$$"
    psql -q "$postgres" -c "CREATE DATABASE $db"
    url="${postgres%/*}/$db"
    secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    ports=()
    for i in $(seq "$managers"); do
        mkdir -p "$work/m$managers-$i"
        echo "$secret" >"$work/m$managers-$i/cluster-secret"
    done
    out=$("$bin/hangard" manager init --database "$url" --data-dir "$work/m$managers-1")
    ak=$(sed -n 's/^export BACKEND_ACCESS_KEY=//p' <<<"$out"); sk=$(sed -n 's/^export BACKEND_SECRET_KEY=//p' <<<"$out")
    for i in $(seq "$managers"); do
        port=$(free_port); ports+=("$port")
        "$bin/hangard" manager serve --database "$url" --data-dir "$work/m$managers-$i" --listen "127.0.0.1:$port" >"$work/m$managers-$i.log" 2>&1 &
        pids+=($!)
    done
    aport=$(free_port)
    printf '[agent]\nid = "bench-m%s"\nmanagers = [%s]\nlisten = "127.0.0.1:%s"\nscratch_dir = "%s/scratch%s"\nengine_socket = "%s"\nheartbeat_interval = 0.5\n' \
        "$managers" "$(printf '"http://127.0.0.1:%s",' "${ports[@]}" | sed 's/,$//')" "$aport" "$work" "$managers" "$engine" >"$work/agent$managers.toml"
    "$bin/hangard" agent --config "$work/agent$managers.toml" --cluster-secret-file "$work/m$managers-1/cluster-secret" >"$work/agent$managers.log" 2>&1 &
    pids+=($!)
    for port in "${ports[@]}"; do
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
    done
    python3 Tools/bench/managers_bench.py "$managers" "$clients" "$seconds" "$ak" "$sk" "${ports[@]}"
    kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
    pids=()
    psql -q "$postgres" -c "DROP DATABASE $db WITH (FORCE)"
done
