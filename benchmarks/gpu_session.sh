#!/usr/bin/env bash
# Everything that needs a GPU, in one call (the device tool's machines start bare and device
# time is short): build, the GPU tests, the H100 benchmarks. Results go to $OUT (or
# ./gpu_out). Usage on the device:  bash benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
python -m ehrfast.cli info | tee "$OUT/info.txt"
python -m pytest -q -m gpu tests \
    2>&1 | tail -30 | tee "$OUT/gpu_tests.txt"
python benchmarks/cross_attention.py --json "$OUT/cross_attention.json" 2>&1 | tail -20 | tee "$OUT/cross_attention.txt"
python benchmarks/slot_attention.py --json "$OUT/slot_attention.json" 2>&1 | tail -5 | tee "$OUT/slot_attention.txt"
python benchmarks/sampler_vs_hf.py --json "$OUT/sampler.json" 2>&1 | grep -v '^ \|^{\|^}' | tail -20 | tee "$OUT/sampler.txt"
python benchmarks/train_vs_hf.py --json "$OUT/train.json" 2>&1 | grep -v '%|' | tail -20 | tee "$OUT/train.txt"
# ARES: one stay's trajectory with the paper-sized model, 100 futures per position (ARES.md S7 cost)
python benchmarks/ares_cost.py --preset paper --device cuda --samples 100 --max-new-tokens 512 --context-tokens 1024 --stays 2 \
    --every-k 16 --baseline-positions 4 --json "$OUT/ares.json" 2>&1 | tail -5 | tee "$OUT/ares.txt"
