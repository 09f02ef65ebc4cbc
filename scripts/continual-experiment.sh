#!/usr/bin/env bash
# Continual learning after van de Ven & Tolias (2019), "Three scenarios for continual
# learning": Split-MNIST (5 tasks of 2 digits) in task-IL and class-IL, MLP 2x400, Adam
# lr 1e-3 (state kept across tasks), batch 128, 2000 iterations per task (the defaults of
# `mentor continual`), 3 seeds; methods: fine-tuning, feature extraction, joint, LwF, EWC
# (lambda 1e9 task-IL / 1e5 class-IL, van de Ven & Tolias's grid-searched values) and
# replay (reservoir buffer of 2000).
# usage: [SETTINGS="task-il class-il"] [METHODS="..."] [SEEDS="1 2 3"] [PARALLEL=2]
#        scripts/continual-experiment.sh [DATA_DIR] [OUT]
# Runs whose summary.json exists are skipped (an interrupted run resumes with --resume).
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/continual}
bin=${MENTOR:-target/release/mentor}
jobs=()
for setting in ${SETTINGS:-task-il class-il}; do
  if [ "$setting" = task-il ]; then ewc=1e9; else ewc=1e5; fi
  for method in ${METHODS:-finetune feature-extraction joint lwf ewc replay}; do
    extra=()
    [ "$method" = ewc ] && extra=(--set "strategy.method.lambda=$ewc")
    for seed in ${SEEDS:-1 2 3}; do
      d=$out/split-mnist/$setting/$method-s$seed
      [ -f "$d/summary.json" ] && continue
      resume=(); [ -f "$d/config.toml" ] && resume=(--resume)
      jobs+=("$bin continual --dataset mnist --data-dir $data --setting $setting --method $method ${extra[*]} --seed $seed --log-format quiet --out $d ${resume[*]}")
    done
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} 2>&1 | tail -1'
for setting in ${SETTINGS:-task-il class-il}; do
  "$bin" summarize "$out/split-mnist/$setting"/*
done
