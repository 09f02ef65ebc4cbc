#!/usr/bin/env bash
# EfficientNet-Lite0 on the CPU, mentor against PyTorch in the same session, interleaved:
# three rounds of the PyTorch peer (scripts/bench-efficientnet.py: the reference package,
# 2 threads) and `mentor bench efficientnet-lite0-infer efficientnet-lite0-step`.
# Prints medians over the rounds (each round's number is itself a median over steps)
# and mentor / PyTorch throughput ratios.
# usage: PYTHON=V/bin/python EFFICIENTNET_PKGS=pkgs scripts/bench-efficientnet-vs-pytorch.sh [OUT]
set -euo pipefail
out=${1:-runs/bench-efficientnet}
bin=${MENTOR:-target/release/mentor}
py=${PYTHON:-python3}
steps=${STEPS:-8}
mkdir -p "$out"
for round in 1 2 3; do
  "$py" scripts/bench-efficientnet.py 2 2 "$steps" 2>/dev/null > "$out/pytorch-r$round.json"
  "$bin" bench efficientnet-lite0-infer efficientnet-lite0-step --steps "$steps" --warmup 2 --json \
    > "$out/mentor-r$round.json"
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def load(kind):
    by = {}
    for f in sorted(glob.glob(f"{out}/{kind}-r*.json")):
        for r in json.load(open(f)):
            by.setdefault(r["workload"], []).append(r)
    return by
torch, mentor = load("pytorch"), load("mentor")
print("| workload | PyTorch s (3 rounds) | mentor s (3 rounds) | mentor / PyTorch speed | peak MiB PyTorch / mentor |")
print("|---|---|---|---|---|")
for w in ("efficientnet-lite0-infer/batch-1", "efficientnet-lite0-infer/batch-32", "efficientnet-lite0-step"):
    t = [r["seconds"] for r in torch[w]]
    m = [r["seconds"] for r in mentor[w]]
    fmt = lambda xs: ", ".join(f"{x:.3f}" for x in xs)
    ratio = statistics.median(t) / statistics.median(m)
    mem = f'{max(r["peak_memory_mib"] for r in torch[w]):.0f} / {max(r["peak_memory_mib"] for r in mentor[w]):.0f}'
    print(f"| {w} | {fmt(t)} | {fmt(m)} | {ratio:.2f}x | {mem} |")
PY
