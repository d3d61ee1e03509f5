#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds every product (plugins included: the
# tests load them as .so files next to the test runner), starts the services the tests use —
# a throwaway PostgreSQL on a loopback port (manager tests run on SQLite and PostgreSQL), a
# container registry with TLS and logins (image pulls), and podman's Docker-compatible
# service (agent tests run real containers; it is told the registry is insecure) — builds or reuses
# the Python test image, runs every test, runs the official Backend.AI client's commands
# against `hangard dev` and fuzzes its APIs with Schemathesis (Tools/compat), and stops the
# services again. The web UI is tested in headless Chromium (Tools/webui).
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/install-deps.sh --server
export CONTAINERS_CONF="$PWD/Tools/scripts/containers.conf"
# The runner's embedded drivers must be generated from their sources (Tools/scripts/embed-runner-driver.sh).
Tools/scripts/embed-runner-driver.sh --check
# The kernel images the tests run (Debian packages and PyPI wheels, cached by recipe hash) are
# built while Swift compiles: mostly downloads and unpacking against the compiler's CPU.
imagelog=$(mktemp /tmp/hangar-images.XXXXXX)
Tools/images/build.sh python python-pytorch python-tensorflow r nodejs cpp java >"$imagelog" 2>&1 &
images_pid=$!
# Build once; a compiler warning in Hangar's own code (not in dependencies) fails the run.
buildlog=$(mktemp /tmp/hangar-build.XXXXXX)
swift build --build-tests 2>&1 | tee "$buildlog"
if grep -E "^$PWD/(Host|Tools|Tests|Plugins|PluginAPI)/[^:]+:[0-9]+:[0-9]+: warning:" "$buildlog" | sort -u; then
    echo "compiler warnings in Hangar's own targets (listed above): fix them" >&2
    exit 1
fi
rm -f "$buildlog"
if ! wait "$images_pid"; then
    cat "$imagelog" >&2
    echo "building the kernel images failed (above)" >&2
    exit 1
fi
cat "$imagelog"
rm -f "$imagelog"
pgdir=$(mktemp -d /tmp/hangar-test-pg.XXXXXX)
enginedir=$(mktemp -d /tmp/hangar-test-engine.XXXXXX)
registrydir=$(mktemp -d /tmp/hangar-test-registry.XXXXXX)
trap 'Tools/scripts/postgres.sh stop "$pgdir"; Tools/scripts/podman-service.sh stop "$enginedir"; Tools/scripts/registry.sh stop "$registrydir"' EXIT
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(freeport)
HANGAR_TEST_POSTGRES_URL=$(Tools/scripts/postgres.sh start "$pgdir" "$port")
# The registry first: its export lines name it insecure to the podman service started next.
eval "$(Tools/scripts/registry.sh start "$registrydir" "$(freeport)")"
HANGAR_TEST_ENGINE_SOCKET=$(Tools/scripts/podman-service.sh start "$enginedir")
export HANGAR_TEST_POSTGRES_URL HANGAR_TEST_ENGINE_SOCKET
export HANGAR_TEST_IMAGE=hangar/python:3.11-bookworm
swift test --skip-build
# The web UI in headless Chromium against `hangard dev` (screenshots in /tmp/hangar-artifacts/webui).
Tools/webui/webui-test.sh "$HANGAR_TEST_ENGINE_SOCKET"
# The official Backend.AI client, unchanged, against `hangard dev` on the same engine: once on
# SQLite, once on a fresh PostgreSQL database.
Tools/compat/official-client.sh "$HANGAR_TEST_ENGINE_SOCKET"
compatdb="hangar_compat_$$"
psql -q "$HANGAR_TEST_POSTGRES_URL" -c "CREATE DATABASE $compatdb"
HANGAR_COMPAT_DATABASE="${HANGAR_TEST_POSTGRES_URL%/*}/$compatdb" Tools/compat/official-client.sh "$HANGAR_TEST_ENGINE_SOCKET"
# Schemathesis over the REST API (/openapi.json) and GraphQL: no request may cause a 5xx.
Tools/compat/fuzz.sh "$HANGAR_TEST_ENGINE_SOCKET" 25
# The control plane under SIGKILL (Tools/chaos/chaos.py): 3 managers on PostgreSQL, 2 agents,
# 100 clients for 60 s while managers, an agent, the leader and the storage proxy are killed.
Tools/scripts/chaos --managers 3 --agents 2 --clients 100 --duration 60 --kill-every 5
# Several hosts on one machine (Tools/scripts/cluster): network namespaces with their own engine
# and agent each, sessions placed on each host, a vfolder shared across hosts, clean teardown.
Tools/scripts/cluster-test
