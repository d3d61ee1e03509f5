#!/usr/bin/env bash
# Installs the Debian packages Hangar builds and tests against. Idempotent; needs root
# (or sudo). Swift itself must already be on PATH (swift.org toolchain).
#   --server : also what the tests run: PostgreSQL's server, podman with runc, mmdebstrap
#              (the test image is built from Debian packages), curl, btrfs-progs (the btrfs
#              storage tests make a loopback filesystem), lxcfs (a kernel sees its own memory in /proc),
#              chromium and chromium-driver (the web UI's tests drive a real browser),
#              docker-registry, apache2-utils (htpasswd), openssl and busybox-static (image
#              pulls are tested against a real registry with a small image made per run)
# node-xterm always: the webserver serves Debian's xterm.js to the web terminal.
set -euo pipefail
packages=(libltdl-dev libpq-dev libnuma-dev libseccomp-dev libsqlite3-dev zlib1g-dev pkg-config gcc make node-xterm)
[ "${1:-}" = "--server" ] && packages+=(postgresql podman runc uidmap slirp4netns mmdebstrap curl btrfs-progs lxcfs chromium chromium-driver
    docker-registry apache2-utils openssl busybox-static socat iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install the Swift 6.3 toolchain first" >&2; exit 1; }
