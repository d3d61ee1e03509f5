#!/usr/bin/env bash
# Builds Hangar's kernel images from Debian packages (mmdebstrap, Debian's mirror only) plus
# PyPI wheels where a recipe names some, and imports them into the local podman (or docker)
# image store with the labels Backend.AI's agents read. A running `hangard dev` sees a new
# image with its agent's next heartbeat; a stopped one on its next start.
#
#   Tools/images/build.sh [NAME...|all]    build these (default: python)
#   Tools/images/build.sh --list           the recipes, their image names and whether built
#   Tools/images/build.sh --image NAME     print the image reference a recipe builds
#   Tools/images/build.sh --recipe IMAGE   print the recipe that builds an image reference
#
# Each recipe is cached twice, by the hash of its text (with this script's common parts): an
# image already labelled with that hash is kept, and the root filesystem tarball stays in
# ~/.cache/hangar/images between runs. HANGAR_IMAGE_AS=REF imports one recipe under another
# reference (Tools/images/python-image.sh uses it).
#
# Every image gets what the interactive-access work needs: tmux (web terminal), dropbear and
# the OpenSSH sftp-server (ssh, scp, sftp), and a `work` login (uid 0, home /home/work).
# Runtimes: `ai.backend.runtime-type` tells hangar-runner which interpreter keeps a query's
# state (python, r, nodejs) or how a query is compiled and run (cpp, java); see
# Host/Runner/README.md.
set -euo pipefail
engine=${CONTAINER_ENGINE:-podman}
here=$(cd "$(dirname "$0")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/hangar/images
common_packages="ca-certificates,dropbear-bin,openssh-sftp-server,tmux,procps,less,vim-tiny"

# Jupyter Notebook from Debian (6.4), token off: the only way in is the session owner's
# authenticated app stream. Remote access is allowed because the Host header a browser sends
# through the webserver's app port names the webserver's host, not localhost.
jupyter_def='{
  "command": ["/usr/bin/python3", "-m", "notebook", "--no-browser", "--allow-root", "--ip", "127.0.0.1", "--port", "{ports[0]}",
              "--notebook-dir", "/home/work", "--NotebookApp.token=", "--NotebookApp.password=",
              "--NotebookApp.allow_origin=*", "--NotebookApp.disable_check_xsrf=True", "--NotebookApp.allow_remote_access=True"],
  "url_template": "{protocol}://{host}:{port}/",
  "allowed_arguments": ["--NotebookApp.default_url", "--NotebookApp.iopub_data_rate_limit"],
  "allowed_envs": ["JUPYTER_CONFIG_DIR"],
  "env": {"SHELL": "/bin/bash", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"}
}'

# A recipe sets: image, packages (Debian, comma-separated), runtime, runtime_path, min_mem,
# and optionally service_ports, jupyter (1: install the service definition), pip (wheels,
# space-separated, installed with the image's own pip), hook (a shell command run in the root
# filesystem as the last step, `$1` being its path), labels (extra LABEL lines), size (what
# to expect, for the progress line).
recipe_python() {
    image=hangar/python:3.11-bookworm
    packages="python3,python3-notebook,python3-ipykernel,python3-numpy,python3-pandas,python3-matplotlib"
    runtime=python runtime_path=/usr/bin/python3 min_mem=64m
    service_ports="jupyter:http:8081" jupyter=1 size="about 1 minute"
}
recipe_python_pytorch() {
    # PyPI's torch wheels for Linux are the CUDA build (with 2-3 GB of nvidia-* wheels);
    # Debian's python3-torch is the CPU build, from the mirror this machine reaches.
    image=hangar/python-pytorch:1.13-bookworm
    packages="python3,python3-notebook,python3-ipykernel,python3-numpy,python3-torch"
    runtime=python runtime_path=/usr/bin/python3 min_mem=512m
    service_ports="jupyter:http:8081" jupyter=1 size="about 2 minutes"
}
recipe_python_pytorch_cuda() {
    # The CUDA build from PyPI (torch pulls the nvidia-* runtime wheels it needs); builds
    # wherever PyPI is reachable, about 6 GB. Placed only on agents with cuda.device.
    image=hangar/python-pytorch:2.5-cuda12-bookworm
    packages="python3,python3-pip,python3-notebook,python3-ipykernel"
    pip="torch==2.5.1"
    runtime=python runtime_path=/usr/bin/python3 min_mem=1g
    service_ports="jupyter:http:8081" jupyter=1 size="about 6 GB of wheels"
    labels="ai.backend.accelerators=cuda
ai.backend.resource.min.cuda.device=1"
}
recipe_python_tensorflow() {
    image=hangar/python-tensorflow:2.15-bookworm
    packages="python3,python3-pip,python3-notebook,python3-ipykernel"
    pip="tensorflow-cpu==2.15.1"
    runtime=python runtime_path=/usr/bin/python3 min_mem=1g
    service_ports="jupyter:http:8081" jupyter=1 size="about 600 MB of wheels"
}
recipe_r() {
    # IRkernel from Debian, registered with Jupyter so the notebook offers R.
    image=hangar/r:4.2-bookworm
    packages="r-base-core,r-cran-irkernel,r-cran-ggplot2,python3-notebook"
    runtime=r runtime_path=/usr/bin/Rscript min_mem=256m
    service_ports="jupyter:http:8081" jupyter=1 size="about 2 minutes"
    # The kernel spec IRkernel::installspec() would write (it needs the jupyter command,
    # which Debian's notebook package does not bring).
    hook='mkdir -p "$1/usr/local/share/jupyter/kernels/ir"; printf "%s\n" "{\"argv\": [\"/usr/lib/R/bin/R\", \"--slave\", \"-e\", \"IRkernel::main()\", \"--args\", \"{connection_file}\"], \"display_name\": \"R\", \"language\": \"R\"}" > "$1/usr/local/share/jupyter/kernels/ir/kernel.json"'
}
recipe_nodejs() {
    image=hangar/nodejs:18-bookworm
    packages="nodejs,npm"
    runtime=nodejs runtime_path=/usr/bin/node min_mem=128m size="about 1 minute"
}
recipe_cpp() {
    image=hangar/cpp:12-bookworm
    packages="gcc,g++,make,cmake,libc6-dev"
    runtime=cpp runtime_path=/usr/bin/g++ min_mem=256m size="about 1 minute"
}
recipe_java() {
    image=hangar/java:17-bookworm
    packages="openjdk-17-jdk-headless"
    runtime=java runtime_path=/usr/bin/java min_mem=512m size="about 2 minutes"
}

recipes="python python-pytorch python-pytorch-cuda python-tensorflow r nodejs cpp java"
# `all` is what builds here without an accelerator's wheels.
all="python python-pytorch python-tensorflow r nodejs cpp java"

load() {
    local name=$1
    image="" packages="" runtime="" runtime_path="" min_mem="" service_ports="" jupyter=0 pip="" hook="" labels="" size="" wheels=""
    case " $recipes " in *" $name "*) ;; *) echo "unknown image recipe '$name'; the recipes are: $recipes (or all)" >&2; exit 2 ;; esac
    "recipe_${name//-/_}"
    [ -z "${HANGAR_IMAGE_AS:-}" ] || image=$HANGAR_IMAGE_AS
    # What decides the image's bytes: this recipe's text and the common parts.
    recipe_hash=$( (declare -f "recipe_${name//-/_}"; echo "$common_packages"; echo "$jupyter_def"; declare -f fetch_wheels build_rootfs import_image) | sha256sum | cut -c1-16)
}

