#!/usr/bin/env bash
# Fine-tuning evaluation of the self-supervised encoders (after scripts/ssl-experiment.sh):
# the whole CNN (16/32 channels) trained on 1% of the labels (54 examples a class of the
# 54 000 training images; no validation split; LABELS="54 540" adds 10%), from scratch
# and from the SimCLR, MoCo, relative-position and rotation encoders of the same seed
# (backbone copied by name, head re-initialised). Adam lr 1e-3, batch 64, 30 epochs.
# usage: [SEEDS="1 2 3"] [PARALLEL=2] scripts/ssl-finetune.sh [DATA_DIR] [OUT]
# Runs whose summary.json exists are skipped.
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/ssl}
bin=${MENTOR:-target/release/mentor}
jobs=()
for dataset in ${DATASETS:-mnist fashion-mnist}; do
  for seed in ${SEEDS:-1 2 3}; do
    for per in ${LABELS:-54}; do
      common="--dataset $dataset --data-dir $data --seed $seed --model cnn --set model.channels=[16,32] --lr 1e-3 --batch-size 64 --epochs 30 --set data.per_class=$per --set data.val_fraction=0.0 --log-format quiet"
      d=$out/$dataset/finetune-$per
      [ -f "$d/scratch-s$seed/summary.json" ] || jobs+=("$bin train $common --out $d/scratch-s$seed")
      for m in simclr moco relative-position rotation; do
        ckpt=$out/$dataset/$m-s$seed/checkpoints/last.ckpt
        [ -f "$d/$m-s$seed/summary.json" ] || jobs+=("$bin transfer --pretrained $ckpt $common --out $d/$m-s$seed")
      done
    done
  done
done
printf '%s\n' "${jobs[@]}" | grep -v '^$' | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"' || true
