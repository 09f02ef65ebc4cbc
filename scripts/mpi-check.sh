#!/usr/bin/env bash
# Data parallel across MPI ranks: installs Open MPI if it is missing (Debian), builds
# mentor with --features mpi into its own target directory (reused by later runs), runs
# the MPI tests (tests/mpi.rs), then measures one process against two ranks on MNIST
# (or the embedded digits when no MNIST folder is given).
#
#   scripts/mpi-check.sh [--bench-only | --tests-only] [MNIST_DIR]
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/mentor-target-mpi).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
--bench-only | --tests-only)
    mode=${1#--}
    shift
    ;;
esac
mnist=${1:-../shared/datasets/mnist}

have_mpi() {
    command -v mpirun > /dev/null && command -v mpicc > /dev/null
}
if ! have_mpi; then
    echo "installing Open MPI (openmpi-bin libopenmpi-dev) and libclang-dev for rsmpi's bindings"
    sudo_=""
    [ "$(id -u)" -ne 0 ] && sudo_=sudo
    $sudo_ apt-get update -qq
    $sudo_ apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev > /dev/null
fi
# Open MPI refuses to start as root (containers) without these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mentor-target-mpi}
mpirun --version | head -1

if [ "$mode" != bench-only ]; then
    cargo test --release --features mpi --test mpi
fi
[ "$mode" = tests-only ] && exit 0

cargo build --release --features mpi
mentor=$CARGO_TARGET_DIR/release/mentor
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(grep -o -w -E 'avx512f|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')
cores=$(nproc)
if [ -d "$mnist" ]; then
    data=(--dataset mnist --data-dir "$(dirname "$mnist")")
    name=MNIST
else
    data=(--dataset digits)
    name=digits
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rate() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{s['train_samples_per_second']:.0f} {s['test_accuracy']:.4f}\")" "$1/summary.json"; }

echo "| model | run | samples/s (median of 3) | test accuracy |"
echo "| --- | --- | --- | --- |"
for model in mlp cnn; do
    epochs=2
    [ "$model" = cnn ] && epochs=1
    args=(train "${data[@]}" --model "$model" --epochs "$epochs" --batch-size 128 --log-format quiet)
    for how in "1 process" "2 ranks" "1 process, 1 thread" "2 ranks, 1 thread each"; do
        rates=()
        for round in 1 2 3; do
            dir=$out/$model-${how// /_}-$round
            case $how in
            "1 process") "$mentor" "${args[@]}" --out "$dir" ;;
            "2 ranks") mpirun --oversubscribe -np 2 "$mentor" "${args[@]}" --out "$dir" ;;
            "1 process, 1 thread") RAYON_NUM_THREADS=1 "$mentor" "${args[@]}" --out "$dir" ;;
            *) mpirun --oversubscribe -np 2 -x RAYON_NUM_THREADS=1 "$mentor" "${args[@]}" --out "$dir" ;;
            esac
            rates+=("$(rate "$dir")")
        done
        median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
        echo "| $model ($name, $epochs epochs, batch 128) | $how | ${median% *} | ${median#* } |"
    done
done
echo "CPU: $cpu ($flags), $cores cores; $(mpirun --version | head -1)"
