#!/usr/bin/env bash
# Benchmark: time from POST /session (a batch session running python3 -c 'print(1)') to its
# output appearing, against a raw `podman run --rm IMAGE python3 -c 'print(1)'` on the same
# machine in the same run. Starts podman's service, a release hangard manager and agent in a
# scratch folder; loopback only; stops everything at the end.
#   Tools/bench/session-start.sh [runs, default 5]
# HANGAR_BENCH_BIN / HANGAR_BENCH_PLUGINS: see common.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
image=hangar/python:3.11-bookworm
Tools/images/python-image.sh >/dev/null
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-session-bench.XXXXXX)
socket=$(Tools/scripts/podman-service.sh start "$work/engine")
mport=$((20000 + RANDOM % 5000)); aport=$((25000 + RANDOM % 5000))
printf '[manager]\nscheduling_interval = 0.05\n' >"$work/manager.toml"
"$bin/hangard" manager --config "$work/manager.toml" --data-dir "$work/data" --listen "127.0.0.1:$mport" >"$work/manager.out" 2>"$work/manager.err" &
mpid=$!
for _ in $(seq 100); do [ -f "$work/data/cluster-secret" ] && grep -q BACKEND_SECRET_KEY "$work/manager.out" && break; sleep 0.1; done
printf '[agent]\nid = "bench"\nmanager = "http://127.0.0.1:%s"\nlisten = "127.0.0.1:%s"\nscratch_dir = "%s/scratch"\nengine_socket = "%s"\nheartbeat_interval = 0.2\n' \
    "$mport" "$aport" "$work" "$socket" >"$work/agent.toml"
# HANGAR_BENCH_SANDBOX=none|watch|enforce measures the agent with that sandbox mode (default: the agent's, enforce).
[ -n "${HANGAR_BENCH_SANDBOX:-}" ] && printf '[sandbox]\nmode = "%s"\n' "$HANGAR_BENCH_SANDBOX" >>"$work/agent.toml"
"$bin/hangard" agent --config "$work/agent.toml" --cluster-secret-file "$work/data/cluster-secret" >"$work/agent.out" 2>&1 &
apid=$!
trap 'kill $apid $mpid 2>/dev/null; wait $apid $mpid 2>/dev/null; Tools/scripts/podman-service.sh stop "$work/engine"; rm -rf "$work"' EXIT
ak=$(sed -n 's/^export BACKEND_ACCESS_KEY=//p' "$work/manager.out"); sk=$(sed -n 's/^export BACKEND_SECRET_KEY=//p' "$work/manager.out")
sleep 2
BIN="$bin" python3 - "$mport" "$ak" "$sk" "$image" "$runs" <<'PY'
import datetime, os, hashlib, hmac, json, statistics, subprocess, sys, time, urllib.request
port, ak, sk, image, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host = f"127.0.0.1:{port}"
def call(method, path, body=None):
    date = datetime.datetime.now(datetime.timezone.utc).isoformat()
    ctype = "application/json" if body is not None else "text/plain"
    sts = "\n".join([method, path, date, "host:" + host, "content-type:" + ctype, "x-backendai-version:v7.20230615", hashlib.sha256(b"").hexdigest()])
    k1 = hmac.new(sk.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
    k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
    sig = hmac.new(k2, sts.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://{host}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Date": date, "Content-Type": ctype, "X-BackendAI-Version": "v7.20230615",
                                          "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")
raw, ours, cli = [], [], []
env = dict(os.environ, BACKEND_ENDPOINT=f"http://{host}", BACKEND_ACCESS_KEY=ak, BACKEND_SECRET_KEY=sk)
for i in range(runs):
    t = time.monotonic()
    out = subprocess.run(["podman", "run", "--rm", image, "python3", "-c", "print(1)"], capture_output=True, text=True)
    raw.append(time.monotonic() - t)
    assert out.stdout.strip() == "1", out
    name = f"bench-{i}-{int(time.time()*1000)}"
    t = time.monotonic()
    call("POST", "/session", {"name": name, "image": image, "type": "batch", "startupCommand": "python3 -c 'print(1)'",
                              "config": {"resources": {"cpu": "1", "mem": "256"}}, "enqueueOnly": True})
    while "1" not in call("GET", f"/session/{name}/logs")["result"]["logs"]:
        time.sleep(0.01)
    ours.append(time.monotonic() - t)
    call("DELETE", f"/session/{name}")
    # The user's view: `hangar run` creates a session, waits for it, runs the query through
    # the in-container runner over the WebSocket execute stream, and removes it.
    t = time.monotonic()
    out = subprocess.run([os.environ["BIN"] + "/hangar", "run", image, "-q", "--rm", "-c", "print(1)"], capture_output=True, text=True, env=env)
    cli.append(time.monotonic() - t)
    assert out.stdout == "1\n", out
print(f"raw podman run --rm ... print(1):      median {statistics.median(raw)*1000:7.0f} ms  (runs: {', '.join(f'{x*1000:.0f}' for x in raw)})")
print(f"POST /session -> output of print(1):  median {statistics.median(ours)*1000:7.0f} ms  (runs: {', '.join(f'{x*1000:.0f}' for x in ours)})")
print(f"ratio: {statistics.median(ours)/statistics.median(raw):.2f}x")
print(f"hangar run -c 'print(1)' --rm (whole):  median {statistics.median(cli)*1000:7.0f} ms  (runs: {', '.join(f'{x*1000:.0f}' for x in cli)})")
print(f"ratio: {statistics.median(cli)/statistics.median(raw):.2f}x")
PY
