#!/usr/bin/env bash
# Builds the small Python test image from Debian packages (no registry needed) and imports
# it into the local podman (or docker) image store, with the labels Hangar's agent reads.
# Cached: an existing image with the same recipe hash is kept; the root filesystem tarball
# is kept in ~/.cache/hangar/images between runs.
#   Tools/images/python-image.sh [IMAGE]     (default hangar/python:3.11-bookworm)
set -euo pipefail
image=${1:-hangar/python:3.11-bookworm}
engine=${CONTAINER_ENGINE:-podman}
# python3-notebook: Jupyter Notebook 6.4 from Debian (with ipykernel and terminado for its
# terminals), so the image builds from Debian's mirror alone, reproducibly; dropbear and the
# OpenSSH sftp-server for `backend.ai ssh`/scp/sftp; tmux for the web terminal.
packages="python3,ca-certificates,python3-notebook,python3-ipykernel,dropbear-bin,openssh-sftp-server,tmux,procps,less,vim-tiny"
# The service definition of Jupyter (Backend.AI's format, read by the agent from the image).
# The token is off: the only way in is the session owner's authenticated app stream. Remote
# access is allowed because the Host header a browser sends through the webserver's app port
# names the webserver's host, not localhost.
jupyter_def='{
  "command": ["{runtime_path}", "-m", "notebook", "--no-browser", "--allow-root", "--ip", "127.0.0.1", "--port", "{ports[0]}",
              "--notebook-dir", "/home/work", "--NotebookApp.token=", "--NotebookApp.password=",
              "--NotebookApp.allow_origin=*", "--NotebookApp.disable_check_xsrf=True", "--NotebookApp.allow_remote_access=True"],
  "url_template": "{protocol}://{host}:{port}/",
  "allowed_arguments": ["--NotebookApp.default_url", "--NotebookApp.iopub_data_rate_limit"],
  "allowed_envs": ["JUPYTER_CONFIG_DIR"],
  "env": {"SHELL": "/bin/bash", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"}
}'
recipe_hash=$( (echo "$packages"; echo "$jupyter_def"; cat "$0") | sha256sum | cut -c1-16)
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
    # `work` is the login Backend.AI's clients use (ssh work@...); kernels run as the
    # container's root, so it names that same account (uid 0) with /home/work as its home.
    mmdebstrap --quiet --format=tar --variant=essential --include="$packages" \
        --customize-hook='mkdir -p "$1/etc/backend.ai/service-defs" "$1/home/work"' \
        --customize-hook="printf '%s\n' '$jupyter_def' > \"\$1/etc/backend.ai/service-defs/jupyter.json\"" \
        --customize-hook='echo "work:x:0:0:work:/home/work:/bin/bash" >> "$1/etc/passwd"; echo "work:*:19000:0:99999:7:::" >> "$1/etc/shadow"' \
        --customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
        bookworm "$tarball.tmp"
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
    --change 'LABEL ai.backend.service-ports=jupyter:http:8081' \
    --change "LABEL io.hangar.recipe=$recipe_hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/usr/bin/python3"]' \
    "$tarball" "$image" >/dev/null
echo "$image ready"
