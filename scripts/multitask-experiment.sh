#!/usr/bin/env bash
# Multitask learning, 3 seeds, MLP 2x400 (Adam lr 1e-3, batch 128, 6 epochs; a CPU
# budget: the CNN would take ~8x longer per run).
# 1. MultiMNIST (Sener & Koltun 2018; built from MNIST by `--benchmark multi-digits`):
#    single-task networks for the left and the right digit; hard sharing, soft sharing
#    (lambda 1e-3, not tuned) and cross-stitch (alphas 0.9 / 0.1) with equal, DWA (T = 2),
#    uncertainty and GradNorm (alpha 1.5) weights.
# 2. Fashion-MNIST with an auxiliary coarse task (tops, trousers/dresses, footwear,
#    bags): the 10-class task alone and with the auxiliary task (hard sharing, equal).
# usage: [SEEDS="1 2 3"] [PARALLEL=2] scripts/multitask-experiment.sh [DATA_DIR] [OUT]
# Runs whose summary.json exists are skipped.
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/multitask}
bin=${MENTOR:-target/release/mentor}
common="--model mlp --set model.hidden=[400,400] --epochs ${EPOCHS:-6} --batch-size 128 --lr 1e-3 --set data.val_fraction=0.0 --log-format quiet"
run() { # dir, args...
  local d=$1; shift
  [ -f "$d/summary.json" ] || echo "$bin multitask $* $common --out $d"
}
singles=() multi=()
for seed in ${SEEDS:-1 2 3}; do
  m=$out/multi-mnist; mm="--dataset mnist --data-dir $data --benchmark multi-digits --seed $seed"
  singles+=("$(run $m/single-left-s$seed $mm --task 0)" "$(run $m/single-right-s$seed $mm --task 1)")
  base="--baseline $m/single-left-s$seed --baseline $m/single-right-s$seed"
  for w in fixed dwa uncertainty gradnorm; do
    multi+=("$(run $m/hard-$w-s$seed $mm --weighting $w $base)")
    multi+=("$(run $m/soft-$w-s$seed $mm --weighting $w --architecture soft --set strategy.architecture.lambda=1e-3 $base)")
    multi+=("$(run $m/cross-stitch-$w-s$seed $mm --weighting $w --architecture cross-stitch $base)")
  done
  f=$out/fashion-aux; ff="--dataset fashion-mnist --data-dir $data --benchmark coarse --seed $seed"
  singles+=("$(run $f/main-alone-s$seed $ff --task 0)" "$(run $f/coarse-alone-s$seed $ff --task 1)")
  multi+=("$(run $f/main-with-aux-s$seed $ff --baseline $f/main-alone-s$seed --baseline $f/coarse-alone-s$seed)")
done
for list in singles multi; do
  declare -n jobs=$list
  printf '%s\n' "${jobs[@]}" | grep -v '^$' | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} 2>&1 | tail -1' || true
done
"$bin" summarize "$out"/multi-mnist/* "$out"/fashion-aux/*
