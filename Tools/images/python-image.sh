#!/usr/bin/env bash
# Builds the small Python test image from Debian packages (no registry needed) and imports
# it into the local podman (or docker) image store, with the labels Hangar's agent reads.
# Cached: an existing image with the same recipe hash is kept; the root filesystem tarball
# is kept in ~/.cache/hangar/images between runs.
#   Tools/images/python-image.sh [IMAGE]     (default hangar/python:3.11-bookworm)
set -euo pipefail
image=${1:-hangar/python:3.11-bookworm}
engine=${CONTAINER_ENGINE:-podman}
packages="python3,ca-certificates"
recipe_hash=$( (echo "$packages"; cat "$0") | sha256sum | cut -c1-16)
if $engine image inspect "$image" --format '{{ index .Config.Labels "io.hangar.recipe" }}' 2>/dev/null | grep -qx "$recipe_hash"; then
    echo "$image is up to date (recipe $recipe_hash)"
    exit 0
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/images
mkdir -p "$cache"
tarball="$cache/python-bookworm-$recipe_hash.tar"
if [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
    echo "building the root filesystem with mmdebstrap (about a minute) ..."
    mmdebstrap --quiet --format=tar --variant=essential --include="$packages" bookworm "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
fi
echo "importing $image ..."
$engine import \
    --change 'LABEL ai.backend.kernelspec=1' \
    --change 'LABEL ai.backend.base-distro=debian12' \
    --change 'LABEL ai.backend.runtime-type=python' \
    --change 'LABEL ai.backend.runtime-path=/usr/bin/python3' \
    --change 'LABEL ai.backend.resource.min.cpu=1' \
    --change 'LABEL ai.backend.resource.min.mem=64m' \
    --change "LABEL io.hangar.recipe=$recipe_hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/usr/bin/python3"]' \
    "$tarball" "$image" >/dev/null
echo "$image ready"
