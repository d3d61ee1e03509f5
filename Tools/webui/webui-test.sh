#!/usr/bin/env bash
# The web UI in a real browser: headless Chromium driven by Selenium (PyPI, cached in
# ~/.cache/hangar/selenium-4.27.1) against a throwaway `hangard dev`, through its webserver.
# Makes a second user and a user whose logins get blocked, runs Tools/webui/webui_test.py, and
# keeps a screenshot of every page in $HANGAR_ARTIFACTS/webui (default /tmp/hangar-artifacts).
#   Tools/webui/webui-test.sh [ENGINE_SOCKET]     (default: $HANGAR_TEST_ENGINE_SOCKET)
set -uo pipefail
cd "$(dirname "$0")/../.."
socket=${1:-${HANGAR_TEST_ENGINE_SOCKET:-}}
image=${HANGAR_TEST_IMAGE:-hangar/python:3.11-bookworm}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hangar
selenium=$cache/selenium-4.27.1
client=$cache/backendai-client-23.9.10
if [ ! -x "$selenium/bin/python" ] || ! "$selenium/bin/python" -c "import selenium" 2>/dev/null; then
    python3 -m venv "$selenium" && "$selenium/bin/pip" install -q "selenium==4.27.1" || { echo "cannot install Selenium" >&2; exit 1; }
fi
[ -x "$client/bin/backend.ai" ] || { python3 -m venv "$client" && "$client/bin/pip" install -q "backend.ai-client==23.9.10" "yarl==1.9.4"; } || exit 1
artifacts=${HANGAR_ARTIFACTS:-/tmp/hangar-artifacts}/webui
rm -rf "$artifacts" && mkdir -p "$artifacts"
# shellcheck source=Tools/compat/dev-cluster.sh
source Tools/compat/dev-cluster.sh "$socket"
for _ in $(seq 50); do "$client/bin/backend.ai" admin agent list 2>/dev/null | grep -q ALIVE && break; sleep 0.3; done
# The launcher offers the images the cluster has; the session needs the test image.
"$client/bin/backend.ai" admin user add default webuser@example.com webuser-password -u webuser >/dev/null 2>&1 || { echo "cannot add the test user" >&2; exit 1; }
"$client/bin/backend.ai" admin user add default blocked@example.com blocked-password -u blocked >/dev/null 2>&1 || { echo "cannot add the test user" >&2; exit 1; }
echo "web UI at http://127.0.0.1:$wport (image $image); screenshots in $artifacts"
"$selenium/bin/python" Tools/webui/webui_test.py "http://127.0.0.1:$wport" "$HANGAR_WEB_USER" "$HANGAR_WEB_PASSWORD" \
    webuser@example.com webuser-password blocked@example.com "$artifacts" "$image"
