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
repo=$PWD
mkdir -p "$work/cwd" && cd "$work/cwd"
failures=0
results="$work/results"
# Every check is named after the client command it covers ("admin domain add" or
# "admin domain add (what)"): Tools/compat/compat_table.py matches them to COMPATIBILITY.md.
pass() { echo "PASS $1" | tee -a "$results"; }
fail() { echo "FAIL $1" | tee -a "$results"; failures=$((failures + 1)); }
check() {  # check NAME EXPECTED-REGEX COMMAND...
    local name=$1 expect=$2; shift 2
    local out
    out=$(timeout 120 "$@" 2>&1 </dev/null)
    if grep -Eq -- "$expect" <<<"$out"; then pass "$name"; else fail "$name: expected /$expect/, got:"; sed 's/^/    /' <<<"$out" | tail -15; fi
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
if cmp -s blob.bin down/blob.bin; then pass "vfolder download (byte-identical)"; else fail "vfolder download (byte-identical): the file differs"; fi
check "vfolder rename-file" "Renamed" backend.ai vfolder rename-file compat-f main.py main2.py
out=$(echo y | timeout 60 backend.ai vfolder rm compat-f blob.bin 2>&1)
if grep -q "Done" <<<"$out"; then pass "vfolder rm"; else fail "vfolder rm: $out"; fi
check "vfolder delete" "Deleted" backend.ai vfolder delete compat-f

check "admin agent list" "ALIVE" backend.ai admin agent list
check "admin user list" "admin@hangar.local" backend.ai admin user list
check "admin user add" "alice@example.com" backend.ai admin user add default alice@example.com alice-password-1 -u alice --description "data team" --sudo-session-enabled
check "admin user info" "Sudo Session Enabled +True" backend.ai admin user info --email alice@example.com
check "admin user add (gives a keypair)" "alice@example.com .*AKIA" backend.ai admin keypair list
key=$(timeout 60 backend.ai admin keypair add alice@example.com default 2>&1 | awk '$1 == "access_key" {print $2; exit}')
if [[ $key == AKIA* ]]; then pass "admin keypair add"; else fail "admin keypair add: no access key printed"; fi
check "admin keypair update" "success" backend.ai admin keypair update "$key" --rate-limit 100 --is-admin false
check "admin keypair deactivate" "success" backend.ai admin keypair deactivate "$key"
check "admin keypair activate" "success" backend.ai admin keypair activate "$key"
check "admin keypair delete" "success" backend.ai admin keypair delete "$key"
check "admin user update" "success|updated" backend.ai admin user update alice@example.com --description "ml team"
check "admin user info (updated)" "alice@example.com" backend.ai admin user info --email alice@example.com
check "admin user delete" "success|deleted" backend.ai admin user delete alice@example.com
out=$(echo y | timeout 60 backend.ai admin user purge alice@example.com 2>&1)
if grep -Eq "success|purged" <<<"$out"; then pass "admin user purge"; else fail "admin user purge: $out"; fi
out=$(timeout 60 backend.ai admin user list 2>&1)
if grep -q "admin@hangar.local" <<<"$out" && ! grep -q "alice@example.com" <<<"$out"; then pass "admin user list (purged user gone)"; else fail "admin user list (purged user gone): $out"; fi
check "admin keypair list" "$BACKEND_ACCESS_KEY" backend.ai admin keypair list
check "admin image list" "hangar/python" backend.ai admin image list
check "admin keypair-resource-policy list" "default" backend.ai admin keypair-resource-policy list
check "admin scaling-group list" "default" backend.ai admin scaling-group list
check "admin scaling-group info" "fifo" backend.ai admin scaling-group info default
check "admin keypair-resource-policy info" "default" backend.ai admin keypair-resource-policy info default


check "admin domain add" "ok +True" backend.ai admin domain add compat-dom -d "compat domain" --total-resource-slots '{"cpu": "4"}' --allowed-docker-registries local,cr.example.com
check "admin domain info" "compat domain" backend.ai admin domain info compat-dom
check "admin domain list" "compat-dom" backend.ai admin domain list
check "admin domain update" "ok +True" backend.ai admin domain update compat-dom --description "renamed domain" --new-name compat-dom2
check "admin domain info (renamed, updated)" "renamed domain" backend.ai admin domain info compat-dom2
check "admin group add" "ok +True" backend.ai admin group add compat-dom2 compat-team -d "compat team"
gid=$(timeout 60 backend.ai --output json admin group info compat-team 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d.get("items") or [d])[0]["id"])' 2>/dev/null)
check "admin group info" "compat team" backend.ai admin group info "$gid"
check "admin group list" "compat-team" backend.ai admin group list --domain-name compat-dom2
check "admin group update" "ok +True" backend.ai admin group update "$gid" --description "ml team"
check "admin group info (updated)" "ml team" backend.ai admin group info "$gid"
backend.ai admin user add compat-dom2 carol@example.com carol-password-1 -u carol >/dev/null 2>&1
cuid=$(timeout 60 backend.ai --output json admin user info --email carol@example.com 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d.get("items") or [d])[0]["uuid"])' 2>/dev/null)
check "admin group add-users" "ok +True" backend.ai admin group add-users "$gid" "$cuid"
check "admin user info (group membership)" "compat-team" backend.ai admin user info --email carol@example.com
check "admin group remove-users" "ok +True" backend.ai admin group remove-users "$gid" "$cuid"
check "admin group delete" "ok +True" backend.ai admin group delete "$gid"
check "admin group info (deleted is inactive)" "False" backend.ai admin group info "$gid"
out=$(echo y | timeout 60 backend.ai admin group purge "$gid" 2>&1)
if grep -q "True" <<<"$out"; then pass "admin group purge"; else fail "admin group purge: $out"; fi
check "admin domain purge (refused while users remain)" "still has 1 user" bash -c 'echo y | backend.ai admin domain purge compat-dom2'
backend.ai admin user delete carol@example.com >/dev/null 2>&1; echo y | backend.ai admin user purge carol@example.com >/dev/null 2>&1
check "admin domain delete" "ok +True" backend.ai admin domain delete compat-dom2
check "admin domain info (deleted is inactive)" "False" backend.ai admin domain info compat-dom2
out=$(echo y | timeout 60 backend.ai admin domain purge compat-dom2 2>&1)
if grep -q "True" <<<"$out"; then pass "admin domain purge"; else fail "admin domain purge: $out"; fi
out=$(timeout 60 backend.ai admin domain list 2>&1)
if grep -q "default" <<<"$out" && ! grep -q "compat-dom2" <<<"$out"; then pass "admin domain list (purged domain gone)"; else fail "admin domain list (purged domain gone): $out"; fi

