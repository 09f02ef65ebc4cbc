"""Colour jitter on one MNIST image, mentor against torchvision: the pixel mean and
standard deviation over 300 jittered views of training image 0 (README, SimCLR epoch
against PyTorch). mentor's views come from `mentor augment` with only the jitter on
(always applied, no crop, flip, grey or blur); torchvision's from
`v2.ColorJitter(0.4, 0.4, 0.4, 0.1)` on the same image.

usage: V/bin/python scripts/jitter-stats.py DATA_DIR [MENTOR]
"""
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

VIEWS, SIDE, SCALE, GAP = 300, 28, 4, 4  # the grid `mentor augment` writes


def main():
    data_dir = sys.argv[1]
    mentor = sys.argv[2] if len(sys.argv) > 2 else "target/release/mentor"
    grid = os.path.join(tempfile.mkdtemp(), "jitter.png")
    aug = ["crop_scale=[1.0,1.0]", "crop_ratio=[1.0,1.0]", "flip=0.0", "jitter_p=1.0", "grayscale=0.0", "blur=0.0"]
    subprocess.run([mentor, "augment", "--dataset", "mnist", "--data-dir", data_dir, "--images", "1",
                    "--views", str(VIEWS), "--first", "0", "--out", grid]
                   + [a for x in aug for a in ("--aug", x)], check=True, capture_output=True)
    a = np.asarray(Image.open(grid).convert("L")).astype(np.float32) / 255
    step = SIDE * SCALE + GAP
    tiles = [a[GAP:GAP + SIDE * SCALE, k * step + GAP:(k + 1) * step][::SCALE, ::SCALE] for k in range(VIEWS + 1)]
    with gzip.open(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, SIDE, SIDE).astype(np.float32) / 255
    original = tiles[0]
    index = next(i for i in range(2000) if np.abs(images[i] - original).max() < 2 / 255)
    torch.manual_seed(0)
    jitter = v2.ColorJitter(0.4, 0.4, 0.4, 0.1)
    x = torch.from_numpy(images[index])[None]
    views = {"mentor": np.stack(tiles[1:]), "torchvision": np.stack([jitter(x)[0].numpy() for _ in range(VIEWS)])}
    print(f"MNIST training image {index}, {VIEWS} views")
    for name, v in views.items():
        flat = v.reshape(VIEWS, -1)
        means, stds = flat.mean(1), flat.std(1)
        print(f"{name:12s} mean pixel {means.mean():.4f} (sd over views {means.std():.4f}) "
              f"pixel std {stds.mean():.4f} (sd {stds.std():.4f})")


if __name__ == "__main__":
    main()
