"""PyTorch peer of `mentor continual --dataset mnist --scenario split --tasks 5 --setting
task-il --method finetune` (van de Ven & Tolias 2019's Split-MNIST protocol, mentor's
defaults): MLP 784-400-400-10 with ReLU, Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8; its
state kept across tasks), batch 128, 2000 iterations per task over reshuffled epochs of
the task's training images, pixels in [0, 1]; task-IL: each task's two output units,
the others masked before the softmax. Like mentor it scores every task's test images
before training (the `untrained` row) and after each task, and reads the data from the
same gzip'd IDX files, so the wall time is the whole run's.

Prints one JSON object: wall_seconds (from the start of this script's main, imports
excluded, as mentor's summary counts from its start), the accuracy matrix, and the final
average accuracy.

usage: V/bin/python scripts/continual_torch.py DATA_DIR [THREADS] [SEED]
"""
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    start = time.perf_counter()
    data_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    mnist = os.path.join(data_dir, "mnist")
    load = lambda name: read_idx(os.path.join(mnist, name))
    train_x = torch.from_numpy(load("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    train_y = torch.from_numpy(load("train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(load("t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    test_y = torch.from_numpy(load("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    tasks = [(2 * t, 2 * t + 1) for t in range(5)]

    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()

    def mask_of(task):
        mask = torch.full((10,), float("-inf"))
        mask[list(tasks[task])] = 0.0
        return mask

    def subset(x, y, task):
        keep = (y == tasks[task][0]) | (y == tasks[task][1])
        return x[keep], y[keep]

    test_sets = [subset(test_x, test_y, t) for t in range(len(tasks))]

    @torch.no_grad()
    def score_all():
        model.eval()
        row = []
        for t, (x, y) in enumerate(test_sets):
            correct = 0
            for i in range(0, len(y), 1024):
                logits = model(x[i : i + 1024]) + mask_of(t)
                correct += (logits.argmax(1) == y[i : i + 1024]).sum().item()
            row.append(correct / len(y))
        model.train()
        return row

    untrained = score_all()
    rows = []
    for t in range(len(tasks)):
        x, y = subset(train_x, train_y, t)
        mask = mask_of(t)
        steps = 0
        while steps < 2000:
            order = torch.randperm(len(y))
            for i in range(0, len(y), 128):
                batch = order[i : i + 128]
                loss = loss_fn(model(x[batch]) + mask, y[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                steps += 1
                if steps == 2000:
                    break
        rows.append(score_all())
    wall = time.perf_counter() - start
    print(json.dumps({
        "wall_seconds": wall,
        "untrained": untrained,
        "matrix": rows,
        "average_accuracy": sum(rows[-1]) / len(rows[-1]),
        "threads": threads,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
