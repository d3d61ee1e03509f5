#!/usr/bin/env bash
# The whole test suite: installs build dependencies, builds every product (plugins
# included: the tests load them as .so files next to the test runner), and runs the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
