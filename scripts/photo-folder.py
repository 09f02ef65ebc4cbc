#!/usr/bin/env python3
"""An image folder of real photo content for the loader benchmarks (no natural-image
dataset is reachable here): scikit-image's natural photos, each output a seeded random
crop (half to all of the photo's area, 4:3 or 3:4) resized to 500x375 or 375x500 as a
camera would give, flipped at random, saved as a quality-90 JPEG; one class per source
photo.

    V/bin/pip download --no-deps scikit-image -d W && (cd W && unzip -q *.whl 'skimage/data/*')
    V/bin/python scripts/photo-folder.py W/skimage/data OUT [--count 400] [--seed 0] [--mixed]

writes OUT/train/<photo>/<i>.jpg; with --mixed each photo's long side is drawn from
320..1024 pixels instead of 500. Needs Pillow (torchvision's venv has it).
"""

import argparse
import os
import random

from PIL import Image

# The natural colour photographs among scikit-image's data files.
PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", help="skimage/data of an unpacked scikit-image wheel")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed", action="store_true", help="long sides 320..1024")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sources = [(os.path.splitext(p)[0], Image.open(os.path.join(args.photos, p)).convert("RGB")) for p in PHOTOS]
    sizes = []
    for i in range(args.count):
        name, photo = sources[i % len(sources)]
        w, h = photo.size
        portrait = rng.random() < 0.3
        ratio = 3 / 4 if portrait else 4 / 3
        area = w * h * rng.uniform(0.5, 1.0)
        cw = min(w, round((area * ratio) ** 0.5))
        ch = min(h, round(cw / ratio))
        cw = min(cw, round(ch * ratio))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        long = rng.randint(320, 1024) if args.mixed else 500
        short = round(long * 3 / 4)
        size = (short, long) if portrait else (long, short)
        img = photo.crop((x, y, x + cw, y + ch)).resize(size, Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        folder = os.path.join(args.out, "train", name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{i:04}.jpg")
        img.save(path, quality=90)
        sizes.append(os.path.getsize(path))
    print(
        f"{args.count} JPEGs in {len(sources)} classes under {args.out}/train, "
        f"{sum(sizes) / len(sizes) / 1024:.0f} KB each on average"
    )


if __name__ == "__main__":
    main()
