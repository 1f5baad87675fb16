#!/usr/bin/env bash
# Wheels of what InsPose needs beyond torch / torchvision, for a GPU machine that has Python with
# torch but no package registry (the workplace's device machines: Python 3.12, x86-64, manylinux).
# Run here, where pip reaches the registry; then carry DEST to that machine and run
# tools/device_check.sh there, which installs them (pip --no-index --target) and runs the checks.
#
#   bash tools/device_wheels.sh [DEST=.whl] [PYTHON_VERSION=3.12]
#
# The pure-Python packages (detectron2 v0.6, patched as tools/install_detectron2.sh does, fvcore,
# iopath, yacs, omegaconf, hydra-core, antlr4, termcolor) are built as py3-none-any wheels with this
# checkout's venv; pycocotools, compiled, is downloaded for PYTHON_VERSION. The versions are the
# ones installed in .venv (make setup's: the tested ones). Already on the device image and left out:
# numpy, Pillow, opencv, pyyaml, tabulate, tqdm, portalocker, cloudpickle, matplotlib, tensorboard,
# pytest, onnx, onnxruntime (KINDS.md of the device tool lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${1:-.whl}
pyver=${2:-3.12}
py=.venv/bin/python
[ -x "$py" ] || { echo "device_wheels: $py missing; run make setup first"; exit 1; }
mkdir -p "$dest"

pinned() {  # NAME... -> NAME==VERSION as installed in .venv
    "$py" -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "$@"
}
read -r -a PURE <<< "$(pinned fvcore iopath yacs omegaconf hydra-core antlr4-python3-runtime termcolor)"
read -r -a COMPILED <<< "$(pinned pycocotools)"

echo "[device_wheels 1/3] detectron2 v0.6 (patched sdist) as a wheel"
DETECTRON2_WHEEL_DIR="$dest" bash tools/install_detectron2.sh "$py"
echo "[device_wheels 2/3] pure-Python wheels: ${PURE[*]}"
"$py" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$dest" "${PURE[@]}"
echo "[device_wheels 3/3] compiled wheels for CPython $pyver manylinux x86-64: ${COMPILED[*]}"
"$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$pyver" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --dest "$dest" "${COMPILED[@]}"

impure=$(ls "$dest"/*.whl | grep -v -e '-none-any\.whl$' -e "-cp${pyver/./}-" || true)
[ -z "$impure" ] || { echo "device_wheels: wheels for another Python in $dest: $impure"; exit 1; }
du -sh "$dest"; ls "$dest"
