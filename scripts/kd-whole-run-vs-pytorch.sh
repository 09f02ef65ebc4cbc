#!/usr/bin/env bash
# Whole distillation runs, mentor against PyTorch in the same session, interleaved round by
# round: README's MNIST KD row (student MLP 2x800, 10 epochs, T 20, lambda 0.9,
# examples/kd-mnist-student.toml) as `mentor distill` and as scripts/kd_torch.py, with the
# teacher's logits cached once (mentor's default on images in memory) and computed on every
# batch (`strategy.cache_teacher = false`). Both distil from the same teacher: the CNN
# trained once by mentor (examples/kd-mnist-teacher.toml, seed 1) and exported with
# `mentor export` for PyTorch. Each run's wall time is taken from outside (process start to
# exit: loading, training, scoring each epoch, and for mentor its checkpoints, metrics and
# plots), beside the final test accuracy. Prints a markdown table of the medians and the
# ratio mentor / PyTorch (below 1: mentor faster). Record the CPU beside the numbers.
# (V: a venv with torch and safetensors.)
# usage: PYTHON=V/bin/python [ROUNDS=3] [MODES="cached per-step"]
#        scripts/kd-whole-run-vs-pytorch.sh [DATA_DIR] [OUT]
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/kd-whole-run}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
rounds=${ROUNDS:-3}
modes=${MODES:-cached per-step}
mkdir -p "$out"
now() { date +%s.%N; }
[ -f "$out/teacher/summary.json" ] || "$bin" train --config examples/kd-mnist-teacher.toml \
  --data-dir "$data" --dataset mnist --seed 1 --log-format quiet --out "$out/teacher" --overwrite
[ -f "$out/teacher.safetensors" ] || "$bin" export --checkpoint "$out/teacher/checkpoints/best.ckpt" \
  --out "$out/teacher.safetensors"
for round in $(seq 1 "$rounds"); do
  for mode in $modes; do
    cache=1 && [ "$mode" = per-step ] && cache=0
    cache_flag=true && [ "$cache" = 0 ] && cache_flag=false
    t0=$(now)
    "$py" scripts/kd_torch.py "$data" "$out/teacher.safetensors" 2 "$round" "$cache" > "$out/torch-$mode-r$round.json"
    t1=$(now)
    "$bin" distill --config examples/kd-mnist-student.toml --data-dir "$data" --dataset mnist \
      --teacher "$out/teacher/checkpoints/best.ckpt" --temperature 20 --lambda 0.9 \
      --set "strategy.cache_teacher=$cache_flag" --seed "$round" --log-format quiet \
      --out "$out/mentor-$mode-r$round" --overwrite
    t2=$(now)
    echo "{\"round\": $round, \"torch\": $(echo "$t1 - $t0" | bc), \"mentor\": $(echo "$t2 - $t1" | bc)}" \
      > "$out/outside-$mode-r$round.json"
  done
done
python3 - "$out" "$rounds" $modes <<'PY'
import json, statistics, sys
out, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
fmt = lambda xs, f: ", ".join(f.format(x) for x in xs)
teacher = json.load(open(f"{out}/teacher/summary.json"))["test_accuracy"]
print(f"| MNIST KD, MLP 2x800 student, 10 epochs, T 20, lambda 0.9 ({rounds} rounds, seeds 1..{rounds}; "
      f"teacher test acc mentor {teacher:.4f}) | PyTorch wall s | mentor wall s | mentor / PyTorch "
      "| PyTorch own count s | mentor own count s | test acc PyTorch / mentor | teacher acc in PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for mode in modes:
    rows = []
    for r in range(1, rounds + 1):
        outside = json.load(open(f"{out}/outside-{mode}-r{r}.json"))
        torch = json.load(open(f"{out}/torch-{mode}-r{r}.json"))
        mentor = json.load(open(f"{out}/mentor-{mode}-r{r}/summary.json"))
        rows.append((outside["torch"], outside["mentor"], torch["wall_seconds"], mentor["wall_seconds"],
                     torch["test_accuracy"], mentor["test_accuracy"], torch["teacher_test_accuracy"]))
    col = lambda i: [row[i] for row in rows]
    print(f"| teacher {mode} | {fmt(col(0), '{:.1f}')} | {fmt(col(1), '{:.1f}')} "
          f"| {med(col(1)) / med(col(0)):.2f}x | {fmt(col(2), '{:.1f}')} | {fmt(col(3), '{:.1f}')} "
          f"| {med(col(4)):.4f} / {med(col(5)):.4f} | {med(col(6)):.4f} |")
PY
