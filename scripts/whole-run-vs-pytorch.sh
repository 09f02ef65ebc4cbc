#!/usr/bin/env bash
# Whole runs, mentor against PyTorch in the same session, interleaved round by round:
# Split-MNIST task-IL fine-tuning (5 tasks x 2000 Adam steps, MLP 2x400, batch 128,
# every task scored before training and after each task) as `mentor continual` and as
# scripts/continual_torch.py (the same protocol in PyTorch, 2 threads). Each run's wall
# time is taken from outside (process start to exit: loading, training, scoring, and
# for mentor its checkpoints, metrics and plots), beside the run's own count, and its
# final average accuracy. Prints a markdown table of the medians and the ratio
# mentor / PyTorch (below 1: mentor faster). Record the CPU beside the numbers.
# usage: PYTHON=V/bin/python [ROUNDS=3] scripts/whole-run-vs-pytorch.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/whole-run}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3}
mkdir -p "$out"
now() { date +%s.%N; }
for round in $(seq 1 "$rounds"); do
  t0=$(now)
  "$py" scripts/continual_torch.py "$data" 2 "$round" > "$out/torch-r$round.json"
  t1=$(now)
  "$bin" continual --dataset mnist --data-dir "$data" --scenario split --tasks 5 \
    --setting task-il --method finetune --seed "$round" --log-format quiet \
    --out "$out/mentor-r$round" --overwrite
  t2=$(now)
  echo "{\"round\": $round, \"torch\": $(echo "$t1 - $t0" | bc), \"mentor\": $(echo "$t2 - $t1" | bc)}" \
    > "$out/outside-r$round.json"
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    outside = json.load(open(f"{out}/outside-r{r}.json"))
    torch = json.load(open(f"{out}/torch-r{r}.json"))
    mentor = json.load(open(f"{out}/mentor-r{r}/summary.json"))
    rows.append((outside["torch"], outside["mentor"], torch["wall_seconds"], mentor["wall_seconds"],
                 torch["average_accuracy"], mentor["average_accuracy"]))
col = lambda i: [row[i] for row in rows]
fmt = lambda xs, f: ", ".join(f.format(x) for x in xs)
med = statistics.median
print("| run | PyTorch wall s | mentor wall s | mentor / PyTorch | PyTorch own count s | mentor own count s | final avg acc PyTorch / mentor |")
print("|---|---|---|---|---|---|---|")
print(f"| Split-MNIST task-IL fine-tuning ({rounds} rounds, seeds 1..{rounds}) | {fmt(col(0), '{:.1f}')} | {fmt(col(1), '{:.1f}')} "
      f"| {med(col(1)) / med(col(0)):.2f}x | {fmt(col(2), '{:.1f}')} | {fmt(col(3), '{:.1f}')} "
      f"| {med(col(4)):.4f} / {med(col(5)):.4f} |")
PY
