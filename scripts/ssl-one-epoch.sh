#!/usr/bin/env bash
# AMDIM and CPC at one epoch of pretraining (seed 1, MNIST and Fashion-MNIST): the
# CPU budget of this machine did not fit the 4 epochs of scripts/ssl-experiment.sh for
# these two (AMDIM: ~23 minutes per epoch with other runs sharing the cores; CPC's
# negatives are every patch of the batch). Each run is the 4-epoch run of
# scripts/ssl-experiment.sh stopped after its first epoch (--stop-after 1; constant
# learning rate, so nothing depends on the planned length). Then `mentor ssl eval`
# probes it, and the CPC network's untrained twin (--random-init), whose patch grid and
# pooled features differ from the plain CNN's.
# usage: [PARALLEL=2] scripts/ssl-one-epoch.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/ssl}
bin=${MENTOR:-target/release/mentor}
enc="--model cnn --set model.channels=[16,32] --lr 1e-3 --log-format quiet --epochs 4 --stop-after 1"
jobs=()
for dataset in mnist fashion-mnist; do
  flip=0.5; [ "$dataset" = mnist ] && flip=0.0
  aug="--set strategy.augment.crop_scale=[0.2,1.0] --set strategy.augment.flip=$flip"
  d=$out/$dataset-1epoch; common="--dataset $dataset --data-dir $data --seed 1 $enc --batch-size 256"
  [ -f "$d/amdim-s1/checkpoints/last.ckpt" ] || jobs+=("$bin ssl pretrain --method amdim $common $aug --out $d/amdim-s1")
  [ -f "$d/cpc-s1/checkpoints/last.ckpt" ] || jobs+=("$bin ssl pretrain --method cpc $common --set batch_size=64 --out $d/cpc-s1")
done
printf '%s\n' "${jobs[@]}" | grep -v '^$' | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"' || true
jobs=()
for dataset in mnist fashion-mnist; do
  d=$out/$dataset-1epoch
  for m in amdim cpc; do
    [ -f "$d/$m-s1/probe.json" ] || jobs+=("$bin ssl eval --checkpoint $d/$m-s1/checkpoints/last.ckpt --seed 1 --out $d/$m-s1/probe.json")
  done
  [ -f "$d/cpc-random-s1/probe.json" ] || jobs+=("mkdir -p $d/cpc-random-s1 && $bin ssl eval --checkpoint $d/cpc-s1/checkpoints/last.ckpt --random-init --seed 1 --out $d/cpc-random-s1/probe.json")
done
printf '%s\n' "${jobs[@]}" | grep -v '^$' | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} > /dev/null 2>&1 || echo "failed: {}"' || true
