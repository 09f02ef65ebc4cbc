#!/usr/bin/env bash
# Self-supervised learning on MNIST and Fashion-MNIST, 3 seeds (README table).
# Encoder: the CNN with 16/32 channels (conv16-conv32-fc128; a CPU budget: ~1 minute per
# SimCLR epoch of 54 000 images, two runs side by side on 2 cores). Adam lr 1e-3, batch
# 256. Pretraining without labels: SimCLR, MoCo, relative position ($EPOCHS epochs each)
# and rotation (1 epoch = 4 rotated copies of every image); the supervised CNN ($EPOCHS
# epochs) is the ceiling and the untrained CNN the floor. Views: SimCLR's augmentations
# with two choices made for 28x28 images before any run (not tuned): crops of 20-100% of
# the area (SimCLR's 8% floor is a 8x8-pixel crop) and no flips on MNIST (digits are not
# mirror-symmetric; Fashion-MNIST keeps flip 0.5). Then `mentor ssl eval` probes every
# encoder's frozen features: weighted kNN (k 200, T 0.1) and a linear classifier at 1%,
# 10% and 100% of the training labels.
# DeepCluster (100 clusters, 20 k-means iterations per epoch) trains on views with the
# paper's augmentations only: crops and flips, no colour jitter, grey or blur.
# AMDIM (global vs 14x14 and 7x7 local features) uses SimCLR's views, as SimCLR does.
# CPC encodes 8x8 patches every 4 pixels (a 6x6 grid) with the same CNN, a GRU context
# predicting 2 rows ahead, batch 64 (its negatives grow with the square of the batch),
# no augmentation; its features pool the codes over a 2x2 split of the grid.
# (AMDIM's and CPC's 4-epoch runs did not fit a session's CPU; the README's rows for them
# come from scripts/ssl-one-epoch.sh, their first epochs.)
# SCALING=1 adds SimCLR on MNIST (seed 1) at batch 64, 128 and 512 (the scaling row).
# METHODS (default: all) keeps only the jobs whose directory names match, e.g.
# METHODS=deep-cluster.
# usage: [SEEDS="1 2 3"] [EPOCHS=4] [PARALLEL=2] scripts/ssl-experiment.sh [DATA_DIR] [OUT]
# Runs whose probe.json exists are skipped.
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/ssl}
bin=${MENTOR:-target/release/mentor}
epochs=${EPOCHS:-4}
enc="--model cnn --set model.channels=[16,32] --lr 1e-3 --log-format quiet"
jobs=()
job() { # dir, pretrain command (empty: random init from the supervised run), seed
  local d=$1 cmd=$2 seed=$3
  [ -f "$d/probe.json" ] && return
  if [ -z "$cmd" ]; then
    jobs+=("$bin ssl eval --checkpoint $(dirname "$d")/supervised-s$seed/checkpoints/last.ckpt --random-init --seed $seed --out $d/probe.json")
  else
    jobs+=("$cmd --out $d && $bin ssl eval --checkpoint $d/checkpoints/last.ckpt --seed $seed --out $d/probe.json")
  fi
}
for dataset in ${DATASETS:-mnist fashion-mnist}; do
  flip=0.5; [ "$dataset" = mnist ] && flip=0.0
  aug="--set strategy.augment.crop_scale=[0.2,1.0] --set strategy.augment.flip=$flip"
  for seed in ${SEEDS:-1 2 3}; do
    d=$out/$dataset; common="--dataset $dataset --data-dir $data --seed $seed $enc --batch-size 256"
    job $d/simclr-s$seed "$bin ssl pretrain --method simclr --epochs $epochs $common $aug" $seed
    job $d/relative-position-s$seed "$bin ssl pretrain --method relative-position --epochs $epochs $common" $seed
    job $d/moco-s$seed "$bin ssl pretrain --method moco --epochs $epochs $common $aug" $seed
    job $d/rotation-s$seed "$bin ssl pretrain --method rotation --epochs 1 $common" $seed
    job $d/deep-cluster-s$seed "$bin ssl pretrain --method deep-cluster --epochs $epochs $common $aug --set strategy.augment.jitter_p=0 --set strategy.augment.grayscale=0 --set strategy.augment.blur=0" $seed
    job $d/amdim-s$seed "$bin ssl pretrain --method amdim --epochs $epochs $common $aug" $seed
    job $d/cpc-s$seed "$bin ssl pretrain --method cpc --epochs $epochs $common --set batch_size=64" $seed
    job $d/supervised-s$seed "$bin train --epochs $epochs $common" $seed
  done
done
if [ "${SCALING:-0}" = 1 ]; then
  for b in 64 128 512; do
    d=$out/mnist-batch; common="--dataset mnist --data-dir $data --seed 1 $enc --batch-size $b"
    job $d/simclr-b$b "$bin ssl pretrain --method simclr --epochs $epochs $common --set strategy.augment.crop_scale=[0.2,1.0] --set strategy.augment.flip=0.0" 1
  done
fi
printf '%s\n' "${jobs[@]}" | grep -v '^$' | grep -E -- "${METHODS:-.}" | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"' || true
# The random encoders need the supervised runs' configs only.
jobs=()
for dataset in ${DATASETS:-mnist fashion-mnist}; do
  for seed in ${SEEDS:-1 2 3}; do job $out/$dataset/random-s$seed "" $seed; done
done
printf '%s\n' "${jobs[@]}" | grep -v '^$' | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"' || true
