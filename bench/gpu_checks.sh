#!/usr/bin/env bash
# Everything that needs a GPU, as one bounded command (issue 5): the CUDA tests and the benchmarks,
# with logs and JSON written to $OUT (./gpu-out when OUT is unset). Run from anywhere:
#
#     bash bench/gpu_checks.sh            # PYTHON=python3 by default; PYTHON=.venv/bin/python locally
#
# Each step has its own timeout (90+50+125+50+40+70+70+40+60 s at most) and a failing step does not stop the
# next, so the whole script ends within 10.2 minutes (about 4 expected on an H100). Installs nothing
# (the GPU machine has no network): it needs torch, torchvision, numpy, pillow and pytest, and never
# imports textual. Without a GPU the same command runs the CPU parts (CUDA tests skip with their
# reason, benchmarks on CPU in quick mode) and says plainly that the GPU figures are unmeasured.
set -uo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
DATA_ROOT=${BSTUI_BENCH_DATA:-${TMPDIR:-/tmp}/bstui-bench-data}  # generated data stays out of $OUT
SUMMARY="$OUT/summary.txt"
START=$(date +%s)
: >"$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME TIMEOUT_S CMD...: run with a timeout, log to $OUT/NAME.log (and the console), record rc.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "=== $name (timeout ${limit}s): $*"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    local verdict=ok
    case $rc in
        0) ;;
        5) verdict="no tests selected" ;;  # pytest: nothing collected/selected
        124 | 137) verdict="TIMED OUT after ${limit}s" ;;
        *) verdict="FAILED (rc $rc)" ;;
    esac
    note "$(printf '%-22s %-26s %4ss' "$name" "$verdict" $((SECONDS - t0)))"
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    "$PY" -c 'import platform, torch; print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda, "| gpu:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
} 2>&1 | tee "$OUT/env.txt"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    GPU=1
    DEV=cuda
    note "device: CUDA GPU found; GPU figures measured below"
else
    GPU=0
    DEV=cpu
    note "device: no CUDA GPU: CUDA tests skip (reason in the log), benchmarks run on CPU in quick mode; GPU figures UNMEASURED"
fi

PYTEST=("$PY" -m pytest -p no:cacheprovider -q -ra)

# 1. The fast path's tests: the CUDA equality tests (graph losses == eager losses) and its CPU logic.
step test_fastpath 90 "${PYTEST[@]}" tests/trainer/test_fastpath.py --junitxml="$OUT/test_fastpath.xml"

# 2. Every other test marked cuda (collection errors in modules needing absent packages do not stop it).
step tests_cuda_marked 50 "${PYTEST[@]}" -m cuda tests/trainer tests/unit \
    --ignore=tests/trainer/test_fastpath.py --continue-on-collection-errors --junitxml="$OUT/tests_cuda.xml"

# 3. Epoch time: study's loop vs resident eager vs fast path (+ bf16 / channels_last on GPU).
if [ "$GPU" = 1 ]; then
    step speed 125 "$PY" bench/speed.py --device cuda --deadline 105 --root "$DATA_ROOT" --json "$OUT/speed.json"
else
    step speed 125 "$PY" bench/speed.py --device cpu --quick --deadline 105 --root "$DATA_ROOT" --json "$OUT/speed.json"
fi

# 4. Input pipeline: study's loop vs resident loop at 6, 60, 600.
step pipeline 50 "$PY" bench/pipeline.py --device "$DEV" --budget 1.5 --root "$DATA_ROOT" --json "$OUT/pipeline.json"

# 5. Split-backward methods (bench/split.py, another helper's), if present.
if [ -f bench/split.py ]; then
    if [ "$GPU" = 1 ]; then
        step split 40 "$PY" bench/split.py --device cuda --json "$OUT/split.json"
    else
        step split 40 "$PY" bench/split.py --device cpu --batches 600 --rounds 3 --json "$OUT/split.json"
    fi
else
    note "split: bench/split.py not found, skipped"
fi

# 6. Issue 16: the fast path vs the study's loop on the small ResNet (batch norm) with CIFAR-shaped data
#    (random tensors where CIFAR-10 is not in the data root; the output says which).
if [ "$GPU" = 1 ]; then
    step speed_resnet 70 "$PY" bench/speed.py --device cuda --model resnet_small --dataset cifar10 \
        --batches 32 128 512 --deadline 60 --root "$DATA_ROOT" --json "$OUT/speed_resnet.json"
else
    step speed_resnet 70 "$PY" bench/speed.py --device cpu --quick --model resnet_small --dataset cifar10 \
        --batches 32 128 --deadline 60 --root "$DATA_ROOT" --json "$OUT/speed_resnet.json"
fi

# 7. Fused runs vs the same runs separately, K = 1, 4, 16 at batch 1, 6, 60, in one call: eager (plain steps
#    vs the eager fused step) and graph (each run's CUDA graph vs the fused step inside one CUDA graph, what
#    perf.fuse_runs = "off" / "on" train with on a GPU). Targets: GPU graph mode at batch 1-6, K = 16 >= 8x;
#    CPU batch 1, K = 16 >= 2x. Figures in $OUT/fuse.json and fuse.log. The fused CUDA tests ran in step 2.
if [ "$GPU" = 1 ]; then
    step fuse 70 "$PY" bench/fuse.py --device cuda --modes eager graph --ks 1 4 16 --batches 1 6 60 \
        --rounds 3 --budget 0.15 --json "$OUT/fuse.json"
else
    step fuse 70 "$PY" bench/fuse.py --device cpu --ks 4 16 --batches 1 6 --rounds 1 --budget 0.3 --json "$OUT/fuse.json"
fi

# 8. Time alone (trainer.sweep.calibrate): the calibration's cost as a share of a small sweep (target < 3%), and
#    the step time alone beside a fused run's share per step, at batch 1, 6 and 60.
if [ "$GPU" = 1 ]; then
    step time_alone 40 "$PY" bench/time_alone.py --device cuda --fuse on --train-samples 12000 \
        --data-root "$DATA_ROOT" --json "$OUT/time_alone.json"
else
    step time_alone 40 "$PY" bench/time_alone.py --device cpu --train-samples 3000 --data-root "$DATA_ROOT" \
        --json "$OUT/time_alone.json"
fi

# 9. Branched B_crit (trainer.sweep.branch): what 3 points x 5 batch sizes x 3 lr factors cost against one epoch of
#    the base run, the branches of one batch size and point fused (perf.fuse_runs = "on") and alone, side by side.
if [ "$GPU" = 1 ]; then
    step branch 60 "$PY" bench/branch.py --device cuda --train-samples 4000 --data-root "$DATA_ROOT" \
        --json "$OUT/branch.json"
else
    step branch 60 "$PY" bench/branch.py --device cpu --train-samples 800 --test-samples 500 --threads 1 \
        --data-root "$DATA_ROOT" --json "$OUT/branch.json"
fi

note "total: $(($(date +%s) - START)) s; results in $OUT"
echo
echo "=== summary ($SUMMARY)"
cat "$SUMMARY"
