#!/usr/bin/env bash
# Benchmark: app streams. In one session on a `hangard dev` cluster (release build, podman),
# a small TCP server listens on a preopened port; the same client then talks to it
#   - directly, over TCP to the container's own address (the baseline), and
#   - through `hangar app SESSION 9500` (client → manager → agent → runner → server),
# measuring the throughput of one connection moving SIZE MiB (client → container) and the
# time of a 64-byte round trip (median of 2,000). Then the time from `backend.ai app SESSION
# jupyter` (the official client) to the first HTTP 200 from Jupyter in a fresh session.
#   Tools/bench/app-stream.sh [size in MiB, default 1024]
# HANGAR_BENCH_BIN / HANGAR_BENCH_PLUGINS: see common.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
image=hangar/python:3.11-bookworm
Tools/images/python-image.sh >/dev/null
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
venv=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/backendai-client-23.9.10
[ -x "$venv/bin/backend.ai" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "backend.ai-client==23.9.10" "yarl==1.9.4"; }
work=$(mktemp -d /tmp/hangar-app-bench.XXXXXX)
socket=$(Tools/scripts/podman-service.sh start "$work/engine")
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(freeport); aport=$(freeport); sport=$(freeport); wport=$(freeport)
HOME="$work/home" HANGAR_PLUGIN_PATH="$plugins" "$bin/hangard" dev --data-dir "$work/data" --listen "127.0.0.1:$mport" --agent-listen "127.0.0.1:$aport" \
    --storage-listen "127.0.0.1:$sport" --web-listen "127.0.0.1:$wport" --engine-socket "$socket" --no-image >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
trap 'pkill -f "hangar app bench-apps" 2>/dev/null; kill -INT $dev 2>/dev/null; wait $dev 2>/dev/null; Tools/scripts/podman-service.sh stop "$work/engine"; rm -rf "$work"' EXIT
for _ in $(seq 150); do [ -f "$work/data/client.env" ] && curl -sf "http://127.0.0.1:$mport/" >/dev/null && break; sleep 0.2; done
# shellcheck disable=SC1091
source "$work/data/client.env"
export PATH="$venv/bin:$PATH"
echo "build: $bin"
# The session, with the benchmark's server on the preopened port 9500 (all addresses, so the
# baseline can reach it directly). The official client's library creates it (its CLI has no
# flag for preopened ports); `hangar run` starts the server in it.
"$venv/bin/python" Tools/bench/app_stream_bench.py create bench-apps "$image" 9500
code=$(base64 -w0 Tools/bench/app_stream_bench.py)
"$bin/hangar" run -t bench-apps "$image" -q -c "import base64, subprocess, sys
open('/tmp/bench_server.py', 'wb').write(base64.b64decode('$code'))
subprocess.Popen([sys.executable, '/tmp/bench_server.py', 'serve', '9500'], start_new_session=True)" >/dev/null
# The session's container (other containers may be on this engine): its address on podman's bridge.
address=$(python3 - "$socket" <<'PY'
import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
def get(path):
    c = Unix("localhost")
    c.request("GET", "/v1.41" + path)
    return json.loads(c.getresponse().read())
for summary in get("/containers/json"):
    details = get(f"/containers/{summary['Id']}/json")
    if "BACKENDAI_SESSION_NAME=bench-apps" in (details["Config"].get("Env") or []):
        print(next(iter(details["NetworkSettings"]["Networks"].values()))["IPAddress"])
        break
PY
)
# The server starts in the background of the session: wait until it accepts connections.
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('$address', 9500), 1)" 2>/dev/null && break; sleep 0.1; done
lport=$(freeport)
"$bin/hangar" app bench-apps 9500 -b "127.0.0.1:$lport" >"$work/app.out" 2>&1 &
for _ in $(seq 100); do grep -q "is at" "$work/app.out" && break; sleep 0.1; done
echo "container address $address; stream through 127.0.0.1:$lport"
# A reference with the stream's hops and none of its protocol: four plain socat relays in a row
# (hangar app → manager → agent over TCP, agent → runner over a unix socket, runner → the
# server over TCP), each moving blocks as large as the stream's frames.
chain=()
if command -v socat >/dev/null; then
    c1=$(freeport); c2=$(freeport); c3=$(freeport)
    socat -b 262144 UNIX-LISTEN:"$work/relay.sock",fork TCP:"$address":9500 &
    socat -b 262144 TCP-LISTEN:"$c3",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$work/relay.sock" &
    socat -b 262144 TCP-LISTEN:"$c2",bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:"$c3" &
    socat -b 262144 TCP-LISTEN:"$c1",bind=127.0.0.1,fork,reuseaddr TCP:127.0.0.1:"$c2" &
    sleep 0.5
    chain=(127.0.0.1 "$c1")
else
    echo "(socat is not installed: no relay-chain reference)"
fi
python3 Tools/bench/app_stream_bench.py measure "$address" 9500 "127.0.0.1" "$lport" "$mib" "${chain[@]}"
pkill -f "socat -b 262144" 2>/dev/null || true

# Jupyter: from the official client's `app` command to the first 200, in a session whose Jupyter
# has not started yet.
backend.ai session create -t bench-jupyter "$image" >/dev/null
jport=$(freeport)
start=$(date +%s.%N)
backend.ai app bench-jupyter jupyter -b "127.0.0.1:$jport" >"$work/jupyter.out" 2>&1 &
jpid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$jport/api"; do sleep 0.05; done
end=$(date +%s.%N)
kill -TERM $jpid 2>/dev/null; wait $jpid 2>/dev/null || true
python3 -c "print(f'jupyter: from backend.ai app to the first HTTP 200: {($end - $start) * 1000:.0f} ms (Jupyter cold: the service starts on the first connection)')"
