#!/usr/bin/env bash
# Builds the Python test image (the `python` recipe of Tools/images/build.sh) under the name
# given, default hangar/python:3.11-bookworm. Kept for the callers that name an image
# reference rather than a recipe (Tools/scripts/test.sh, `hangard dev`'s default image).
#   Tools/images/python-image.sh [IMAGE]
set -euo pipefail
HANGAR_IMAGE_AS=${1:-hangar/python:3.11-bookworm} exec "$(dirname "$0")/build.sh" python
