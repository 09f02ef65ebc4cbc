#!/usr/bin/env bash
# mentor's CPU kernels against Burn's flex built-ins (Performance issue): three
# interleaved rounds of each step workload with --kernels burn and --kernels mentor, in
# one session on an otherwise idle machine; JSON per run in OUT, medians printed.
# usage: scripts/bench-kernels.sh [OUT] ; WORKLOADS="cnn-step ..." to choose.
set -euo pipefail
out=${1:-runs/bench-kernels}
bin=${MENTOR:-target/release/mentor}
workloads=${WORKLOADS:-cnn-step resnet-step mlp-step simclr-step}
mkdir -p "$out"
for round in 1 2 3; do
  for w in $workloads; do
    for k in burn mentor; do
      "$bin" bench "$w" --kernels "$k" --json > "$out/$w-$k-r$round.json"
    done
  done
done
python3 - "$out" $workloads <<'PY'
import json, statistics, sys, glob
out, workloads = sys.argv[1], sys.argv[2:]
print("| workload | burn samples/s (3 rounds) | mentor samples/s (3 rounds) | ratio of medians | peak MiB burn / mentor |")
print("|---|---|---|---|---|")
for w in workloads:
    runs = {k: [json.load(open(f))[0] for f in sorted(glob.glob(f"{out}/{w}-{k}-r*.json"))] for k in ("burn", "mentor")}
    rate = {k: [r["samples_per_second"] for r in v] for k, v in runs.items()}
    mem = {k: max(r["peak_memory_mib"] for r in v) for k, v in runs.items()}
    ratio = statistics.median(rate["mentor"]) / statistics.median(rate["burn"])
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    print(f"| {w} | {fmt(rate['burn'])} | {fmt(rate['mentor'])} | {ratio:.2f}x | {mem['burn']:.0f} / {mem['mentor']:.0f} |")
PY