built_hash() { $engine image inspect "$1" --format '{{ index .Config.Labels "io.hangar.recipe" }}' 2>/dev/null || true; }

# One line that keeps time while a long step runs (redrawn on a terminal, plain otherwise).
progress() {
    local label=$1; shift
    local start=$SECONDS log
    log=$(mktemp /tmp/hangar-image.XXXXXX)
    "$@" >"$log" 2>&1 &
    local pid=$!
    if [ -t 2 ]; then
        while kill -0 "$pid" 2>/dev/null; do
            printf '\r  %s … %ds ' "$label" $((SECONDS - start)) >&2
            sleep 1
        done
        printf '\r\033[K' >&2
    fi
    if ! wait "$pid"; then
        echo "  $label failed after $((SECONDS - start)) s; its last lines:" >&2
        tail -n 25 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    echo "  $label: $((SECONDS - start)) s" >&2
}

fetch_wheels() {
    command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || { echo "python3 -m pip is needed to fetch wheels" >&2; return 1; }
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --disable-pip-version-check --no-cache-dir --dest "$1" --only-binary=:all: \
        --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any $pip
}

build_rootfs() {
    local out=$1
    local hooks=(
        --customize-hook='mkdir -p "$1/etc/backend.ai/service-defs" "$1/home/work"'
        # `work` is the login Backend.AI's clients use (ssh work@...); kernels run as the
        # container's root, so it names that same account with /home/work as its home.
        --customize-hook='echo "work:x:0:0:work:/home/work:/bin/bash" >> "$1/etc/passwd"; echo "work:*:19000:0:99999:7:::" >> "$1/etc/shadow"'
    )
    [ "$jupyter" != 1 ] || hooks+=(--customize-hook="printf '%s\n' '$jupyter_def' > \"\$1/etc/backend.ai/service-defs/jupyter.json\"")
    # Wheels are fetched here (this machine's pip, index and certificates) for the image's
    # Python (bookworm: CPython 3.11, x86_64), then installed with the image's own pip from
    # that folder only. Debian marks its Python as externally managed, which a kernel image may
    # override.
    [ -z "$pip" ] || hooks+=(--customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp \"$wheels\"/*.whl \"\$1/tmp/wheels/\" && chroot \"\$1\" python3 -m pip install --no-index --find-links /tmp/wheels --no-cache-dir --break-system-packages --progress-bar off $pip && rm -rf \"\$1/tmp/wheels\"")
    [ -z "$hook" ] || hooks+=(--customize-hook="$hook")
    hooks+=(--customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"* "$1/root/.cache"')
    mmdebstrap --quiet --format=tar --variant=essential --include="$common_packages,$packages" "${hooks[@]}" bookworm "$out"
}

import_image() {
    local tarball=$1
    local changes=(
        --change 'LABEL ai.backend.kernelspec=1'
        --change 'LABEL ai.backend.base-distro=debian12'
        --change "LABEL ai.backend.runtime-type=$runtime"
        --change "LABEL ai.backend.runtime-path=$runtime_path"
        --change 'LABEL ai.backend.resource.min.cpu=1'
        --change "LABEL ai.backend.resource.min.mem=$min_mem"
        --change "LABEL io.hangar.recipe=$recipe_hash"
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        --change "CMD [\"$runtime_path\"]"
    )
    [ -z "$service_ports" ] || changes+=(--change "LABEL ai.backend.service-ports=$service_ports")
    while IFS= read -r label; do
        [ -z "$label" ] || changes+=(--change "LABEL $label")
    done <<<"$labels"
    $engine import "${changes[@]}" "$tarball" "$image" >/dev/null
}

build() {
    local name=$1
    load "$name"
    if [ "$(built_hash "$image")" = "$recipe_hash" ]; then
        echo "$name: $image is up to date (recipe $recipe_hash)"
        return 0
    fi
    mkdir -p "$cache"
    local tarball="$cache/$name-bookworm-$recipe_hash.tar"
    echo "$name: building $image${size:+ ($size)}"
    if [ ! -s "$tarball" ]; then
        command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; return 1; }
        rm -f "$tarball.tmp"
        wheels="$cache/wheels-$name-$recipe_hash"
        if [ -n "$pip" ] && [ ! -e "$wheels/.complete" ]; then
            mkdir -p "$wheels"
            progress "wheels from PyPI ($pip)" fetch_wheels "$wheels" || return 1
            touch "$wheels/.complete"
        fi
        progress "root filesystem (mmdebstrap${pip:+ and pip})" build_rootfs "$tarball.tmp" || { rm -f "$tarball.tmp"; return 1; }
        mv "$tarball.tmp" "$tarball"
    fi
    progress "import into $engine" import_image "$tarball"
    echo "$name: $image ready"
}

case "${1:-}" in
--list)
    for name in $recipes; do
        load "$name"
        state="not built"
        case "$(built_hash "$image")" in "$recipe_hash") state="built" ;; "") ;; *) state="built from an older recipe" ;; esac
        printf '%-20s %-42s %-8s %s\n' "$name" "$image" "$runtime" "$state"
    done
    exit 0 ;;
--image)
    load "${2:?--image needs a recipe name}"
    echo "$image"
    exit 0 ;;
--recipe)
    # The recipe that builds an image reference (with or without podman's localhost/).
    wanted=${2:?--recipe needs an image reference}
    wanted=${wanted#localhost/}
    for name in $recipes; do
        load "$name"
        [ "$image" != "$wanted" ] || { echo "$name"; exit 0; }
    done
    exit 1 ;;
-h|--help)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
esac
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(python)
[ "${names[*]}" != all ] || read -r -a names <<<"$all"
[ ${#names[@]} -eq 1 ] || [ -z "${HANGAR_IMAGE_AS:-}" ] || { echo "HANGAR_IMAGE_AS names one image: build one recipe with it" >&2; exit 2; }
failed=()
for name in "${names[@]}"; do
    build "$name" || failed+=("$name")
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
