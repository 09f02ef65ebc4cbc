#!/usr/bin/env bash
# Distillation after Hinton et al. (2015): teacher CNN (examples/kd-mnist-teacher.toml), student MLP 2x800
# trained alone and distilled from the teacher, 3 seeds, on MNIST and Fashion-MNIST.
# usage: [DATASETS="mnist fashion-mnist"] scripts/kd-experiment.sh [DATA_DIR] [OUT] [T] [LAMBDA] [TEACHER_TOML]
# Runs whose summary.json exists are skipped, so an interrupted experiment resumes.
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/kd}
T=${3:-20}
L=${4:-0.9}
teacher_toml=${5:-examples/kd-mnist-teacher.toml}
bin=${MENTOR:-target/release/mentor}
for ds in ${DATASETS:-mnist fashion-mnist}; do
  for seed in 1 2 3; do
    d=$out/$ds
    common=(--data-dir "$data" --dataset "$ds" --seed "$seed" --log-format quiet)
    [ -f "$d/teacher-s$seed/summary.json" ] || \
      "$bin" train --config "$teacher_toml" "${common[@]}" --out "$d/teacher-s$seed"
    [ -f "$d/alone-s$seed/summary.json" ] || \
      "$bin" train --config examples/kd-mnist-student.toml "${common[@]}" --out "$d/alone-s$seed"
    [ -f "$d/distilled-T$T-l$L-s$seed/summary.json" ] || \
      "$bin" distill --config examples/kd-mnist-student.toml "${common[@]}" \
        --teacher "$d/teacher-s$seed/checkpoints/best.ckpt" --temperature "$T" --lambda "$L" \
        --out "$d/distilled-T$T-l$L-s$seed"
  done
  "$bin" summarize "$d"/teacher-s* "$d"/alone-s* "$d"/distilled-T$T-l$L-s*
done
