#!/usr/bin/env bash
# The GPU code paths without a GPU (issue 21): wgpu on Mesa's lavapipe, a software Vulkan
# driver on llvmpipe. Installs the driver if missing (Debian), builds mentor with
# `--features wgpu` into its own target directory (about an hour on 2 cores the first
# time; later runs reuse it), then
#   1. tests/wgpu.rs: every model family's logits (inference and training mode) and input
#      gradient from one set of weights on wgpu and on the CPU, to 1e-4;
#   2. no usable adapter (Vulkan and OpenGL drivers hidden) is one clear error line and a
#      non-zero exit, not a panic (without Vulkan, wgpu falls back to Mesa's OpenGL);
#   3. short runs of every strategy on the digits set on wgpu and on the CPU, same seed,
#      side by side (final test accuracy; tolerance 0.05: float sums differ in order, so
#      the runs drift apart over hundreds of steps).
# Run it before any change to device code. Not a speed check: lavapipe is a correctness
# vehicle (its first run compiles shaders, ~100 s; Mesa caches them on disk).
# usage: [STEPS="1 2 3"] scripts/wgpu-check.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/wgpu-check}
target=${CARGO_TARGET_DIR:-$HOME/.cache/mentor-target-wgpu}
mkdir -p "$out"
if ! vulkaninfo --summary >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends mesa-vulkan-drivers vulkan-tools
fi
vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" | tee "$out/vulkan.txt"
CARGO_TARGET_DIR=$target cargo build --release --features wgpu
bin=$target/release/mentor
steps=${STEPS:-1 2 3}
want() { [[ " $steps " == *" $1 "* ]]; }

if want 1; then
echo "== 1. logits and gradients, wgpu against the CPU"
CARGO_TARGET_DIR=$target cargo test --release --features wgpu --test wgpu -- --nocapture --test-threads 1 \
  2>&1 | tee "$out/logits.txt" | grep -E "relative difference|test result|FAILED|panicked"
fi

if want 2; then
echo "== 2. no graphics driver (Vulkan and EGL hidden from their loaders): one clear line, no panic"
set +e
VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json \
  __EGL_VENDOR_LIBRARY_FILENAMES=/nonexistent.json "$bin" train --dataset digits --model mlp --epochs 1 --device wgpu \
  --out "$out/no-driver" --overwrite > "$out/no-driver.txt" 2>&1
rc=$?
set -e
cat "$out/no-driver.txt"
if [ "$rc" -eq 0 ] || grep -q "panicked" "$out/no-driver.txt"; then
  echo "FAILED: a missing driver must be a one-line error (exit $rc)"; exit 1
fi
fi

want 3 || { echo "wgpu check passed (steps $steps): $out"; exit 0; }
echo "== 3. every strategy, wgpu beside the CPU (digits, same seed)"
# The teacher of `distill` and the source of `transfer` are the CPU runs above them.
cpu_ckpt() { echo "$out/$1-cpu/checkpoints/last.ckpt"; }
runs=(
  "train-mlp|train --dataset digits --model mlp --epochs 3"
  "train-cnn|train --dataset digits --model cnn --epochs 3"
  "train-resnet|train --dataset digits --model resnet --epochs 2"
  "distill|distill --dataset digits --teacher $(cpu_ckpt train-cnn) --model mlp --epochs 2"
  # The source's head is kept: a fresh head is drawn by each device's own generator, and
  # 44 Adam steps on frozen features leave the result to that draw (seeds 1-3 on the CPU
  # alone: train loss 0.41, 2.20, 2.16 after one epoch), not to the device.
  "transfer-frozen|transfer --dataset digits --pretrained $(cpu_ckpt train-resnet) --model resnet --freeze backbone --keep-head --epochs 2"
  "continual-replay|continual --dataset digits --method replay --setting class-il --iterations 100"
  "multitask|multitask --dataset digits --benchmark multi-digits --epochs 2"
  "simclr|ssl pretrain --dataset digits --method simclr --model cnn --epochs 2"
  "moco|ssl pretrain --dataset digits --method moco --model cnn --epochs 2"
)
printf '| run | CPU | wgpu | difference |\n|---|---|---|---|\n' > "$out/strategies.md"
fail=0
for entry in "${runs[@]}"; do
  name=${entry%%|*}; args=${entry#*|}
  for dev in cpu wgpu; do
    # shellcheck disable=SC2086
    "$bin" $args --device "$dev" --seed 1 --log-format quiet --out "$out/$name-$dev" --overwrite \
      > "$out/$name-$dev.log" 2>&1 || { echo "FAILED: $name on $dev"; tail -3 "$out/$name-$dev.log"; fail=1; }
  done
  python3 - "$out" "$name" >> "$out/strategies.md" <<'PY' || fail=1
import json, sys
out, name = sys.argv[1], sys.argv[2]
def score(dev):
    s = json.load(open(f"{out}/{name}-{dev}/summary.json"))
    for key in ("test_accuracy", "average_accuracy", "knn_accuracy", "probe_accuracy"):
        if isinstance(s.get(key), (int, float)):
            return key, s[key]
    tasks = s.get("task_accuracy")
    if isinstance(tasks, dict):
        tasks = list(tasks.values())
    if isinstance(tasks, list) and tasks and all(isinstance(t, (int, float)) for t in tasks):
        return "mean task_accuracy", sum(tasks) / len(tasks)
    for v in s.values():
        if isinstance(v, dict) and isinstance(v.get("test_accuracy"), (int, float)):
            return "test_accuracy", v["test_accuracy"]
    raise SystemExit(f"{name}: no accuracy in summary.json: {sorted(s)}")
(key, cpu), (_, gpu) = score("cpu"), score("wgpu")
print(f"| {name} ({key}) | {cpu:.4f} | {gpu:.4f} | {gpu - cpu:+.4f} |")
if abs(gpu - cpu) > 0.05:
    print(f"FAILED: {name}: wgpu {gpu:.4f} vs cpu {cpu:.4f}", file=sys.stderr)
    sys.exit(1)
PY
done
cat "$out/strategies.md"
[ "$fail" -eq 0 ] && echo "wgpu check passed: $out" || { echo "wgpu check FAILED"; exit 1; }
