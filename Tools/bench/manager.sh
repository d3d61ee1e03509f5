#!/usr/bin/env bash
# Benchmark of the manager: signed GET requests at concurrency 1 and 16, unsigned GET /,
# and resident memory idle and after load. Runs a release build of hangard on SQLite in a
# scratch folder; needs wrk (apt-get install wrk). Loopback traffic only, bounded in time.
#   Tools/bench/manager.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
swift build -c release --product hangard >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/hangar-bench.XXXXXX)
port=$((20000 + RANDOM % 10000))
"$bin/hangard" manager --data-dir "$work" --listen "127.0.0.1:$port" >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
ak=$(sed -n 's/^export BACKEND_ACCESS_KEY=//p' "$work/out")
sk=$(sed -n 's/^export BACKEND_SECRET_KEY=//p' "$work/out")
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
sleep 1
echo "idle resident memory: $(rss)"
# One signature is valid for the whole run (the Date header stays within the 15-minute window).
read -r date auth < <(python3 - "$ak" "$sk" "$port" <<'PY'
import datetime, hashlib, hmac, sys
ak, sk, port = sys.argv[1], sys.argv[2], sys.argv[3]
date = datetime.datetime.now(datetime.timezone.utc).isoformat()
host = f"127.0.0.1:{port}"
sts = "\n".join(["GET", "/auth/keypair", date, "host:" + host, "content-type:text/plain",
                 "x-backendai-version:v7.20230615", hashlib.sha256(b"").hexdigest()])
k1 = hmac.new(sk.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
sig = hmac.new(k2, sts.encode(), hashlib.sha256).hexdigest()
print(date, f"BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}")
PY
)
headers=(-H "Date: $date" -H "Authorization: $auth" -H "X-BackendAI-Version: v7.20230615" -H "Content-Type: text/plain")
curl -sf "${headers[@]}" "http://127.0.0.1:$port/auth/keypair" >/dev/null || { echo "signed probe failed" >&2; exit 1; }
run() {
    local label=$1; shift
    local out
    out=$(wrk "$@" -d "${duration}s" --latency 2>&1)
    printf '%-34s %10s req/s   p50 %8s   p99 %8s\n' "$label" \
        "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
    grep -q "Non-2xx" <<<"$out" && grep "Non-2xx" <<<"$out" || true
}
run "signed GET /auth/keypair, c=1" -t1 -c1 "${headers[@]}" "http://127.0.0.1:$port/auth/keypair"
run "signed GET /auth/keypair, c=16" -t2 -c16 "${headers[@]}" "http://127.0.0.1:$port/auth/keypair"
run "unsigned GET /, c=16" -t2 -c16 "http://127.0.0.1:$port/"
echo "resident memory after load: $(rss)"
