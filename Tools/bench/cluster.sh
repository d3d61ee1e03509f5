#!/usr/bin/env bash
# Benchmark: multi-node sessions on simulated hosts (Tools/scripts/cluster, network namespaces
# on this machine, each with its own podman and agent).
#   1. time from POST /session (`hangar session create`, which returns once the session runs)
#      to RUNNING for multi-node sessions of 1, 2, 4 and 8 kernels over 4 hosts (three runs
#      each, the session destroyed between runs);
#   2. TCP throughput of one connection moving SIZE MiB from main1 to sub1 (kernels on two
#      hosts, over the session's VXLAN network) beside the same transfer between the two
#      hosts' namespaces directly, in the same run.
#   Tools/bench/cluster.sh [size in MiB, default 1024]
# HANGAR_BENCH_BIN: see common.sh (hangard, hangar and hangar-runner; plugins from
# HANGAR_BENCH_PLUGINS). Needs root, socat, and the python image (Tools/images/build.sh python).
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
image=hangar/python:3.11-bookworm
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
dir=/tmp/hangar-cluster-bench.$$
prefix=hcb
bindir=$(mktemp -d /tmp/hangar-cluster-bench-bin.XXXXXX)
# The cluster script takes one folder: the binaries beside the plugins.
cp "$bin/hangard" "$bin/hangar" "$bin/hangar-runner" "$bindir/"
cp "$plugins"/libhangar-*.so "$bindir/" 2>/dev/null || true
trap 'Tools/scripts/cluster down --dir "$dir" --prefix "$prefix" >/dev/null 2>&1 || true; rm -rf "$bindir" "$dir.env"' EXIT
Tools/scripts/cluster up --hosts 4 --dir "$dir" --bin "$bindir" --prefix "$prefix" >"$dir.env"
# shellcheck disable=SC1090
source "$dir.env"
hangar() { "$bindir/hangar" "$@"; }
hangar admin policy update default --max-containers-per-session 8 >/dev/null
echo "build: $bin; 4 hosts of $(nproc) cores each (one machine, shared)"

echo "time from POST /session to RUNNING, multi-node, one core per kernel (three runs):"
for size in 1 2 4 8; do
    times=()
    for run in 1 2 3; do
        start=$(date +%s%N)
        hangar session create -t "bench-$size-$run" --cluster-size "$size" --cluster-mode multi-node -r cpu=1 -r mem=1g "$image" >/dev/null
        end=$(date +%s%N)
        times+=("$(( (end - start) / 1000000 ))")
        hangar session rm "bench-$size-$run" >/dev/null
    done
    echo "  $size kernel(s): ${times[*]} ms"
done

# Throughput: sub1 receives, main1 sends; then the same two programs between two hosts.
transfer=$(base64 -w0 <<'PY'
import os, socket, sys, time
size = int(os.environ.get("BENCH_MIB", "1024")) << 20
role = os.environ.get("BACKENDAI_CLUSTER_ROLE") or sys.argv[1]
chunk = bytearray(1 << 20)
if role == "sub":
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 9922))
    server.listen()
    while True:
        connection, _ = server.accept()
        left = size
        while left > 0:
            n = connection.recv_into(chunk, min(left, len(chunk)))
            if n == 0:
                break
            left -= n
        connection.sendall(b"OK")
        connection.close()
else:
    target = os.environ.get("BENCH_TARGET", "sub1")
    for run in range(int(os.environ.get("BENCH_RUNS", "1"))):
        for _ in range(150):
            try:
                connection = socket.create_connection((target, 9922), 2)
                break
            except OSError:
                time.sleep(0.2)
        start = time.perf_counter()
        sent = 0
        while sent < size:
            connection.sendall(chunk[: min(len(chunk), size - sent)])
            sent += min(len(chunk), size - sent)
        assert connection.recv(2) == b"OK"
        connection.close()
        print(f"throughput {size / (time.perf_counter() - start) / (1 << 20):.0f}", flush=True)
PY
)
# A batch session whose kernels need a host each: sub1 receives, main1 sends three times and
# prints each figure, then ends (and the session with it).
hangar session create -t bench-net --type batch --cluster-size 2 --cluster-mode multi-node -r cpu=2 -e "BENCH_MIB=$mib" -e BENCH_RUNS=3 "$image" \
    --startup-command "python3 -c 'import base64; exec(base64.b64decode(\"$transfer\"))'" >/dev/null
for _ in $(seq 600); do [ "$(hangar session logs bench-net 2>/dev/null | grep -c '^throughput')" -ge 3 ] && break; sleep 0.5; done
mapfile -t session_runs < <(hangar session logs bench-net 2>/dev/null | sed -n 's/^throughput //p')
hangar session rm bench-net >/dev/null 2>&1 || true
# The baseline's receiver runs in host 2's namespace, the sender in host 1's.
BENCH_MIB=$mib nsenter --net="/run/netns/$prefix-2" python3 -c "$(base64 -d <<<"$transfer")" sub &
receiver=$!
sleep 0.5
host_runs=()
for _ in 1 2 3; do
    host_runs+=("$(BENCH_MIB=$mib BENCH_TARGET=198.51.100.12 nsenter --net="/run/netns/$prefix-1" python3 -c "$(base64 -d <<<"$transfer")" main | sed -n 's/^throughput //p')")
done
kill "$receiver" 2>/dev/null || true
echo "one TCP connection moving $mib MiB (three runs):"
echo "  kernel main1 -> kernel sub1 on another host, session network: ${session_runs[*]} MiB/s"
echo "  host 1 -> host 2 directly (their namespaces):             ${host_runs[*]} MiB/s"
best() { printf '%s\n' "$@" | sort -n | tail -1; }
python3 -c "print(f'  session network / hosts (best runs): {$(best "${session_runs[@]}") / $(best "${host_runs[@]}") * 100:.0f}% (goal >= 80%)')"
