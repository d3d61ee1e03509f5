#!/usr/bin/env bash
# Memory of each role, idle, as separate processes of one release hangard: resident (RSS) and
# proportional (PSS, smem's measure: a shared page counts 1/n in each of its n processes), the
# anonymous part, and what dominates each role's RSS (the largest mappings). Starts podman's
# service for the agent, a manager on SQLite, an agent and a storage proxy on a vfs volume, in
# a scratch folder; loopback only; stops everything at the end.
#   Tools/bench/roles-memory.sh [seconds to settle, default 5]
# HANGAR_BENCH_BIN / HANGAR_BENCH_PLUGINS: see common.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
settle=${1:-5}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-memory-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
socket=$(Tools/scripts/podman-service.sh start "$work/engine")
mport=$(free_port); aport=$(free_port); sport=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; Tools/scripts/podman-service.sh stop "$work/engine"; rm -rf "$work"' EXIT
"$bin/hangard" manager serve --data-dir "$work/data" --listen "127.0.0.1:$mport" >"$work/manager.out" 2>"$work/manager.err" &
pids+=($!); manager=$!
for _ in $(seq 100); do [ -f "$work/data/cluster-secret" ] && grep -q BACKEND_SECRET_KEY "$work/manager.out" && break; sleep 0.1; done
printf '[agent]\nid = "mem"\nmanager = "http://127.0.0.1:%s"\nlisten = "127.0.0.1:%s"\nscratch_dir = "%s/scratch"\nengine_socket = "%s"\n' \
    "$mport" "$aport" "$work" "$socket" >"$work/agent.toml"
"$bin/hangard" agent --config "$work/agent.toml" --cluster-secret-file "$work/data/cluster-secret" >"$work/agent.out" 2>&1 &
pids+=($!); agent=$!
mkdir -p "$work/volume"
printf '[storage-proxy]\nlisten = "127.0.0.1:%s"\nsecret = "memory-bench"\n[volumes.v1]\nbackend = "vfs"\n[volumes.v1.options]\nroot = "%s/volume"\n[plugins]\nsearch_paths = ["%s"]\n' \
    "$sport" "$work" "$plugins" >"$work/storage.toml"
"$bin/hangard" storage-proxy --config "$work/storage.toml" >"$work/storage.out" 2>&1 &
pids+=($!); storage=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$sport/" >/dev/null && curl -sf "http://127.0.0.1:$mport/" >/dev/null && break; sleep 0.1; done
sleep "$settle"
python3 - "$manager" "$agent" "$storage" <<'PY'
import collections, re, sys
roles = dict(zip(["manager", "agent", "storage-proxy"], sys.argv[1:4]))
def rollup(pid):
    fields = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            fields[parts[0][:-1]] = int(parts[1])
    return fields
def mappings(pid):
    rss, current = collections.Counter(), None
    for line in open(f"/proc/{pid}/smaps"):
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            current = parts[5].rsplit("/", 1)[-1] if len(parts) > 5 else "[anonymous]"
        elif line.startswith("Rss:"):
            rss[current] += int(line.split()[1])
    return rss
print(f"{'role':<14} {'RSS':>9} {'PSS':>9} {'anonymous':>10}   largest mappings (RSS)")
for role, pid in roles.items():
    r = rollup(pid)
    top = ", ".join(f"{name} {kib / 1024:.1f}" for name, kib in mappings(pid).most_common(5))
    print(f"{role:<14} {r['Rss'] / 1024:7.1f} M {r['Pss'] / 1024:7.1f} M {r['Anonymous'] / 1024:8.1f} M   {top}")
PY
