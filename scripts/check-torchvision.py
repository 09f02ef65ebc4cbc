"""Checks of mentor's torchvision families against torchvision itself.

torchvision builds every family with random weights and its exact module names; nothing
here downloads weights. Set up once (no GPU needed; about 3 GB):

    python3 -m venv V && V/bin/pip install torch torchvision safetensors

Modes:

  counts                 parameter counts of torchvision's resnet18, resnet34, resnet50,
                         mobilenet_v2, efficientnet_b0 and mobilenet_v3_small for 1000 classes (`sum(p.numel() for p in m.parameters())`),
                         the numbers mentor's unit tests and `mentor params` give.
  fixture OUT_DIR        writes the small committed fixtures of the default test suite:
                         torchvision's resnet18 with every stage's channels scaled by 1/16
                         and resnet50 scaled by 1/32 (its own BasicBlock/Bottleneck
                         classes, only the widths changed), mobilenet_v2 at width_mult 0.1
                         with a 32-channel last convolution, efficientnet_b0 at width_mult
                         0.1 and depth_mult 0.5, mobilenet_v3_small at width_mult 0.1,
                         10 classes, seeded random
                         weights and random batch-norm statistics, saved by torch.save
                         (`torchvision-<family>.pth`), and two fixed 3x40x40 inputs with
                         its logits in eval mode (`torchvision-<family>-io.safetensors`).
  parity FAMILY DUMP WEIGHTS
                         DUMP from `mentor predict --pretrained WEIGHTS --model FAMILY ...
                         --dump DUMP`: torchvision's FAMILY (full size) with WEIGHTS loaded
                         with strict=True, on mentor's preprocessed inputs: the largest
                         difference of the class probabilities.
  random FAMILY OUT      a full-size torchvision FAMILY with seeded random weights and
                         random batch-norm statistics, saved to OUT (.pth), for `parity`.
  preprocess DUMP PHOTO...
                         DUMP from `mentor predict --model M ... --image PHOTO ... --dump
                         DUMP` with a torchvision family M: torchvision's evaluation
                         transform (PIL, Resize(256), CenterCrop(224), ToTensor, ImageNet
                         Normalize) on the same photos against mentor's inputs.
  strict FAMILY EXPORT   loads a `mentor export` of a FAMILY run into torchvision's FAMILY
                         (its class count read from the file) with strict=True.

usage: V/bin/python scripts/check-torchvision.py counts
       V/bin/python scripts/check-torchvision.py fixture tests/fixtures
       V/bin/python scripts/check-torchvision.py random resnet50 /tmp/r50.pth
       V/bin/python scripts/check-torchvision.py parity resnet50 pred.safetensors /tmp/r50.pth
"""
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

FAMILIES = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
# Families built by torchvision.models.<name> for `counts`, `random`, `parity`, `strict`.
ALL = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet_b0", "mobilenet_v3_small"]


def reduced_efficientnet_b0(classes, width, depth):
    """torchvision's EfficientNet-B0 at `width_mult=width`, `depth_mult=depth` (its own
    builder and blocks)."""
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=depth)
    return EfficientNet(setting, dropout=0.2, last_channel=last, num_classes=classes)


def reduced_mobilenet_v2(classes, width, last):
    """torchvision's MobileNetV2 at `width_mult=width` with its last 1x1 convolution
    made `last` channels wide instead of 1280 (mentor's `model.last_channels`), so that
    the fixture stays small; every block is torchvision's own."""
    from torchvision.ops.misc import Conv2dNormActivation

    m = torchvision.models.mobilenet_v2(num_classes=classes, width_mult=width)
    inp = m.features[-1][0].in_channels
    m.features[-1] = Conv2dNormActivation(inp, last, kernel_size=1, activation_layer=torch.nn.ReLU6)
    m.classifier[1] = torch.nn.Linear(last, classes)
    return m


class ScaledResNet(ResNet):
    """torchvision's ResNet with every stage's planes (and the stem) scaled by `width`:
    its __init__ with the four widths as parameters, the blocks torchvision's own."""

    def __init__(self, block, layers, num_classes, width):
        torch.nn.Module.__init__(self)
        planes = [max(1, round(p * width)) for p in (64, 128, 256, 512)]
        self._norm_layer = torch.nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = torch.nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(self.inplanes)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(planes[3] * block.expansion, num_classes)


def photo_like(n, size, g):
    """`n` inputs as a photo becomes one: pixels uniform in [0, 1], then normalised with
    the ImageNet statistics torchvision's weights expect."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (torch.rand(n, 3, size, size, generator=g) - mean) / std


def classifier(m):
    """The network's last linear layer (`fc`, `classifier.1`, ...)."""
    return [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][-1]


