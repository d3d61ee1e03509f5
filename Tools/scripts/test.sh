#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds every product (plugins included: the
# tests load them as .so files next to the test runner), starts a throwaway PostgreSQL on a
# loopback port (the manager tests run on SQLite and on PostgreSQL), runs every test, and
# tears PostgreSQL down again.
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/install-deps.sh --server
swift build --build-tests
pgdir=$(mktemp -d /tmp/hangar-test-pg.XXXXXX)
trap 'Tools/scripts/postgres.sh stop "$pgdir"' EXIT
port=$((55000 + RANDOM % 5000))
HANGAR_TEST_POSTGRES_URL=$(Tools/scripts/postgres.sh start "$pgdir" "$port")
export HANGAR_TEST_POSTGRES_URL
swift test --skip-build
