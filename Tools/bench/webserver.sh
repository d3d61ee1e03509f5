#!/usr/bin/env bash
# Benchmark: the webserver. A release manager on SQLite and a separate `hangard webserver` in
# front of it (loopback, a scratch folder), then:
#   - the proxy's overhead per request: the same signed call (GET /auth/role) made directly to
#     the manager (HMAC-signed by the client) and through the webserver (the login cookie; the
#     webserver re-signs), one keep-alive connection each, alternating, 3,000 each; median and
#     p99, and their difference;
#   - the first page load in headless Chromium (Selenium): bytes transferred until the login
#     form is usable (before any session data), time to interactive, and the same after the
#     login for the sessions page; the terminal's library (loaded only when a terminal opens)
#     is reported on its own.
#   Tools/bench/webserver.sh
# HANGAR_BENCH_BIN: see common.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-web-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(free_port); wport=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
"$bin/hangard" manager serve --data-dir "$work/data" --listen "127.0.0.1:$mport" >"$work/manager.out" 2>"$work/manager.err" &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/data/cluster-secret" ] && grep -q BACKEND_SECRET_KEY "$work/manager.out" && break; sleep 0.1; done
password=$(awk '$1 == "password" {print $2}' "$work/manager.out")
access=$(awk -F= '/BACKEND_ACCESS_KEY/ {print $2}' "$work/manager.out")
secret=$(awk -F= '/BACKEND_SECRET_KEY/ {print $2}' "$work/manager.out")
printf '[webserver]\nlisten = "127.0.0.1:%s"\nmanager_url = "http://127.0.0.1:%s"\ncluster_secret = "%s"\n' \
    "$wport" "$mport" "$(cat "$work/data/cluster-secret")" >"$work/web.toml"
"$bin/hangard" webserver --config "$work/web.toml" >"$work/web.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$wport/func/ping" >/dev/null && break; sleep 0.1; done
echo "build: $bin"
python3 Tools/bench/webserver_bench.py latency "127.0.0.1:$mport" "127.0.0.1:$wport" "$access" "$secret" admin@hangar.local "$password"
selenium=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/selenium-4.27.1
if [ -x "$selenium/bin/python" ]; then
    "$selenium/bin/python" Tools/bench/webserver_bench.py page "http://127.0.0.1:$wport" admin@hangar.local "$password"
else
    echo "page load: skipped (run Tools/webui/webui-test.sh once to install Selenium)"
fi
