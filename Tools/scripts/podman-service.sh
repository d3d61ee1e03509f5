#!/usr/bin/env bash
# Starts podman's Docker-compatible API service on a unix socket (or stops it).
#   Tools/scripts/podman-service.sh start DIR   -> prints the socket path
#   Tools/scripts/podman-service.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?folder for the socket}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
case "$cmd" in
start)
    mkdir -p "$dir"
    # From its own folder: conmon drops files (an "oom" marker) into its working directory.
    (cd "$dir" && exec nohup podman system service --time=0 "unix://$dir/podman.sock" >"$dir/service.log" 2>&1) &
    echo $! >"$dir/service.pid"
    for _ in $(seq 100); do
        curl -sf --unix-socket "$dir/podman.sock" http://localhost/_ping >/dev/null 2>&1 && { echo "$dir/podman.sock"; exit 0; }
        sleep 0.1
    done
    echo "podman service did not come up; see $dir/service.log" >&2
    cat "$dir/service.log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/service.pid" ] && kill "$(cat "$dir/service.pid")" 2>/dev/null || true
    rm -rf "$dir"
    ;;
esac
