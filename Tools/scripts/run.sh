#!/usr/bin/env bash
# The main job, on a fresh machine: install what Hangar needs (build libraries, podman with
# runc, mmdebstrap for the default image), build everything (host, CLIs, runner and every
# bundled plugin), check the bundled plugins, then start an all-in-one cluster with
# `hangard dev` (manager + agent on SQLite in ~/.local/share/hangar/dev, the default Python
# image built on first start). Ctrl-C stops it; running it again resumes with all state.
#   Tools/scripts/run.sh [hangard dev options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/install-deps.sh --server
swift build
bin=$(swift build --show-bin-path)
for plugin in $("$bin/hangar-plugin" list --json | python3 -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin) if r.get("name")))'); do
    # btrfs needs a btrfs volume to be verified on: hangar-plugin verify btrfs --config CFG
    [ "$plugin" = btrfs ] && { echo "plugin btrfs: needs a btrfs volume (hangar-plugin verify btrfs --config ...)"; continue; }
    "$bin/hangar-plugin" verify "$plugin" | tail -n 1 | sed "s/^/plugin $plugin: /"
done
echo
echo "In another shell:  export PATH=$bin:\$PATH; hangar run hangar/python:3.11-bookworm -c 'print(6*7)'"
echo
exec "$bin/hangard" dev "$@"
