"""Check a `mentor export` of an MLP against mentor's own logits, with numpy only.

PyTorch semantics: a Linear layer computes x @ W.T + b with W stored [out, in], which is
the layout mentor exports; an equivalent torch module is

    class Mlp(torch.nn.Module):
        def __init__(s, widths, classes):  # e.g. [64, 256, 128], 10
            super().__init__()
            s.backbone = torch.nn.Module()
            s.backbone.fc = torch.nn.ModuleList(
                torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
            s.head = torch.nn.Linear(widths[-1], classes)
        def forward(s, x):
            x = x.flatten(1)
            for fc in s.backbone.fc:
                x = torch.relu(fc(x))
            return s.head(x)

    m.load_state_dict(safetensors.torch.load_file("mlp.safetensors"))

usage: python scripts/check_export.py mlp.safetensors mlp-ref.safetensors
"""
import sys
import numpy as np
from safetensors.numpy import load_file

weights, ref = load_file(sys.argv[1]), load_file(sys.argv[2])
x = ref["inputs"].reshape(ref["inputs"].shape[0], -1)
i = 0
while f"backbone.fc.{i}.weight" in weights:
    x = np.maximum(x @ weights[f"backbone.fc.{i}.weight"].T + weights[f"backbone.fc.{i}.bias"], 0)
    i += 1
logits = x @ weights["head.weight"].T + weights["head.bias"]
err = np.abs(logits - ref["logits"]).max() / np.abs(ref["logits"]).max()
print(f"{i} hidden layers, max relative difference {err:.2e}")
sys.exit(0 if err < 1e-5 else 1)
