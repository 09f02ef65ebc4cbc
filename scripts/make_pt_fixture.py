"""Writes tests/fixtures/tiny-mlp.pt: a PyTorch state_dict (torch.save's zip format) of
an MLP 64-16-10 laid out as torch.nn.Linear does ([out, in] weights), without needing
torch: the pickle names torch's rebuild function and storage class, as torch.save does.

Values are a formula the Rust test recomputes: tensor t (in the order below), flat
element i (row-major, PyTorch's layout) is sin(0.37 * i + t) / 4.

The keys are those of `nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))`
saved under a "model." prefix, so loading it into mentor's MLP needs a key map
(model.0.=backbone.fc.0., model.2.=head.).

usage: python3 scripts/make_pt_fixture.py tests/fixtures/tiny-mlp.pt
"""
import collections
import math
import pickle
import struct
import sys
import types
import zipfile

# Stand-ins with torch's names: pickle records a callable by module and name.
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only for pickling")


FloatStorage.__module__ = "torch"
_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


class StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, key, shape):
        self.key, self.shape = key, shape

    def __reduce__(self):
        stride, step = [], 1
        for side in reversed(self.shape):
            stride.insert(0, step)
            step *= side
        numel = step
        return (
            _rebuild_tensor_v2,
            (StorageRef(self.key, numel), 0, tuple(self.shape), tuple(stride), False,
             collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def main(path):
    layout = [
        ("model.0.weight", [16, 64]),
        ("model.0.bias", [16]),
        ("model.2.weight", [10, 16]),
        ("model.2.bias", [10]),
    ]
    state = collections.OrderedDict()
    blobs = {}
    for t, (name, shape) in enumerate(layout):
        key = str(t)
        state[name] = Tensor(key, shape)
        numel = math.prod(shape)
        values = [math.sin(0.37 * i + t) / 4 for i in range(numel)]
        blobs[key] = struct.pack("<%df" % numel, *values)
    import io

    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(state)
    root = "tiny-mlp"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", buffer.getvalue())
        for key, blob in blobs.items():
            z.writestr(f"{root}/data/{key}", blob)
        z.writestr(f"{root}/version", "3\n")


if __name__ == "__main__":
    main(sys.argv[1])
