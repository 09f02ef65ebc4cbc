#!/usr/bin/env bash
# DeiT-style distillation (Touvron et al. 2021): a small ViT (examples/deit-vit.toml) on
# 500 training images per class, trained alone, or with a distillation token learning a
# CNN teacher (examples/kd-mnist-teacher.toml, 10 epochs on the same images) with hard
# (lambda 1/2) or soft (T 3, lambda 0.1, DeiT's values) targets; and, as the control
# that isolates the token, the same ViT without a token distilled with hard targets on
# its one head (lambda 1/2); 3 seeds.
# usage: [DATASETS="mnist fashion-mnist"] [PER_CLASS=500] scripts/deit-experiment.sh [DATA_DIR] [OUT]
# Runs whose summary.json exists are skipped, so an interrupted experiment resumes.
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/deit}
per_class=${PER_CLASS:-500}
bin=${MENTOR:-target/release/mentor}
for ds in ${DATASETS:-mnist fashion-mnist}; do
  d=$out/$ds
  for seed in 1 2 3; do
    common=(--data-dir "$data" --dataset "$ds" --seed "$seed" --log-format quiet --set "data.per_class=$per_class")
    [ -f "$d/teacher-s$seed/summary.json" ] || \
      "$bin" train --config examples/kd-mnist-teacher.toml "${common[@]}" --set epochs=10 --out "$d/teacher-s$seed"
    [ -f "$d/vit-alone-s$seed/summary.json" ] || \
      "$bin" train --config examples/deit-vit.toml "${common[@]}" --out "$d/vit-alone-s$seed"
    teacher=$d/teacher-s$seed/checkpoints/best.ckpt
    [ -f "$d/deit-hard-s$seed/summary.json" ] || \
      "$bin" distill --config examples/deit-vit.toml "${common[@]}" --set model.distillation_token=true \
        --teacher "$teacher" --targets hard --lambda 0.5 --out "$d/deit-hard-s$seed"
    [ -f "$d/kd-hard-s$seed/summary.json" ] || \
      "$bin" distill --config examples/deit-vit.toml "${common[@]}" \
        --teacher "$teacher" --targets hard --lambda 0.5 --out "$d/kd-hard-s$seed"
    [ -f "$d/deit-soft-s$seed/summary.json" ] || \
      "$bin" distill --config examples/deit-vit.toml "${common[@]}" --set model.distillation_token=true \
        --teacher "$teacher" --targets soft --temperature 3 --lambda 0.1 --out "$d/deit-soft-s$seed"
  done
  "$bin" summarize "$d"/teacher-s* "$d"/vit-alone-s* "$d"/kd-hard-s* "$d"/deit-hard-s* "$d"/deit-soft-s*
done
