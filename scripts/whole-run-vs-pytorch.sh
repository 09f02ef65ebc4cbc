#!/usr/bin/env bash
# Whole runs, mentor against PyTorch in the same session, interleaved round by round:
# Split-MNIST task-IL (5 tasks x 2000 Adam steps, MLP 2x400, batch 128, every task
# scored before training and after each task) with each continual method in METHODS
# (finetune, lwf, ewc, replay; EWC at lambda 1e9, the task-IL value of
# scripts/continual-experiment.sh) as `mentor continual` and as scripts/continual_torch.py
# (the same protocol and methods in PyTorch, 2 threads). Each run's wall time is taken
# from outside (process start to exit: loading, training, scoring, and for mentor its
# checkpoints, metrics and plots), beside the run's own count, and its final average
# accuracy. Prints a markdown table of the medians and the ratio mentor / PyTorch (below
# 1: mentor faster), one row per method. Record the CPU beside the numbers.
# usage: PYTHON=V/bin/python [ROUNDS=3] [METHODS="finetune lwf ewc replay"] [ITERATIONS=2000]
#        scripts/whole-run-vs-pytorch.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/whole-run}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3}
methods=${METHODS:-finetune lwf ewc replay}
ewc_lambda=1e9
iterations=${ITERATIONS:-2000}  # per task; fewer only to try the script out
mkdir -p "$out"
now() { date +%s.%N; }
for round in $(seq 1 "$rounds"); do
  for method in $methods; do
    extra=()
    [ "$method" = ewc ] && extra=(--set "strategy.method.lambda=$ewc_lambda")
    t0=$(now)
    EWC_LAMBDA=$ewc_lambda ITERATIONS=$iterations "$py" scripts/continual_torch.py "$data" 2 "$round" "$method" \
      > "$out/torch-$method-r$round.json"
    t1=$(now)
    "$bin" continual --dataset mnist --data-dir "$data" --scenario split --tasks 5 \
      --setting task-il --method "$method" --iterations "$iterations" "${extra[@]}" --seed "$round" --log-format quiet \
      --out "$out/mentor-$method-r$round" --overwrite
    t2=$(now)
    echo "{\"round\": $round, \"torch\": $(echo "$t1 - $t0" | bc), \"mentor\": $(echo "$t2 - $t1" | bc)}" \
      > "$out/outside-$method-r$round.json"
  done
done
python3 - "$out" "$rounds" $methods <<'PY'
import json, statistics, sys
out, rounds, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
fmt = lambda xs, f: ", ".join(f.format(x) for x in xs)
print("| Split-MNIST task-IL, 5 x 2000 Adam steps, MLP 2x400, batch 128 "
      f"({rounds} rounds, seeds 1..{rounds}) | PyTorch wall s | mentor wall s | mentor / PyTorch "
      "| PyTorch own count s | mentor own count s | final avg acc PyTorch / mentor |")
print("|---|---|---|---|---|---|---|")
for method in methods:
    rows = []
    for r in range(1, rounds + 1):
        outside = json.load(open(f"{out}/outside-{method}-r{r}.json"))
        torch = json.load(open(f"{out}/torch-{method}-r{r}.json"))
        mentor = json.load(open(f"{out}/mentor-{method}-r{r}/summary.json"))
        rows.append((outside["torch"], outside["mentor"], torch["wall_seconds"],
                     mentor["wall_seconds"], torch["average_accuracy"], mentor["average_accuracy"]))
    col = lambda i: [row[i] for row in rows]
    print(f"| {method} | {fmt(col(0), '{:.1f}')} | {fmt(col(1), '{:.1f}')} "
          f"| {med(col(1)) / med(col(0)):.2f}x | {fmt(col(2), '{:.1f}')} | {fmt(col(3), '{:.1f}')} "
          f"| {med(col(4)):.4f} / {med(col(5)):.4f} |")
PY
