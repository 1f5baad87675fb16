#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of a few minutes: the CPU / CUDA parity tests (they
# skip on the CPU-only build machines) and the GPU benchmark tables. For a machine that has Python
# with torch / torchvision and CUDA but maybe no package registry:
#
#   bash tools/device_wheels.sh .whl        # where pip reaches the registry (make setup first)
#   bash tools/device_check.sh              # on the GPU machine, .whl/ copied beside the checkout
#
# The workplace's device tool: run `bash tools/device_check.sh` with carry [".whl"] and timeout_s
# 600 (the steps' limits add up to 540 s; OUT is set there, and its files come back). Writes under
# ${OUT:-output/device_check}:
#   env.txt             GPU, driver, torch / CUDA versions
#   cuda_tests.txt      pytest -k cuda over the test files that hold CUDA checks (none may skip)
#   benchmark_cuda.*    tools/benchmark.py --device cuda (InsPose vs Keypoint R-CNN, R-50, 800 x 1333)
#   components_cuda.*   tools/benchmark.py --device cuda --components --persons 100 --candidates 1000
#   status.txt          one line per step: its exit status; the script's status is the worst
# PYTHON (default python3), WHEELS (default .whl) and TESTS_ONLY=1 (skip the benchmarks) adjust it.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-output/device_check}
py=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
mkdir -p "$out"
: > "$out/status.txt"
export PYTHONUNBUFFERED=1
worst=0

step() {  # step NAME LIMIT_S COMMAND...: runs it under a time limit, output to $out/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "[device_check] $name: $*"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    echo "$name $rc" >> "$out/status.txt"
    tail -n 4 "$out/$name.txt"
    [ "$rc" -le "$worst" ] || worst=$rc
}

if compgen -G "$wheels/*.whl" > /dev/null; then
    site=$(mktemp -d)
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl \
        || { echo "[device_check] installing $wheels failed"; exit 1; }
    export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{ nvidia-smi -L; } > "$out/env.txt" 2>&1
"$py" -c "import sys, torch, torchvision, detectron2, inspose
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__,
      'detectron2', detectron2.__version__)
print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')
sys.exit(0 if torch.cuda.is_available() else 1)" >> "$out/env.txt" 2>&1
found=$?
cat "$out/env.txt"
[ "$found" = 0 ] || { echo "[device_check] no CUDA device (or inspose does not import): see $out/env.txt"; exit 1; }

CUDA_TESTS=(tests/test_cuda.py tests/test_star_conv.py tests/test_kpnet_upsample.py
            tests/test_fine_keypoint_branch.py tests/test_release_options.py)
step cuda_tests 150 "$py" -m pytest -q -rs -p no:cacheprovider -k cuda "${CUDA_TESTS[@]}"
if grep -q -E "[0-9]+ skipped" "$out/cuda_tests.txt"; then
    echo "[device_check] a CUDA test skipped on a CUDA machine: $out/cuda_tests.txt"
    echo "cuda_tests_skipped 1" >> "$out/status.txt"
    [ "$worst" -ge 1 ] || worst=1
fi

if [ "${TESTS_ONLY:-0}" != 1 ]; then
    step benchmark_cuda 240 "$py" tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml \
        --device cuda --persons 1,10,50,100 --runs 20 --output "$out/benchmark_cuda.json"
    step components_cuda 150 "$py" tools/benchmark.py --config-file configs/InsPose_R_50_36ep.yaml \
        --device cuda --components --persons 100 --candidates 1000 --runs 20 --warmup 3 \
        --output "$out/components_cuda.json"
fi
cat "$out/status.txt"
exit "$worst"
