#!/usr/bin/env bash
# Compatibility check: the official Backend.AI client (backend.ai-client 23.9.10, unchanged,
# in a virtual environment) against `hangard dev`. Runs the session, vfolder and admin
# commands a user runs, checks what they print, and exits non-zero on any failure.
#   Tools/compat/official-client.sh [ENGINE_SOCKET]     (default: $HANGAR_TEST_ENGINE_SOCKET)
# Needs the built binaries (swift build), PyPI reachable the first time (the venv is cached
# in ~/.cache/hangar/backendai-client-23.9.10), and the image hangar/python:3.11-bookworm.
set -uo pipefail
cd "$(dirname "$0")/../.."
socket=${1:-${HANGAR_TEST_ENGINE_SOCKET:-}}
image=${HANGAR_TEST_IMAGE:-hangar/python:3.11-bookworm}
venv=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/backendai-client-23.9.10
if [ ! -x "$venv/bin/backend.ai" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "backend.ai-client==23.9.10" "yarl==1.9.4" || { echo "cannot install the official client" >&2; exit 1; }
fi
# shellcheck source=Tools/compat/dev-cluster.sh
source Tools/compat/dev-cluster.sh "$socket"
export PATH="$venv/bin:$PATH"
mkdir -p "$work/cwd" && cd "$work/cwd"
failures=0
check() {  # check NAME EXPECTED-REGEX COMMAND...
    local name=$1 expect=$2; shift 2
    local out
    out=$(timeout 120 "$@" 2>&1 </dev/null)
    if grep -Eq -- "$expect" <<<"$out"; then echo "PASS $name"; else echo "FAIL $name: expected /$expect/, got:"; sed 's/^/    /' <<<"$out" | tail -15; failures=$((failures + 1)); fi
}
# The agent registers a moment after the manager answers.
for _ in $(seq 50); do backend.ai admin agent list 2>/dev/null | grep -q ALIVE && break; sleep 0.3; done

check "config" "127.0.0.1:$mport" backend.ai config
check "session create (interactive)" "is created and ready" backend.ai session create -t compat-int "$image"
check "session create (batch)" "Session ID .* (is created|enqueued|is scheduled)" backend.ai session create -t compat-batch --type batch -c 'echo batch-out; exit 3' "$image"
check "run (query)" "accept-42" backend.ai run --rm -t compat-run "$image" -c 'print("accept-" + str(6*7))'
check "run (query exit status)" "exit code = 3" backend.ai run --rm -t compat-exit "$image" -c 'raise SystemExit(3)'
printf 'import sys\nprint("batch-file-ran", sys.argv[0])\n' >main.py
check "run (batch with files)" "batch-file-ran main.py" backend.ai run --rm -t compat-run2 --exec 'python3 main.py' "$image" main.py
check "ps" "compat-int" backend.ai ps
check "session list (json)" '"name": "compat-int"' backend.ai --output json session list
sid=$(backend.ai --output json ps 2>/dev/null | python3 -c 'import json,sys; print([i["session_id"] for i in json.load(sys.stdin)["items"] if i["name"]=="compat-int"][0])')
check "session info" "compat-int" backend.ai session info "$sid"
sleep 2
check "session logs" "batch-out" backend.ai session logs compat-batch
check "session events" "session_(terminated|failure)" timeout 20 backend.ai session events compat-batch
check "session destroy" "Done|destroyed" backend.ai session destroy compat-int

check "vfolder list-hosts" "local:volume1" backend.ai vfolder list-hosts
check "vfolder create" 'is created' backend.ai vfolder create compat-f local:volume1
check "vfolder list" "compat-f" backend.ai vfolder list
check "vfolder info" 'compat-f' backend.ai vfolder info compat-f
check "vfolder mkdir" "Done" backend.ai vfolder mkdir compat-f sub1
head -c 5000000 /dev/urandom >blob.bin
check "vfolder upload" "Done" backend.ai vfolder upload compat-f blob.bin main.py
check "vfolder ls" "blob.bin" backend.ai vfolder ls compat-f
mkdir -p down && (cd down && check "vfolder download" "Done" backend.ai vfolder download compat-f blob.bin)
if cmp -s blob.bin down/blob.bin; then echo "PASS vfolder download is byte-identical"; else echo "FAIL vfolder download differs"; failures=$((failures + 1)); fi
check "vfolder rename-file" "Renamed" backend.ai vfolder rename-file compat-f main.py main2.py
out=$(echo y | timeout 60 backend.ai vfolder delete-file compat-f blob.bin 2>&1)
if grep -q "Done" <<<"$out"; then echo "PASS vfolder delete-file"; else echo "FAIL vfolder delete-file: $out"; failures=$((failures + 1)); fi
check "vfolder delete" "Deleted" backend.ai vfolder delete compat-f

check "admin agent list" "ALIVE" backend.ai admin agent list
check "admin user list" "admin@hangar.local" backend.ai admin user list
check "admin user add" "alice@example.com" backend.ai admin user add default alice@example.com alice-password-1 -u alice --description "data team" --sudo-session-enabled
check "admin user info" "Sudo Session Enabled +True" backend.ai admin user info --email alice@example.com
check "admin user add gives a keypair" "alice@example.com .*AKIA" backend.ai admin keypair list
key=$(timeout 60 backend.ai admin keypair add alice@example.com default 2>&1 | awk '$1 == "access_key" {print $2; exit}')
if [[ $key == AKIA* ]]; then echo "PASS admin keypair add"; else echo "FAIL admin keypair add: no access key printed"; failures=$((failures + 1)); fi
check "admin keypair update" "success" backend.ai admin keypair update "$key" --rate-limit 100 --is-admin false
check "admin keypair deactivate" "success" backend.ai admin keypair deactivate "$key"
check "admin keypair activate" "success" backend.ai admin keypair activate "$key"
check "admin keypair delete" "success" backend.ai admin keypair delete "$key"
check "admin user update" "success|updated" backend.ai admin user update alice@example.com --description "ml team"
check "admin user info (updated)" "alice@example.com" backend.ai admin user info --email alice@example.com
check "admin user delete" "success|deleted" backend.ai admin user delete alice@example.com
out=$(echo y | timeout 60 backend.ai admin user purge alice@example.com 2>&1)
if grep -Eq "success|purged" <<<"$out"; then echo "PASS admin user purge"; else echo "FAIL admin user purge: $out"; failures=$((failures + 1)); fi
out=$(timeout 60 backend.ai admin user list 2>&1)
if grep -q "admin@hangar.local" <<<"$out" && ! grep -q "alice@example.com" <<<"$out"; then echo "PASS admin user list (purged user gone)"; else echo "FAIL admin user list after purge: $out"; failures=$((failures + 1)); fi
check "admin keypair list" "$BACKEND_ACCESS_KEY" backend.ai admin keypair list
check "admin image list" "hangar/python" backend.ai admin image list
check "admin keypair-resource-policy list" "default" backend.ai admin keypair-resource-policy list
check "admin scaling-group list" "default" backend.ai admin scaling-group list
check "admin scaling-group info" "fifo" backend.ai admin scaling-group info default
check "admin keypair-resource-policy info" "default" backend.ai admin keypair-resource-policy info default

echo "$failures failure(s)"
[ "$failures" = 0 ]
