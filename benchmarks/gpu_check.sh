#!/usr/bin/env bash
# The CUDA checks and timings of the batched engine as one prepared call for a lent GPU machine:
#
#   device run: command="bash benchmarks/gpu_check.sh", timeout_s=560
#
# That machine's python3 holds torch with CUDA, numpy, scipy, numba, pandas, scikit-image and
# pytest but no PETSc, so the package runs from src/ and the PETSc rows are left out. Steps, each
# run even if an earlier one failed, each writing into $OUT (what the device tool brings back;
# benchmarks/results/gpu here):
#   1. device facts (gpu.txt);
#   2. the batched engine's tests, which run on every device torch sees (tests.txt);
#   3. solver benchmark rows of the batched engine on cpu and cuda beside spsolve-Picard, on the
#      builtin photos and faces (solver.csv, solver.txt);
#   4. the CIFAR-10-sized stand-in set (IMAGES images) through shard jobs on DEVICE, one at a time,
#      and the memory-mapped merge (scale.json, scale.txt): the GPU target of 50,000 x 3 channels.
# Smaller or on the CPU, to check the script itself: DEVICE=cpu IMAGES=200 SHARD=100 SIZES=32 bash ...
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu}
device=${DEVICE:-cuda}
images=${IMAGES:-50000}
shard=${SHARD:-10000}
sizes=${SIZES:-32 64 128}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=()
step() {  # step NAME LOG COMMAND...: run, keep its output in LOG, remember a failure
    local name=$1 log=$2
    shift 2
    echo "== $name"
    "$@" 2>&1 | tee "$out/$log" || failed+=("$name")
}

step "device" gpu.txt "$python" -c 'import torch, platform
print("torch", torch.__version__, "python", platform.python_version(), "cpus", __import__("os").cpu_count())
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
step "tests" tests.txt "$python" -m pytest -q -p no:cacheprovider tests/test_solvers_batched.py
# shellcheck disable=SC2086  # sizes: a list of words
step "solver benchmark" solver.txt "$python" benchmarks/solver_benchmark.py --sets photos faces --sizes $sizes \
    --only "batched (cpu|$device) newton" --without-petsc --spsolve-images 2 --out "$out/solver.csv"
step "scale" scale.txt "$python" benchmarks/cifar_scale_benchmark.py --images "$images" --shard-size "$shard" \
    --solver batched --device "$device" --batch-size $((3 * shard)) --workers 1 --cores 1 --json "$out/scale.json"

if ((${#failed[@]})); then
    echo "gpu_check: failed: ${failed[*]}"
    exit 1
fi
echo "gpu_check: all steps passed; files in $out"
