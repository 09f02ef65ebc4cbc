"""PyTorch peer of one epoch of README's SimCLR pretraining on MNIST: `mentor ssl pretrain
--method simclr --dataset mnist --model cnn --set model.channels=[16,32] --lr 1e-3
--batch-size 256 --set strategy.augment.crop_scale=[0.2,1.0] --set
strategy.augment.flip=0.0 --epochs 1` (Chen et al. 2020).

The network: mentor's CNN backbone with 16/32 channels (conv3x3(16) - ReLU - maxpool2 -
conv3x3(32) - ReLU - maxpool2 - fc(128) - ReLU) and the projector Linear(128, 128) - ReLU
- Linear(128, 128); NT-Xent over the 2N views, tau 0.2; Adam lr 1e-3 (constant), batch
256 over a reshuffled 90% of the training images (10% held out), pixels normalised with
the training split's mean and std after augmentation. Views with torchvision's v2
transforms, per image, in a DataLoader with WORKERS worker processes (mentor's defaults
for 28x28 images): RandomResizedCrop(28, scale (0.2, 1)), RandomApply(ColorJitter(0.4,
0.4, 0.4, 0.1), p 0.8), RandomGrayscale(0.2), RandomApply(GaussianBlur(3, sigma 0.1/224
.. 2/224 of the side), p 0.5), no flip. After the epoch, as mentor's monitor, a weighted
kNN (k 200, T 0.1, cosine) of the backbone features with the first 10,000 training
images as the bank scores the validation and the test images.

Prints one JSON object: wall_seconds (from the start of main, imports excluded, as
mentor's summary counts from its start), the last step's loss and the kNN test accuracy.

usage: [ABLATE=jitter|blur] V/bin/python scripts/simclr_torch.py DATA_DIR [THREADS] [SEED] [WORKERS]
"""
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from continual_torch import read_idx  # noqa: E402

SIDE = 28


class Views(torch.utils.data.Dataset):
    def __init__(self, images, mean, std):
        self.images, self.mean, self.std = images, mean, std
        left_out = os.environ.get("ABLATE", "")  # "jitter" or "blur": leave that step out
        steps = [v2.RandomResizedCrop(SIDE, scale=(0.2, 1.0), antialias=True)]
        if left_out != "jitter":
            steps.append(v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8))
        steps.append(v2.RandomGrayscale(0.2))
        if left_out != "blur":
            steps.append(v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1 / 224 * SIDE, 2.0 / 224 * SIDE))], p=0.5))
        self.augment = v2.Compose(steps)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i]
        return tuple((self.augment(x) - self.mean) / self.std for _ in range(2))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 128)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return torch.relu(self.fc(x.flatten(1)))


def nt_xent(z1, z2, tau):
    n = len(z1)
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    sim.fill_diagonal_(-1e9)
    targets = (torch.arange(2 * n) + n) % (2 * n)
    return nn.functional.cross_entropy(sim, targets)


def knn_accuracy(bank, bank_y, queries, query_y, k=200, t=0.1, classes=10):
    bank = nn.functional.normalize(bank, dim=1)
    right = 0
    for i in range(0, len(queries), 256):
        q = nn.functional.normalize(queries[i : i + 256], dim=1)
        sims, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), classes).scatter_add_(1, bank_y[idx], (sims / t).exp())
        right += (votes.argmax(1) == query_y[i : i + 256]).sum().item()
    return right / len(queries)


def main():
    start = time.perf_counter()
    data_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    mnist = os.path.join(data_dir, "mnist")
    load = lambda name: read_idx(os.path.join(mnist, name))
    images = torch.from_numpy(load("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(load("train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(load("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    test_y = torch.from_numpy(load("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    order = torch.randperm(len(images))
    held = len(images) // 10
    val_x, val_y = images[order[:held]], labels[order[:held]]
    train_x, train_y = images[order[held:]], labels[order[held:]]
    mean, std = train_x.mean(), train_x.std()

    encoder = Encoder()
    projector = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128))
    params = list(encoder.parameters()) + list(projector.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loader = torch.utils.data.DataLoader(
        Views(train_x, mean, std), batch_size=256, shuffle=True, num_workers=workers,
        persistent_workers=False)
    for x1, x2 in loader:
        z = projector(encoder(torch.cat([x1, x2])))
        loss = nt_xent(z[: len(x1)], z[len(x1):], 0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    encoder.eval()
    with torch.no_grad():
        feats = lambda x: torch.cat([encoder((x[i : i + 1000] - mean) / std) for i in range(0, len(x), 1000)])
        bank, bank_y = feats(train_x[:10000]), train_y[:10000]
        knn_accuracy(bank, bank_y, feats(val_x), val_y)
        test_accuracy = knn_accuracy(bank, bank_y, feats(test_x), test_y)
    print(json.dumps({
        "wall_seconds": time.perf_counter() - start,
        "last_loss": loss.item(),
        "knn_test_accuracy": test_accuracy,
        "workers": workers,
    }))


if __name__ == "__main__":
    main()
