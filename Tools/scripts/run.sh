#!/usr/bin/env bash
# The main job, on a fresh machine: install what the build needs, build everything (host,
# CLIs and every bundled plugin), then list and verify the bundled plugins.
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/install-deps.sh
swift build
bin=$(swift build --show-bin-path)
"$bin/hangar-plugin" list
for plugin in $("$bin/hangar-plugin" list --json | python3 -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin) if r.get("name")))'); do
    "$bin/hangar-plugin" verify "$plugin" | tail -n 1 | sed "s/^/$plugin: /"
done
echo
echo "Try: $bin/hangar-plugin inspect mock --json"
echo "     $bin/hangar-plugin devices --config Tools/examples/agent-plugins.toml"
