#!/usr/bin/env bash
# Benchmark: vfolder transfers through a release storage proxy on loopback, side by side in one
# run with a local `cp` on the same filesystem and with curl against nginx (a static file
# server: PUT through its dav module, GET with sendfile) on the same disk.
#   Tools/bench/vfolder-transfer.sh [size in MiB, default 1024] [small files, default 10000] [rounds, default 3]
# Rows: one big file up (one tus PATCH by curl; 16 MiB tus chunks from Python) and down (one
# GET); many small files up as one archive upload (`tar c | curl`, unpacked by the proxy) and
# down as a tar (`curl | tar x`). Every timing ends with sync(1), so each side pays for its
# writes reaching the disk (the proxy also fsyncs before answering). Medians of the rounds;
# percentages are of the same round's `cp` (`cp -r` for small files).
# HANGAR_BENCH_PEAK_MIB=10240 adds one transfer of that size each way and reports the proxy's
# peak RSS afterwards (VmHWM). Needs nginx (apt-get install nginx-light). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
files=${2:-10000}
rounds=${3:-3}
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
command -v nginx >/dev/null || { echo "nginx is needed for the static-server baseline: apt-get install nginx-light" >&2; exit 1; }
work=$(mktemp -d /tmp/hangar-transfer-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
nginx_port=$(free_port)
secret=bench-$RANDOM
mkdir -p "$work/volume" "$work/static" "$work/nginx-body"
cat >"$work/storage.toml" <<TOML
[storage-proxy]
listen = "127.0.0.1:$port"
secret = "$secret"
[volumes.v1]
backend = "vfs"
[volumes.v1.options]
root = "$work/volume"
[plugins]
search_paths = ["$plugins"]
TOML
cat >"$work/nginx.conf" <<NGINX
daemon off;
# The benchmark runs as root; workers write into its private temporary folder.
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_max_body_size 0;
    client_body_temp_path $work/nginx-body;
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/static;
        location / { dav_methods PUT; create_full_put_path on; }
    }
}
NGINX
"$bin/hangard" storage-proxy --config "$work/storage.toml" >"$work/proxy.log" 2>&1 &
pid=$!
nginx -c "$work/nginx.conf" -e "$work/nginx.err" &
nginx_pid=$!
trap 'kill $pid $nginx_pid 2>/dev/null; wait $pid $nginx_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
echo "build: $bin; $mib MiB file, $files small files, $rounds rounds; nginx $(nginx -v 2>&1 | sed 's/.*\///')"
PROXY_PID=$pid python3 Tools/bench/vfolder_transfer_bench.py "$port" "$secret" "$nginx_port" "$work" "$mib" "$files" "$rounds" "${HANGAR_BENCH_PEAK_MIB:-0}"
