#!/usr/bin/env bash
# Installs detectron2 into the virtual environment whose python is $1 (torch must already be there).
#
# Default: the package registry's `pb1-detectron2==0.6` sdist, which holds upstream detectron2 v0.6's
# Python files but not its C++/CUDA sources while its setup.py still asks to compile them. We unpack
# it, empty its extension list and install it without build isolation. InsPose needs none of the
# compiled ops (inspose/compat.py stands in for `detectron2._C`).
#
# DETECTRON2_SOURCE overrides the default with upstream detectron2 (what GPU users want):
#   DETECTRON2_SOURCE=/path/to/detectron2-clone     a local clone, compiled against the venv's torch
#   DETECTRON2_SOURCE='git+https://github.com/facebookresearch/detectron2.git'   any pip requirement
#
# DETECTRON2_WHEEL_DIR=DIR builds the patched v0.6 as a pure-Python wheel into DIR instead of
# installing it (tools/device_wheels.sh: for a machine whose Python has torch but no registry).
set -euo pipefail

python=${1:?usage: install_detectron2.sh PATH/TO/venv/bin/python}
wheel_dir=${DETECTRON2_WHEEL_DIR:-}

if [ -z "$wheel_dir" ] && "$python" -c "import detectron2" 2>/dev/null; then
    echo "[install_detectron2] detectron2 already installed: $("$python" -c 'import detectron2; print(detectron2.__version__, detectron2.__file__)')"
    exit 0
fi

if [ -n "${DETECTRON2_SOURCE:-}" ]; then
    echo "[install_detectron2] installing upstream detectron2 from DETECTRON2_SOURCE=$DETECTRON2_SOURCE"
    if [ -d "$DETECTRON2_SOURCE" ]; then
        "$python" -m pip install --no-build-isolation "$DETECTRON2_SOURCE"
    else
        "$python" -m pip install --no-build-isolation "$DETECTRON2_SOURCE"
    fi
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[install_detectron2] 1/3 downloading the pb1-detectron2==0.6 sdist"
"$python" -m pip download --quiet --no-deps --no-build-isolation --no-binary :all: \
    --dest "$work" pb1-detectron2==0.6
archive=$(ls "$work"/pb1*detectron2-0.6.tar.gz)
tar -xzf "$archive" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)

echo "[install_detectron2] 2/3 removing the C++/CUDA extension from $src/setup.py (its sources are not shipped)"
"$python" - "$src/setup.py" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
patched, count = re.subn(r"ext_modules\s*=\s*get_extensions\(\)", "ext_modules=[]", text)
if count != 1:
    sys.exit(f"{path}: expected one 'ext_modules=get_extensions()', found {count}; the sdist changed")
open(path, "w").write(patched)
PY

if [ -n "$wheel_dir" ]; then
    echo "[install_detectron2] 3/3 pip wheel --no-deps --no-build-isolation $src -> $wheel_dir"
    "$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$wheel_dir" "$src"
    exit 0
fi
echo "[install_detectron2] 3/3 pip install --no-build-isolation $src"
"$python" -m pip install --quiet --no-build-isolation "$src"
echo "[install_detectron2] done: $("$python" -c 'import sys; sys.modules.setdefault("detectron2._C", None); import detectron2; print(detectron2.__version__)')"
