"""PyTorch peer of `mentor distill --config examples/kd-mnist-student.toml --teacher T
--temperature 20 --lambda 0.9` (Hinton et al. 2015 on MNIST, README's KD table): the
student MLP 784-800-800-10 with ReLU learns from the teacher CNN (conv3x3(32) - ReLU -
maxpool2 - conv3x3(64) - ReLU - maxpool2 - fc(128) - ReLU - head, the weights mentor
trained, loaded from `mentor export --checkpoint T --out teacher.safetensors`, PyTorch
names and layouts) for 10 epochs: Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8), cosine
schedule per step to 0, batch 128 over a reshuffled 90% of the training images (10%
held out for validation), pixels normalised with the training split's mean and std.
Loss `T^2 lambda CE(softmax(t/T), log_softmax(s/T)) + (1 - lambda) CE(y, s)`, batch mean.
CACHE=1 computes the teacher's logits once for the training split (mentor's
`strategy.cache_teacher = true`, its default on images in memory); CACHE=0 runs the
teacher on every batch. Like mentor it scores the validation and test images after
every epoch and reads the same gzip'd IDX files, so the wall time is the whole run's.

Prints one JSON object: wall_seconds (from the start of main, imports excluded, as
mentor's summary counts from its start), the student's final test accuracy, and the
teacher's test accuracy (which must equal mentor's teacher run's: the check that the
exported weights mean the same network here).

usage: V/bin/python scripts/kd_torch.py DATA_DIR TEACHER.safetensors [THREADS] [SEED] [CACHE]
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from continual_torch import read_idx  # noqa: E402


class Cnn(nn.Module):
    """mentor's `cnn` with its parameter names."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.backbone.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.backbone.fc = nn.Linear(64 * 7 * 7, 128)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        b = self.backbone
        x = torch.max_pool2d(torch.relu(b.conv1(x.view(-1, 1, 28, 28))), 2)
        x = torch.max_pool2d(torch.relu(b.conv2(x)), 2)
        return self.head(torch.relu(b.fc(x.flatten(1))))


def main():
    start = time.perf_counter()
    data_dir, teacher_file = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    cache = (sys.argv[5] if len(sys.argv) > 5 else "1") == "1"
    epochs, batch, lr, temperature, lam = 10, 128, 1e-3, 20.0, 0.9
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    mnist = os.path.join(data_dir, "mnist")
    load = lambda name: read_idx(os.path.join(mnist, name))
    images = torch.from_numpy(load("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    labels = torch.from_numpy(load("train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(load("t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    test_y = torch.from_numpy(load("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    order = torch.randperm(len(images))
    held = len(images) // 10
    val_x, val_y = images[order[:held]], labels[order[:held]]
    train_x, train_y = images[order[held:]], labels[order[held:]]
    mean, std = train_x.mean(), train_x.std()
    train_x, val_x, test_x = [(x - mean) / std for x in (train_x, val_x, test_x)]

    teacher = Cnn()
    teacher.load_state_dict(load_file(teacher_file))
    teacher.eval()
    student = nn.Sequential(nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(), nn.Linear(800, 10))
    opt = torch.optim.Adam(student.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def scored(model, x, y):
        model.eval()
        loss, right = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(x), 1000):
                logits = model(x[i : i + 1000])
                loss += nn.functional.cross_entropy(logits, y[i : i + 1000], reduction="sum").item()
                right += (logits.argmax(1) == y[i : i + 1000]).sum().item()
        model.train()
        return loss / len(x), right / len(x)

    teacher_accuracy = scored(teacher, test_x, test_y)[1]
    cached = None
    if cache:
        with torch.no_grad():
            cached = torch.cat([teacher(train_x[i : i + 1000]) for i in range(0, len(train_x), 1000)])
    steps = math.ceil(len(train_x) / batch)
    for epoch in range(epochs):
        perm = torch.randperm(len(train_x))
        for s in range(steps):
            progress = epoch + s / steps
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * (1 + math.cos(math.pi * progress / epochs))
            idx = perm[s * batch : (s + 1) * batch]
            x, y = train_x[idx], train_y[idx]
            if cached is not None:
                t = cached[idx]
            else:
                with torch.no_grad():
                    t = teacher(x)
            out = student(x)
            soft = -(torch.softmax(t / temperature, 1) * torch.log_softmax(out / temperature, 1)).sum(1).mean()
            loss = temperature**2 * lam * soft + (1 - lam) * nn.functional.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        scored(student, val_x, val_y)
        test_accuracy = scored(student, test_x, test_y)[1]
    print(json.dumps({
        "wall_seconds": time.perf_counter() - start,
        "test_accuracy": test_accuracy,
        "teacher_test_accuracy": teacher_accuracy,
        "cache_teacher": cache,
    }))


if __name__ == "__main__":
    main()