def randomise_statistics(m, seed, size=40):
    """Batch-norm statistics measured on random inputs, then perturbed, and random affine
    parameters: realistic enough that the output still depends on the input (purely
    random statistics make a deep network's output constant, which would let a wrong
    layer pass), random enough that a wrong epsilon, a swapped mean and variance or a
    statistic left out shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in norms:
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the calibration batches
        m.train()
        for _ in range(4):
            m(photo_like(8, size, g))
        for bn in norms:
            n = bn.num_features
            bn.running_mean.add_(torch.randn(n, generator=g) * 0.05 * bn.running_var.sqrt())
            bn.running_var.mul_(torch.rand(n, generator=g) * 0.4 + 0.8)
            bn.momentum = 0.1
    return m.eval()


def counts():
    for name in ALL:
        m = getattr(torchvision.models, name)()
        print(f"{name}: {sum(p.numel() for p in m.parameters()):,} parameters")


def fixture(out):
    for name, width in (("resnet18", 1 / 16), ("resnet50", 1 / 32)):
        torch.manual_seed(0)
        block, layers = FAMILIES[name]
        write_fixture(out, name, ScaledResNet(block, layers, 10, width))
    torch.manual_seed(0)
    write_fixture(out, "mobilenet_v2", reduced_mobilenet_v2(10, 0.1, 32))
    torch.manual_seed(0)
    write_fixture(out, "efficientnet_b0", reduced_efficientnet_b0(10, 0.1, 0.5))
    torch.manual_seed(0)
    write_fixture(
        out, "mobilenet_v3_small", torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.1)
    )


def write_fixture(out, name, m):
    m = randomise_statistics(m, seed=1)
    base = f"{out}/torchvision-{name.replace('_', '-')}"
    torch.save(m.state_dict(), f"{base}.pth")
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = m(x)
    save_file({"inputs": x.contiguous(), "logits": logits.contiguous()}, f"{base}-io.safetensors")
    n = sum(p.numel() for p in m.parameters())
    print(f"{base}.pth: {len(m.state_dict())} tensors, {n:,} parameters; logits {tuple(logits.shape)}")


def random_weights(name, out):
    torch.manual_seed(0)
    m = randomise_statistics(getattr(torchvision.models, name)(), seed=1, size=224)
    # Random deep networks saturate the softmax (one class at probability 1.0), which
    # would make any comparison of probabilities pass: the classifier is scaled so that
    # the top logit of a photo-like input stands about 3 above the median one.
    x = photo_like(4, 224, torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = m(x)
        scale = 3.0 / (logits.max(1).values - logits.median(1).values).mean().item()
        fc = classifier(m)
        fc.weight.mul_(scale)
        fc.bias.mul_(scale)
    torch.save(m.state_dict(), out)
    print(f"{out}: {name}, {len(m.state_dict())} tensors")


def parity(name, dump, weights):
    d = load_file(dump)
    x, p_mentor = d["inputs"], d["probabilities"]
    m = getattr(torchvision.models, name)(num_classes=p_mentor.shape[1]).eval()
    m.load_state_dict(torch.load(weights, map_location="cpu"), strict=True)
    with torch.no_grad():
        p_torch = m(x).softmax(1)
    diff = (p_mentor - p_torch).abs().max().item()
    top = (p_mentor.argmax(1) == p_torch.argmax(1)).all().item()
    print(f"{name}: {x.shape[0]} inputs {tuple(x.shape[1:])}, {p_mentor.shape[1]} classes, strict=True")
    print(f"torchvision's top-1 probabilities: {[round(v, 4) for v in p_torch.max(1).values.tolist()]}")
    spread = (p_torch - p_torch[:1]).abs().max().item()
    print(f"largest difference between the inputs' probabilities (the output depends on the input): {spread:.2e}")
    print(f"max |mentor - torchvision| of the probabilities: {diff:.2e}; same top-1: {top}")
    sys.exit(0 if diff <= 1e-4 and top else 1)


def preprocess(dump, *photos):
    from PIL import Image
    from torchvision import transforms

    t = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    x = load_file(dump)["inputs"]
    ref = torch.stack([t(Image.open(p).convert("RGB")) for p in photos])
    diff = (x - ref).abs()
    # One 8-bit step is 1/255 before normalisation, about 0.017 after.
    print(f"{len(photos)} photos: max |mentor - torchvision| of the inputs {diff.max().item():.2e}, mean {diff.mean().item():.2e}")
    sys.exit(0 if diff.max().item() < 0.02 else 1)


def strict(name, export):
    state = load_file(export)
    key = next(k for k in ("fc.weight", "classifier.3.weight", "classifier.1.weight") if k in state)
    m = getattr(torchvision.models, name)(num_classes=state[key].shape[0])
    m.load_state_dict(state, strict=True)
    print(f"{export}: {len(state)} tensors loaded into torchvision's {name} with strict=True")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {
        "counts": counts,
        "fixture": fixture,
        "random": random_weights,
        "parity": parity,
        "strict": strict,
        "preprocess": preprocess,
    }[mode](*args)
