#!/usr/bin/env python3
"""mentor's image loader beside torchvision's, in the same run, on the same folder.

Both read the folder's training split (DIR/train/<class>/... or DIR/<class>/...),
decode, RandomResizedCrop(224), RandomHorizontalFlip, normalise with ImageNet's
statistics and batch 64 images, with 1 and then 2 workers (mentor: worker threads of
`mentor bench loader`; torchvision: ImageFolder + DataLoader worker processes). Each
times STEPS batches after one untimed pass over the folder (page cache warm), and the
script prints images/s, the median of ROUNDS rounds, and mentor's ratio to torchvision.

    ~/.cache/torch-venv/bin/python scripts/bench-loader.py DIR [--steps 30] [--rounds 3]

Needs torch and torchvision (`python3 -m venv V && V/bin/pip install torch torchvision`).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def torchvision_rate(root, workers, steps, batch=64):
    tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    data = datasets.ImageFolder(root, transform=tf)
    loader = DataLoader(
        data, batch_size=batch, shuffle=True, num_workers=workers, prefetch_factor=4,
        persistent_workers=True,
    )
    for _ in loader:  # one untimed pass: workers started, page cache warm
        pass
    images, batches = 0, 0
    start = time.perf_counter()
    while batches < steps:
        for x, _ in loader:
            images += x.shape[0]
            batches += 1
            if batches == steps:
                break
    return images / (time.perf_counter() - start)


def mentor_rates(mentor, folder, steps):
    out = subprocess.run(
        [mentor, "bench", "loader", "--data-dir", folder, "--steps", str(steps), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {r["threads"]: r["samples_per_second"] for r in json.loads(out)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mentor", default="target/release/mentor")
    args = ap.parse_args()
    train = os.path.join(args.folder, "train")
    root = train if os.path.isdir(train) else args.folder
    rates = {("mentor", w): [] for w in (1, 2)}
    rates.update({("torchvision", w): [] for w in (1, 2)})
    for _ in range(args.rounds):
        for w, r in mentor_rates(args.mentor, args.folder, args.steps).items():
            rates[("mentor", w)].append(r)
        for w in (1, 2):
            rates[("torchvision", w)].append(torchvision_rate(root, w, args.steps))
    print("| workers | mentor images/s | torchvision images/s | mentor / torchvision |")
    print("|---|---|---|---|")
    for w in (1, 2):
        m = statistics.median(rates[("mentor", w)])
        t = statistics.median(rates[("torchvision", w)])
        print(f"| {w} | {m:.0f} | {t:.0f} | {m / t:.2f}x |")
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(
        f"{len(datasets.ImageFolder(root))} images; {args.steps} batches of 64 timed, "
        f"median of {args.rounds} rounds; {cpu}, {os.cpu_count()} CPUs; "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    )


if __name__ == "__main__":
    main()
