#!/usr/bin/env bash
# Continual learning after van de Ven & Tolias (2019), "Three scenarios for continual
# learning", with their Split-MNIST protocol (the defaults of `mentor continual`): MLP
# 2x400, Adam lr 1e-3 (state kept across tasks), batch 128, 2000 iterations per task,
# 3 seeds; methods: fine-tuning, feature extraction, joint, LwF, EWC and replay
# (reservoir buffer of 2000).
#   SCENARIO=split (default): Split-MNIST, 5 tasks of 2 digits, task-IL and class-IL;
#     EWC lambda 1e9 (task-IL) / 1e5 (others), van de Ven & Tolias's grid-searched values.
#   SCENARIO=permuted: Permuted-MNIST, 10 tasks, domain-IL, same protocol; EWC lambda 1e5
#     (their Split-MNIST domain/class value, not tuned here).
# usage: [SCENARIO=split|permuted] [SETTINGS="..."] [METHODS="..."] [SEEDS="1 2 3"]
#        [PARALLEL=2] scripts/continual-experiment.sh [DATA_DIR] [OUT]
# Runs whose summary.json exists are skipped; an interrupted one resumes (--resume).
set -euo pipefail
data=${1:-../shared/datasets}
out=${2:-runs/continual}
bin=${MENTOR:-target/release/mentor}
scenario=${SCENARIO:-split}
if [ "$scenario" = permuted ]; then
  settings=${SETTINGS:-domain-il}; scen=(--scenario permuted --tasks 10)
else
  settings=${SETTINGS:-task-il class-il}; scen=(--scenario split --tasks 5)
fi
jobs=()
for setting in $settings; do
  if [ "$scenario" = split ] && [ "$setting" = task-il ]; then ewc=1e9; else ewc=1e5; fi
  for method in ${METHODS:-finetune feature-extraction joint lwf ewc replay}; do
    extra=()
    [ "$method" = ewc ] && extra=(--set "strategy.method.lambda=$ewc")
    for seed in ${SEEDS:-1 2 3}; do
      d=$out/$scenario-mnist/$setting/$method-s$seed
      [ -f "$d/summary.json" ] && continue
      resume=(); [ -f "$d/config.toml" ] && resume=(--resume)
      jobs+=("$bin continual --dataset mnist --data-dir $data ${scen[*]} --setting $setting --method $method ${extra[*]} --seed $seed --log-format quiet --out $d ${resume[*]}")
    done
  done
done
if [ ${#jobs[@]} -gt 0 ]; then
  printf '%s\n' "${jobs[@]}" | xargs -P "${PARALLEL:-2}" -I{} sh -c '{} 2>&1 | tail -1'
fi
for setting in $settings; do
  "$bin" summarize "$out/$scenario-mnist/$setting"/*
done
