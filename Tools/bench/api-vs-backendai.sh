#!/usr/bin/env bash
# Signed GraphQL list queries (keypair_list, agent_list) and unsigned GET /, Hangar's manager
# beside the real Backend.AI 23.9.10 manager, in one run with one load generator (closed loop,
# keep-alive, concurrency 1 and 16). Both share this machine's cores with the load generator:
# compare ratios within a run, not figures across machines.
#   Tools/bench/api-vs-backendai.sh [seconds per row, default 10]
# Needs Backend.AI running (ANCHOR_DIR=/tmp/anchor ../shared/bench/backendai/setup.sh); its
# virtual environment runs the load generator (../shared/bench/backendai/bench.py).
# HANGAR_BENCH_BINS="label:DIR ..." measures the hangard of each DIR (several builds side by
# side, e.g. "before:/tmp/before after:.build/release"); default: this tree's release build.
# HANGAR_BENCH_POSTGRES_URL=postgresql://... also measures each build on PostgreSQL (a fresh
# database per build, created and dropped here).
# Hangar gets Backend.AI's data first: a second user with its own keypair (the anchor's
# fixture has a superadmin and a user keypair).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
anchor=${ANCHOR_DIR:-/tmp/anchor}
bench_dir=${BACKENDAI_BENCH_DIR:-$(cd ../shared/bench/backendai 2>/dev/null && pwd || true)}
python=$anchor/venv/bin/python
[ -x "$python" ] && [ -f "$bench_dir/bench.py" ] || {
    echo "Backend.AI's bench is missing: run ANCHOR_DIR=$anchor ../shared/bench/backendai/setup.sh (or set BACKENDAI_BENCH_DIR)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$anchor/client.env"
curl -sf "$BACKEND_ENDPOINT/" >/dev/null || { echo "Backend.AI does not answer at $BACKEND_ENDPOINT: start it with setup.sh" >&2; exit 1; }
if [ -z "${HANGAR_BENCH_BINS:-}" ]; then
    swift build -c release --product hangard >/dev/null
    HANGAR_BENCH_BINS="this:$(swift build -c release --show-bin-path)"
fi
targets=version,gql_keypairs,gql_agents
work=$(mktemp -d /tmp/hangar-api-bench.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

row() {  # label endpoint access-key secret-key
    "$python" "$bench_dir/bench.py" --endpoint "$2" --access-key "$3" --secret-key "$4" --duration "$duration" \
        --concurrency 1,16 --targets "$targets" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    error = "  (" + r["first_error"] + ")" if r.get("first_error") else ""
    print("%-26s %-13s c=%-3s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s%s" % (
        sys.argv[1], r["target"], r["concurrency"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"], error))' "$1"
}

# Signed GraphQL mutations through the load generator's own signer.
gql() {  # endpoint ak sk query
    "$python" - "$bench_dir" "$@" <<'PY'
import json, sys, urllib.request
sys.path.insert(0, sys.argv[1])
from bench import Signer
endpoint, ak, sk, query = sys.argv[2:6]
headers = Signer(endpoint, ak, sk).headers("POST", "/admin/gql")
req = urllib.request.Request(endpoint + "/admin/gql", data=json.dumps({"query": query}).encode(), headers=headers, method="POST")
body = urllib.request.urlopen(req).read()
if b'"errors"' in body:
    sys.exit(f"GraphQL refused the fixture: {body[:300]!r}")
PY
}

hangar() {  # label bin-dir database
    local label=$1 bin=$2 database=$3 dir
    dir=$(mktemp -d "$work/m.XXXX")
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin/hangard" manager serve --data-dir "$dir" --database "$database" --listen "127.0.0.1:$port" >"$dir/out" 2>"$dir/err" &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
    local ak sk endpoint=http://127.0.0.1:$port
    ak=$(sed -n 's/^export BACKEND_ACCESS_KEY=//p' "$dir/out")
    sk=$(sed -n 's/^export BACKEND_SECRET_KEY=//p' "$dir/out")
    gql "$endpoint" "$ak" "$sk" 'mutation { create_user(email: "user@example.com", props: {password: "bench-password-1", username: "user", role: "user", domain_name: "default"}) { ok msg } }'
    gql "$endpoint" "$ak" "$sk" 'mutation { create_keypair(user_id: "user@example.com", props: {is_active: true, is_admin: false, resource_policy: "default", rate_limit: 0}) { ok msg } }'
    row "$label" "$endpoint" "$ak" "$sk"
    echo "$label resident memory after load: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status")"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "Backend.AI 23.9.10 at $BACKEND_ENDPOINT; $duration s per row"
row "backend.ai" "$BACKEND_ENDPOINT" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY"
for entry in $HANGAR_BENCH_BINS; do
    label=${entry%%:*} bin=${entry#*:}
    hangar "hangar $label sqlite" "$bin" "$work/$label.db"
    if [ -n "${HANGAR_BENCH_POSTGRES_URL:-}" ]; then
        db="bench_${RANDOM}_$$"
        psql -q "$HANGAR_BENCH_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
        hangar "hangar $label postgresql" "$bin" "${HANGAR_BENCH_POSTGRES_URL%/*}/$db"
        psql -q "$HANGAR_BENCH_POSTGRES_URL" -c "DROP DATABASE $db" >/dev/null
    fi
done
row "backend.ai (again)" "$BACKEND_ENDPOINT" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY"
