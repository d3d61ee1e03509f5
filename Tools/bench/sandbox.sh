#!/usr/bin/env bash
# Benchmark: the jail's cost on system calls, measured in podman containers in the same run:
# a loop of getppid() (the cheapest syscall, so the filter's share is largest) and of
# open+close, under four setups — no filter at all (seccomp=unconfined), Hangar's policy alone,
# the engine's default profile alone, and the engine's profile with Hangar's policy on top (what
# a kernel gets by default). Each setup runs ROUNDS times; the median ns/call is reported.
#   Tools/bench/sandbox.sh [rounds, default 5]
# HANGAR_BENCH_BIN=DIR measures the build in DIR instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
image=hangar/python:3.11-bookworm
Tools/images/python-image.sh >/dev/null
if [ -n "${HANGAR_BENCH_BIN:-}" ]; then bin=$HANGAR_BENCH_BIN; else swift build -c release >/dev/null; bin=$(swift build -c release --show-bin-path); fi
work=$(mktemp -d /tmp/hangar-sandbox-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/hangard" sandbox --runner-policy >"$work/policy"
cat >"$work/loop.py" <<'PY'
import os, time
n = 300000
t = time.perf_counter_ns()
for _ in range(n): os.getppid()
a = (time.perf_counter_ns() - t) / n
t = time.perf_counter_ns()
for _ in range(n // 10): os.close(os.open("/etc/hostname", os.O_RDONLY))
b = (time.perf_counter_ns() - t) / (n // 10)
print(f"{a:.1f} {b:.1f}")
PY
run() { # $1: engine security option ("" or seccomp=unconfined), $2: with Hangar's policy (1/0)
    local sec=() jail=()
    [ -n "$1" ] && sec=(--security-opt "$1")
    [ "$2" = 1 ] && jail=(--sandbox /bench/policy)
    podman run --rm "${sec[@]}" -v "$bin/hangar-runner:/opt/hangar-runner:ro" -v "$work:/bench:ro" --entrypoint /opt/hangar-runner "$image" \
        --runtime shell --socket /tmp/runner.sock "${jail[@]}" -- python3 /bench/loop.py
}
printf '%-40s %14s %18s\n' setup "getppid ns" "open+close ns"
for setup in "none|seccomp=unconfined|0" "Hangar policy alone|seccomp=unconfined|1" "engine profile alone||0" "engine profile + Hangar policy||1"; do
    IFS='|' read -r name opt jail <<<"$setup"
    results=$(for _ in $(seq "$rounds"); do run "$opt" "$jail"; done)
    a=$(echo "$results" | awk '{print $1}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    b=$(echo "$results" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    printf '%-40s %14s %18s\n' "$name" "$a" "$b"
done