# Features Hangar does not have answer so, naming the command.
check "admin etcd get" "admin etcd get. is not supported by Hangar" backend.ai admin etcd get config/x
check "admin etcd set" "admin etcd set. is not supported by Hangar" backend.ai admin etcd set config/x 1
check "admin etcd delete" "admin etcd delete. is not supported by Hangar" backend.ai admin etcd delete config/x
check "admin license show" "admin license show. is not supported by Hangar" backend.ai admin license show
check "admin watcher status" "admin watcher status. is not supported by Hangar" backend.ai admin watcher status i-agent
check "admin watcher agent-start" "admin watcher agent-start. is not supported by Hangar" backend.ai admin watcher agent-start i-agent
check "admin watcher agent-stop" "admin watcher agent-stop. is not supported by Hangar" backend.ai admin watcher agent-stop i-agent
check "admin watcher agent-restart" "admin watcher agent-restart. is not supported by Hangar" backend.ai admin watcher agent-restart i-agent
check "admin vfolder mount-host" "admin vfolder mount-host. is not supported by Hangar" backend.ai admin vfolder mount-host /mnt/x x
check "admin vfolder umount-host" "admin vfolder umount-host. is not supported by Hangar" backend.ai admin vfolder umount-host x
check "admin vfolder get-fstab-contents" "admin vfolder get-fstab-contents. is not supported by Hangar" backend.ai admin vfolder get-fstab-contents
check "service list" "service list. is not supported by Hangar" backend.ai service list
check "service create" "service create. is not supported by Hangar" backend.ai service create "$image" some-model 1
svc=0b2c5f1e-0000-4000-8000-000000000000
# The other service commands first look the service up (GET /services), which answers so.
check "service info" "service. is not supported by Hangar" backend.ai service info $svc
check "service get-endpoint" "service. is not supported by Hangar" backend.ai service get-endpoint $svc
check "service rm" "service. is not supported by Hangar" backend.ai service rm $svc
check "service sync" "service. is not supported by Hangar" backend.ai service sync $svc
check "service scale" "service. is not supported by Hangar" backend.ai service scale $svc 2
check "service generate-token" "service. is not supported by Hangar" backend.ai service generate-token $svc 10
check "service update-traffic-ratio" "service. is not supported by Hangar" backend.ai service update-traffic-ratio $svc $svc 0.5
check "service downscale-route (the client fails before sending anything)" "unexpected keyword argument 'ratio'" backend.ai service downscale-route $svc $svc 1

# COMPATIBILITY.md, the client's commands and the checks of this run must agree.
"$venv/bin/python" "$repo/Tools/compat/compat_table.py" check "$results" || failures=$((failures + 1))
echo "$failures failure(s)"
[ "$failures" = 0 ]
