#!/usr/bin/env bash
# Benchmark of the kernel images, in one run on this machine:
#  1. session start per image: `hangar run --rm IMAGE -c CODE` (a new session, the code's
#     first answer, the session removed) against `podman run --rm IMAGE` running the same
#     code with the image's interpreter (or compiler), each RUNS times, medians;
#  2. image pull: PULL_IMAGE pushed to a local registry (TLS, htpasswd), then pulled RUNS
#     times by `podman pull` and RUNS times through Hangar (`hangar image pull`: manager ->
#     agent -> the engine's pull API), removed from the engine before each pull; medians.
# Starts its own registry, podman service and `hangard dev` (release build) in a scratch
# folder, loopback only, and stops them at the end.
#   Tools/bench/images.sh [RUNS, default 3] [PULL_IMAGE, default hangar/nodejs:18-bookworm]
# HANGAR_BENCH_BIN / HANGAR_BENCH_PLUGINS: see common.sh. The images must be built
# (Tools/images/build.sh all).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
pull_image=${2:-hangar/nodejs:18-bookworm}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-images-bench.XXXXXX)
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
eval "$(Tools/scripts/registry.sh start "$work/registry" "$(freeport)")"
socket=$(Tools/scripts/podman-service.sh start "$work/engine")
dev_pid=
cleanup() {
    [ -z "$dev_pid" ] || { kill "$dev_pid" 2>/dev/null; wait "$dev_pid" 2>/dev/null || true; }
    Tools/scripts/podman-service.sh stop "$work/engine"
    Tools/scripts/registry.sh stop "$work/registry"
    rm -rf "$work"
}
trap cleanup EXIT
ports=($(freeport) $(freeport) $(freeport) $(freeport))
"$bin/hangard" dev --data-dir "$work/dev" --engine-socket "$socket" --no-image --listen "127.0.0.1:${ports[0]}" \
    --agent-listen "127.0.0.1:${ports[1]}" --storage-listen "127.0.0.1:${ports[2]}" --web-listen "127.0.0.1:${ports[3]}" \
    >"$work/dev.out" 2>"$work/dev.err" &
dev_pid=$!
for _ in $(seq 100); do [ -f "$work/dev/client.env" ] && break; sleep 0.2; done
# shellcheck disable=SC1091
source "$work/dev/client.env"
hangar=$bin/hangar
# The agent registers (and reports its images) a moment after the manager answers.
for _ in $(seq 50); do "$hangar" image ls 2>/dev/null | grep -q python && break; sleep 0.3; done

median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }
seconds() { local start; start=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$(date +%s.%N)"; }

echo "== session start per image ($runs runs each; median seconds) =="
printf '%-40s %12s %12s\n' image "hangar run" "podman run"
while IFS='|' read -r image code raw; do
    podman image exists "$image" || { printf '%-40s %s\n' "$image" "not built (Tools/images/build.sh)"; continue; }
    ours=() theirs=()
    for _ in $(seq "$runs"); do
        ours+=("$(seconds "$hangar" run "$image" -q --rm -c "$code")")
        theirs+=("$(seconds podman run --rm "$image" sh -c "$raw")")
    done
    printf '%-40s %12s %12s\n' "$image" "$(median "${ours[@]}")" "$(median "${theirs[@]}")"
done <<'EOF'
hangar/python:3.11-bookworm|print(6*7)|python3 -c 'print(6*7)'
hangar/python-pytorch:1.13-bookworm|import torch; print(torch.ones(2).sum().item())|python3 -c 'import torch; print(torch.ones(2).sum().item())'
hangar/python-tensorflow:2.15-bookworm|import tensorflow as tf; print(int(tf.reduce_sum(tf.ones(2))))|python3 -c 'import tensorflow as tf; print(int(tf.reduce_sum(tf.ones(2))))'
hangar/r:4.2-bookworm|cat(6*7)|Rscript -e 'cat(6*7)'
hangar/nodejs:18-bookworm|console.log(6*7)|node -e 'console.log(6*7)'
hangar/cpp:12-bookworm|cout << 6*7 << endl;|printf '#include <bits/stdc++.h>\nusing namespace std;\nint main() {\ncout << 6*7 << endl;\nreturn 0;\n}\n' > /tmp/m.cpp && g++ -std=c++17 -O1 -o /tmp/m /tmp/m.cpp && /tmp/m
hangar/java:17-bookworm|System.out.println(6*7);|printf 'public class Main { public static void main(String[] a) { System.out.println(6*7); } }\n' > /tmp/Main.java && java /tmp/Main.java
EOF

echo
echo "== image pull of $pull_image from a local registry ($runs runs each; median seconds) =="
remote="$HANGAR_TEST_REGISTRY/bench/$(basename "${pull_image%%:*}"):${pull_image##*:}"
podman push -q --tls-verify=false --creds "$HANGAR_TEST_REGISTRY_USER:$HANGAR_TEST_REGISTRY_PASSWORD" "$pull_image" "$remote" >/dev/null
printf '%s\n' "$HANGAR_TEST_REGISTRY_PASSWORD" | "$hangar" admin registry add "$HANGAR_TEST_REGISTRY" "https://$HANGAR_TEST_REGISTRY" \
    --username "$HANGAR_TEST_REGISTRY_USER" --password-stdin --ssl-verify false >/dev/null
size=$(podman image inspect "$pull_image" --format '{{.Size}}')
compressed=$(du -sb "$work/registry" | cut -f1)
echo "image size: $((size / 1048576)) MiB uncompressed, $((compressed / 1048576)) MiB in the registry"
# Cold pulls: the local image shares every layer with the pushed one, so it goes too (it is
# tagged back from the pulled copy at the end).
restore() { podman image exists "$pull_image" || podman tag "$remote" "$pull_image"; }
ours=() theirs=()
for _ in $(seq "$runs"); do
    podman rmi -f "$remote" "$pull_image" >/dev/null 2>&1 || true
    theirs+=("$(seconds podman pull -q --tls-verify=false --creds "$HANGAR_TEST_REGISTRY_USER:$HANGAR_TEST_REGISTRY_PASSWORD" "$remote")")
    podman rmi -f "$remote" "$pull_image" >/dev/null 2>&1 || true
    ours+=("$(seconds "$hangar" image pull "$remote")")
    podman image exists "$remote" || { echo "hangar image pull left no image" >&2; exit 1; }
done
restore
printf '%-20s %s\n' "podman pull" "$(median "${theirs[@]}")" "hangar image pull" "$(median "${ours[@]}")"
podman rmi "$remote" >/dev/null 2>&1 || true
