#!/usr/bin/env bash
# Distilled student test accuracy against the temperature T (seed 1, lambda 0.9), with
# the MNIST teacher of scripts/kd-experiment.sh (run that first), then the plot.
# usage: scripts/kd-temperature-sweep.sh [DATA_DIR] [KD_OUT] [SWEEP_OUT]
set -euo pipefail
data=${1:-../shared/datasets}
kd=${2:-runs/kd}
out=${3:-runs/kd-sweep}
bin=${MENTOR:-target/release/mentor}
for T in 1 2 4 8 20 40; do
  [ -f "$out/T$T/summary.json" ] || \
    "$bin" distill --config examples/kd-mnist-student.toml --data-dir "$data" --dataset mnist --seed 1 \
      --teacher "$kd/mnist/teacher-s1/checkpoints/best.ckpt" --temperature "$T" --lambda 0.9 \
      --log-format quiet --out "$out/T$T"
done
"$bin" plot-sweep --key strategy.temperature --log-x --out "$out/accuracy-vs-temperature" "$out"/T*
