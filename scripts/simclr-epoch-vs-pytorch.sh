#!/usr/bin/env bash
# One SimCLR epoch on MNIST, mentor against PyTorch in the same session, interleaved round
# by round: README's SimCLR pretraining (CNN 16/32, projector 128-128, tau 0.2, Adam 1e-3,
# batch 256, crops of 20-100% of the area, no flips) stopped after its first epoch, as
# `mentor ssl pretrain` and as scripts/simclr_torch.py (torchvision v2 views per image in
# a DataLoader with WORKERS worker processes, the usual PyTorch pipeline). Both score the
# epoch with a kNN monitor (k 200 over the features of 10,000 training images) on the
# validation and test images. Each run's wall time is taken from outside (process start to
# exit). Prints a markdown table of the medians and the ratio mentor / PyTorch (below 1:
# mentor faster). Record the CPU beside the numbers.
# usage: PYTHON=V/bin/python [ROUNDS=3] [WORKERS="0 2"]
#        scripts/simclr-epoch-vs-pytorch.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/simclr-epoch}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3}
workers=${WORKERS:-0 2}
mkdir -p "$out"
now() { date +%s.%N; }
for round in $(seq 1 "$rounds"); do
  for w in $workers; do
    t0=$(now)
    "$py" scripts/simclr_torch.py "$data" 2 "$round" "$w" > "$out/torch-w$w-r$round.json"
    t1=$(now)
    echo "{\"round\": $round, \"torch\": $(echo "$t1 - $t0" | bc)}" > "$out/outside-torch-w$w-r$round.json"
  done
  t0=$(now)
  "$bin" ssl pretrain --method simclr --dataset mnist --data-dir "$data" --seed "$round" --model cnn \
    --set 'model.channels=[16,32]' --lr 1e-3 --batch-size 256 --set 'strategy.augment.crop_scale=[0.2,1.0]' \
    --set strategy.augment.flip=0.0 --epochs 1 --log-format quiet --out "$out/mentor-r$round" --overwrite
  t1=$(now)
  echo "{\"round\": $round, \"mentor\": $(echo "$t1 - $t0" | bc)}" > "$out/outside-mentor-r$round.json"
done
python3 - "$out" "$rounds" $workers <<'PY'
import json, statistics, sys
out, rounds, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
fmt = lambda xs, f: ", ".join(f.format(x) for x in xs)
mentor = [json.load(open(f"{out}/outside-mentor-r{r}.json"))["mentor"] for r in range(1, rounds + 1)]
acc = [json.load(open(f"{out}/mentor-r{r}/summary.json"))["test_accuracy"] for r in range(1, rounds + 1)]
print(f"| MNIST SimCLR, 1 epoch, CNN 16/32, batch 256 ({rounds} rounds, seeds 1..{rounds}) "
      "| PyTorch wall s | mentor wall s | mentor / PyTorch | kNN test acc PyTorch / mentor |")
print("|---|---|---|---|---|")
for w in workers:
    torch = [json.load(open(f"{out}/outside-torch-w{w}-r{r}.json"))["torch"] for r in range(1, rounds + 1)]
    tacc = [json.load(open(f"{out}/torch-w{w}-r{r}.json"))["knn_test_accuracy"] for r in range(1, rounds + 1)]
    print(f"| PyTorch DataLoader with {w} worker(s) | {fmt(torch, '{:.1f}')} | {fmt(mentor, '{:.1f}')} "
          f"| {med(mentor) / med(torch):.2f}x | {med(tacc):.4f} / {med(acc):.4f} |")
PY
