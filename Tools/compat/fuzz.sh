#!/usr/bin/env bash
# API fuzzing: Schemathesis against a fresh `hangard dev`, over /openapi.json (REST) and the
# GraphQL schema (fetched by a signed introspection query), every request signed with the
# superadmin keypair (schemathesis_hooks.py). A bounded number of cases per operation; any
# HTTP 5xx fails the run. (GraphQL answers client mistakes with 200 and `errors`, by design.)
#   Tools/compat/fuzz.sh [ENGINE_SOCKET] [EXAMPLES, default 25]
set -uo pipefail
cd "$(dirname "$0")/../.."
socket=${1:-${HANGAR_TEST_ENGINE_SOCKET:-}}
examples=${2:-25}
venv=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/schemathesis-4.32.5
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis==4.32.5" || { echo "cannot install schemathesis" >&2; exit 1; }
fi
# shellcheck source=Tools/compat/dev-cluster.sh
source Tools/compat/dev-cluster.sh "$socket"
export SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/Tools/compat"
status=0
# Event streams never end by themselves, so they are left out of fuzzing (tests cover them).
"$venv/bin/schemathesis" run "http://127.0.0.1:$mport/openapi.json" --checks not_a_server_error --max-examples "$examples" \
    --exclude-path-regex '/stream/.*|/events/session' --no-color >"$work/rest.log" 2>&1 || status=1
tail -n 8 "$work/rest.log"
[ $status = 0 ] || sed -n '/FAILURES/,/WARNINGS/p' "$work/rest.log"
if "$venv/bin/python" Tools/compat/graphql_schema.py "http://127.0.0.1:$mport/admin/gql" "$work/schema.graphql"; then
    "$venv/bin/schemathesis" run "$work/schema.graphql" -u "http://127.0.0.1:$mport/admin/gql" --checks no_http_5xx --max-examples "$examples" \
        --no-color >"$work/gql.log" 2>&1 || status=1
    tail -n 8 "$work/gql.log"
    grep -q "FAILURES" "$work/gql.log" && sed -n '/FAILURES/,/WARNINGS/p' "$work/gql.log"
else
    status=1
fi
exit $status
