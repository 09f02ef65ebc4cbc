#!/usr/bin/env bash
# The transfer quadrants (issue: Transfer learning). Source: the CNN trained on MNIST
# digits 0-4 (2 epochs, seed 1). Targets: similar = MNIST 5-9, dissimilar =
# Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat); small = 20
# examples a class (15 epochs, batch 8), large = all (2 epochs, batch 64). Methods:
# scratch; linear head and SVM head on frozen, cached features (lr 1e-2); fine-tune the
# top layer (fc) at lr/10 with the convolutions frozen; fine-tune everything at lr/10;
# train everything at the full rate from the pretrained weights. 3 seeds each, then the
# advisor's pick per quadrant (seed 1).
# usage: [QUADRANTS="small-similar small-dissimilar large-similar large-dissimilar"] \
#        scripts/transfer-experiment.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/transfer}
bin=${MENTOR:-target/release/mentor}
src="$out/source/checkpoints/best.ckpt"
[ -f "$out/source/summary.json" ] || "$bin" train --dataset mnist --data-dir "$data" --model cnn \
  --set 'data.classes=[0,1,2,3,4]' --epochs 2 --seed 1 --log-format quiet --out "$out/source"
for q in ${QUADRANTS:-small-similar small-dissimilar large-similar large-dissimilar}; do
  case $q in
    *-similar) target=(--dataset mnist --set 'data.classes=[5,6,7,8,9]') ;;
    *-dissimilar) target=(--dataset fashion-mnist --set 'data.classes=[0,1,2,3,4]') ;;
  esac
  case $q in
    small-*) size=(--set data.per_class=20 --epochs 15 --batch-size 8) ;;
    large-*) size=(--epochs 2 --batch-size 64) ;;
  esac
  common=(--data-dir "$data" --model cnn "${target[@]}" "${size[@]}")
  for seed in 1 2 3; do
    d="$out/$q"
    run() { local name=$1; shift; [ -f "$d/$name-s$seed/summary.json" ] || "$bin" "$@" "${common[@]}" --seed "$seed" --log-format quiet --out "$d/$name-s$seed"; }
    run scratch train
    run linear-head transfer --pretrained "$src" --set 'strategy.type="linear-probe"' --lr 1e-2
    run svm-head transfer --pretrained "$src" --set 'strategy.type="linear-probe"' --set 'strategy.loss="hinge"' \
      --set optim.weight_decay=1e-4 --lr 1e-2
    run finetune-top transfer --pretrained "$src" --freeze 'backbone.conv*' --finetune 'backbone.fc=0.1'
    run finetune-all transfer --pretrained "$src" --finetune 'backbone=0.1'
    run train-all transfer --pretrained "$src"
  done
  "$bin" advise --pretrained "$src" "${common[@]}" --seed 1 --out "$out/$q/advise" | tee "$out/$q/advice.txt"
  "$bin" summarize "$out/$q"/*-s[0-9]* | tee "$out/$q/summary.md"
done
