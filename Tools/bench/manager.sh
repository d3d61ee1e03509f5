#!/usr/bin/env bash
# Benchmark of the manager: signed GET requests at concurrency 1 and 16, signed GraphQL
# queries, unsigned GET /, and resident memory idle and after load. Runs a release build of
# hangard on SQLite in a scratch folder; needs wrk (apt-get install wrk). Loopback traffic
# only, bounded in time.
#   Tools/bench/manager.sh [seconds per run, default 10]
# HANGAR_BENCH_BIN=DIR measures the hangard in DIR instead of building this tree (to compare
# two builds side by side in one run).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
if [ -n "${HANGAR_BENCH_BIN:-}" ]; then
    bin=$HANGAR_BENCH_BIN
else
    swift build -c release --product hangard >/dev/null
    bin=$(swift build -c release --show-bin-path)
fi
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
sign() {
python3 - "$ak" "$sk" "$port" "$1" "$2" "$3" <<'PY'
import datetime, hashlib, hmac, sys
ak, sk, port, method, path, ctype = sys.argv[1:7]
date = datetime.datetime.now(datetime.timezone.utc).isoformat()
host = f"127.0.0.1:{port}"
sts = "\n".join([method, path, date, "host:" + host, "content-type:" + ctype,
                 "x-backendai-version:v7.20230615", hashlib.sha256(b"").hexdigest()])
k1 = hmac.new(sk.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
sig = hmac.new(k2, sts.encode(), hashlib.sha256).hexdigest()
print(date, f"BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}")
PY
}
read -r date auth < <(sign GET /auth/keypair text/plain)
read -r gdate gauth < <(sign POST /admin/gql application/json)
gql_body='{"query": "query($limit:Int!, $offset:Int!) { compute_session_list(limit:$limit, offset:$offset) { items { name id status status_info } total_count } }", "variables": {"limit": 20, "offset": 0}}'
cat >"$work/gql.lua" <<LUA
wrk.method = "POST"
wrk.body = '$gql_body'
wrk.headers["Date"] = "$gdate"
wrk.headers["Authorization"] = "$gauth"
wrk.headers["X-BackendAI-Version"] = "v7.20230615"
wrk.headers["Content-Type"] = "application/json"
LUA
headers=(-H "Date: $date" -H "Authorization: $auth" -H "X-BackendAI-Version: v7.20230615" -H "Content-Type: text/plain")
curl -sf "${headers[@]}" "http://127.0.0.1:$port/auth/keypair" >/dev/null || { echo "signed probe failed" >&2; exit 1; }
curl -sf -X POST -H "Date: $gdate" -H "Authorization: $gauth" -H "X-BackendAI-Version: v7.20230615" -H "Content-Type: application/json" \
    -d "$gql_body" "http://127.0.0.1:$port/admin/gql" | grep -q total_count || { echo "signed GraphQL probe failed" >&2; exit 1; }
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
run "signed GraphQL POST /admin/gql, c=16" -t2 -c16 -s "$work/gql.lua" "http://127.0.0.1:$port/admin/gql"
run "unsigned GET /, c=16" -t2 -c16 "http://127.0.0.1:$port/"
echo "resident memory after load: $(rss)"
