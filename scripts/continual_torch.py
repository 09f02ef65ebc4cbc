"""PyTorch peer of `mentor continual --dataset mnist --scenario split --tasks 5 --setting
task-il --method METHOD` (van de Ven & Tolias 2019's Split-MNIST protocol, mentor's
defaults): MLP 784-400-400-10 with ReLU, Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8; its
state kept across tasks), batch 128, 2000 iterations per task over reshuffled epochs of
the task's training images, pixels in [0, 1]; task-IL: each task's two output units,
the others masked before the softmax. METHOD (mentor's defaults, as in its
src/continual/methods):
- finetune: the task's loss alone.
- lwf (Li & Hoiem 2016): before each later task the network's logits on that task's
  training images are recorded; each step adds `lambda * sum over old heads T^2 *
  CE(softmax(recorded/T), log_softmax(logits/T))`, batch mean, lambda 1, T 2.
- ewc (Kirkpatrick et al. 2017): after each task the diagonal Fisher from 1000 of its
  training examples (a seeded choice), one example at a time, the gradient of the
  cross-entropy against the predicted label (outputs masked to the task's head),
  squared and averaged, and the weights; each later step adds `lambda / 2 * sum over
  terms F (w - w*)^2`, one term per task, lambda EWC_LAMBDA (1e9: the task-IL value of
  scripts/continual-experiment.sh).
- replay: a 2000-example reservoir buffer offered each task's examples after it
  trains; from task 2 on each step adds a batch of 128 buffer examples drawn with
  replacement, each masked to its own task's head, weighted `1 - 1/t` against the
  current batch's `1/t` (t the 1-based task).
Like mentor it scores every task's test images
before training (the `untrained` row) and after each task, and reads the data from the
same gzip'd IDX files, so the wall time is the whole run's.

Prints one JSON object: wall_seconds (from the start of this script's main, imports
excluded, as mentor's summary counts from its start), the accuracy matrix, and the final
average accuracy.

usage: [EWC_LAMBDA=1e9] [ITERATIONS=2000] V/bin/python scripts/continual_torch.py DATA_DIR [THREADS] [SEED] [METHOD]
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
    method = sys.argv[4] if len(sys.argv) > 4 else "finetune"
    assert method in ("finetune", "lwf", "ewc", "replay"), f"unknown method {method}"
    ewc_lambda = float(os.environ.get("EWC_LAMBDA", "1e9"))
    iterations = int(os.environ.get("ITERATIONS", "2000"))  # per task; 2000 is the protocol
    temperature, lwf_lambda, fisher_samples, buffer_size, batch = 2.0, 1.0, 1000, 2000, 128
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

    masks = torch.stack([mask_of(t) for t in range(len(tasks))])
    generator = np.random.default_rng(seed)
    ewc_terms = []  # (fisher, anchor) per task
    buffer_x, buffer_y, buffer_task, seen = [], [], [], 0  # reservoir of examples

    def fisher_of(x, task):
        params = [p for p in model.parameters()]
        sums = [torch.zeros_like(p) for p in params]
        chosen = generator.permutation(len(x))[:fisher_samples]
        for i in chosen:
            logits = model(x[i : i + 1]) + masks[task]
            loss = loss_fn(logits, logits.detach().argmax(1))
            grads = torch.autograd.grad(loss, params)
            for s_, g in zip(sums, grads):
                s_ += g * g
        return [s_ / len(chosen) for s_ in sums], [p.detach().clone() for p in params]

    untrained = score_all()
    rows = []
    for t in range(len(tasks)):
        x, y = subset(train_x, train_y, t)
        mask = mask_of(t)
        recorded = None
        if method == "lwf" and t > 0:
            with torch.no_grad():
                recorded = torch.cat([model(x[i : i + 1024]) for i in range(0, len(y), 1024)])
        if method == "replay" and t > 0:
            replay_x = torch.stack(buffer_x)
            replay_y = torch.tensor([int(y_) for y_ in buffer_y])
            replay_task = torch.tensor(buffer_task)
        steps = 0
        while steps < iterations:
            order = torch.randperm(len(y))
            for i in range(0, len(y), batch):
                chosen = order[i : i + batch]
                logits = model(x[chosen])
                loss = loss_fn(logits + mask, y[chosen])
                if recorded is not None:
                    old = recorded[chosen]
                    for k in range(t):
                        head = list(tasks[k])
                        q = torch.softmax(old[:, head] / temperature, 1)
                        log_p = torch.log_softmax(logits[:, head] / temperature, 1)
                        kd = -(q * log_p).sum(1).mean() * temperature**2
                        loss = loss + lwf_lambda * kd
                if ewc_terms:
                    penalty = 0.0
                    for fisher, anchor in ewc_terms:
                        for p, f, a in zip(model.parameters(), fisher, anchor):
                            penalty = penalty + (f * (p - a) ** 2).sum()
                    loss = loss + ewc_lambda / 2 * penalty
                if method == "replay" and t > 0:
                    at = torch.from_numpy(generator.integers(0, len(replay_y), batch))
                    old_logits = model(replay_x[at]) + masks[replay_task[at]]
                    w_new = 1.0 / (t + 1)
                    loss = w_new * loss + (1 - w_new) * loss_fn(old_logits, replay_y[at])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                steps += 1
                if steps == iterations:
                    break
        if method == "ewc":
            ewc_terms.append(fisher_of(x, t))
        if method == "replay":
            for i in generator.permutation(len(y)):
                seen += 1
                if len(buffer_x) < buffer_size:
                    buffer_x.append(x[i]); buffer_y.append(y[i]); buffer_task.append(t)
                else:
                    j = generator.integers(0, seen)
                    if j < buffer_size:
                        buffer_x[j], buffer_y[j], buffer_task[j] = x[i], y[i], t
        rows.append(score_all())
    wall = time.perf_counter() - start
    print(json.dumps({
        "wall_seconds": wall,
        "untrained": untrained,
        "matrix": rows,
        "average_accuracy": sum(rows[-1]) / len(rows[-1]),
        "method": method,
        "threads": threads,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
