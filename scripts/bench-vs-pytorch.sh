#!/usr/bin/env bash
# mentor against PyTorch on the CPU, same session, interleaved (Performance issue):
# three rounds of the PyTorch peer (../shared/bench/pytorch_step_bench.py, 2 threads)
# and `mentor bench cnn-step mlp-step` (mentor's kernels) and `--kernels burn`.
# usage: PYTHON=/path/to/venv/bin/python scripts/bench-vs-pytorch.sh [OUT]
# (the venv needs `pip install torch numpy`; nothing in mentor depends on it).
set -euo pipefail
out=${1:-runs/bench-vs-pytorch}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
peer=${PEER:-../shared/bench/pytorch_step_bench.py}
mkdir -p "$out"
for round in 1 2 3; do
  "$py" "$peer" 2 5 30 | grep RESULT > "$out/pytorch-r$round.txt"
  "$bin" bench cnn-step mlp-step --json > "$out/mentor-r$round.json"
  "$bin" bench cnn-step mlp-step --kernels burn --json > "$out/burn-r$round.json"
done
python3 - "$out" <<'PY'
import glob, json, re, statistics, sys
out = sys.argv[1]
torch = {"cnn-step": [], "mlp-step": []}
for f in sorted(glob.glob(f"{out}/pytorch-r*.txt")):
    for line in open(f):
        model = re.search(r"model=(\w+)", line).group(1)
        torch[f"{model}-step"].append(float(re.search(r"steps_per_s=([\d.]+)", line).group(1)))
def steps(kind):
    rates = {"cnn-step": [], "mlp-step": []}
    for f in sorted(glob.glob(f"{out}/{kind}-r*.json")):
        for r in json.load(open(f)):
            rates[r["workload"]].append(1.0 / r["seconds"])
    return rates
mentor, burn = steps("mentor"), steps("burn")
print("| step | PyTorch steps/s | mentor kernels steps/s | Burn flex steps/s | mentor / PyTorch (medians) |")
print("|---|---|---|---|---|")
for w in ("cnn-step", "mlp-step"):
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    ratio = statistics.median(mentor[w]) / statistics.median(torch[w])
    print(f"| {w} | {fmt(torch[w])} | {fmt(mentor[w])} | {fmt(burn[w])} | {ratio:.2f}x |")
PY
