#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and CUDA (under 5 minutes after the build):
# builds mentor with the cuda feature, runs the CNN and MLP step benchmarks on the GPU and
# on the CPU, one short training run on the GPU, and the same run data-parallel through
# Burn's DDP (`--devices`, NCCL all-reduce) on every GPU the machine has (one works too).
# The cuda build downloads an LLVM bundle (tracel-llvm-bundler, a build dependency of
# cubecl-cuda): run it where the build can reach the network, or with that bundle cached.
# usage: scripts/gpu-check.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/gpu-check}
mkdir -p "$out"
cargo build --release --features cuda
bin=target/release/mentor
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt" || true
"$bin" bench cnn-step mlp-step --device cuda --json | tee "$out/bench-cuda.json"
"$bin" bench cnn-step mlp-step --device cpu --json | tee "$out/bench-cpu.json"
"$bin" train --dataset digits --model cnn --epochs 3 --device cuda --log-format jsonl --out "$out/train-cuda" \
  | tee "$out/train-cuda.jsonl"
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed 's/^/cuda:/' | paste -sd, -)
"$bin" train --dataset digits --model cnn --epochs 3 --devices "${gpus:-cuda:0}" --log-format jsonl \
  --out "$out/train-ddp" | tee "$out/train-ddp.jsonl"
echo "GPU check done: $out"
