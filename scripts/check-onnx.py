"""Checks of `mentor export --format onnx` files in ONNX Runtime (independent of mentor
and of Burn), and their size and batch-1 latency for README's edge table.

Set up once (no GPU needed):

    python3 -m venv V && V/bin/pip install torch torchvision safetensors onnxruntime onnx

Modes:

  predict DUMP ONNX      DUMP from `mentor predict ... --dump DUMP` with the same network
                         as ONNX (`mentor export ... --out ONNX`): ONNX Runtime on mentor's
                         preprocessed inputs; the largest difference of the class
                         probabilities (softmax of the logits) from mentor's.
  torchvision FAMILY WEIGHTS ONNX
                         torchvision's FAMILY (full size) with WEIGHTS loaded with
                         strict=True, and ONNX from `mentor export --pretrained WEIGHTS
                         --model FAMILY --out ONNX`, on four seeded random 3x224x224 inputs:
                         the largest logit difference relative to the largest logit.
  clip ONNX OUT          rewrites each `hi - relu(hi - relu(x))` chain (how mentor records
                         ReLU6 and the hard sigmoid's clamp, six nodes: Relu, Neg, Add, Relu,
                         Neg, Add) into one `Clip(x, 0, hi)` and saves OUT: with `latency`,
                         what the chains cost; with `predict`, that they compute the clamp.
  latency ONNX...        each file's size, graph nodes by type, and ONNX Runtime's median
                         batch-1 latency (one thread, 20 warm-up runs, median of 100).

usage: V/bin/python scripts/check-onnx.py predict pred.safetensors lite0.onnx
       V/bin/python scripts/check-onnx.py torchvision resnet50 /tmp/r50.pth /tmp/r50.onnx
       V/bin/python scripts/check-onnx.py latency *.onnx
"""
import collections
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def session(path, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict(dump, path):
    from safetensors.numpy import load_file

    d = load_file(dump)
    s = session(path)
    logits = s.run(["logits"], {"images": d["inputs"]})[0]
    diff = np.abs(softmax(logits) - d["probabilities"]).max()
    top = softmax(logits).argmax(axis=1)
    agree = (top == d["probabilities"].argmax(axis=1)).mean()
    print(
        f"{os.path.basename(path)}: {d['inputs'].shape[0]} inputs, "
        f"max |p_onnxruntime - p_mentor| = {diff:.3e}, top-1 agreement {agree:.2f}"
    )
    return diff


def torchvision_parity(family, weights, path):
    import torch
    import torchvision

    state = torch.load(weights, map_location="cpu")
    classes = state[[k for k in state if k.endswith(".weight")][-1]].shape[0]
    model = getattr(torchvision.models, family.replace("-", "_"))(num_classes=classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 224, 224, generator=g)
    with torch.no_grad():
        want = model(x).numpy()
    got = session(path).run(["logits"], {"images": x.numpy()})[0]
    rel = np.abs(got - want).max() / np.abs(want).max()
    print(f"{family}: max |onnxruntime - torchvision| / max |logit| = {rel:.3e}")
    return rel


def clip(path, out):
    from onnx import helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    uses = collections.Counter(i for n in g.node for i in n.input)

    def scalar(name):
        v = consts.get(name)
        return float(v.reshape(-1)[0]) if v is not None and v.size == 1 else None

    def chain_from(add):
        # add = Add(Neg(Relu(Add(Neg(Relu(x)), hi))), hi)
        nodes = [add]
        for kind in ["Neg", "Relu", "Add", "Neg", "Relu"]:
            prev = producer.get(nodes[-1].input[0])
            if prev is None or prev.op_type != kind or uses[prev.output[0]] != 1:
                return None
            nodes.append(prev)
        hi = scalar(add.input[1])
        if hi is None or scalar(nodes[3].input[1]) != hi:
            return None
        return nodes, hi

    remove, new_nodes, n = set(), {}, 0
    for node in g.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        found = chain_from(node)
        if not found:
            continue
        nodes, hi = found
        lo_name, hi_name = f"clip_lo_{n}", f"clip_hi_{n}"
        g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), lo_name))
        g.initializer.append(numpy_helper.from_array(np.array(hi, np.float32), hi_name))
        new_nodes[id(nodes[-1])] = helper.make_node(
            "Clip", [nodes[-1].input[0], lo_name, hi_name], [node.output[0]], name=f"clip_{n}"
        )
        remove.update(id(x) for x in nodes[:-1])
        n += 1
    kept = [new_nodes.get(id(x), x) for x in g.node if id(x) not in remove]
    del g.node[:]
    g.node.extend(kept)
    onnx.checker.check_model(m)
    onnx.save(m, out)
    print(f"{os.path.basename(path)}: {n} chains rewritten to Clip -> {out}")


def latency(paths):
    print("| file | MB | nodes | batch-1 latency, ms (ONNX Runtime, 1 thread) |")
    print("| --- | --- | --- | --- |")
    for path in paths:
        m = onnx.load(path)
        onnx.checker.check_model(m)
        kinds = collections.Counter(n.op_type for n in m.graph.node)
        dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        s = session(path)
        x = np.random.default_rng(0).standard_normal([1] + dims[1:]).astype(np.float32)
        for _ in range(20):
            s.run(None, {"images": x})
        times = []
        for _ in range(100):
            t = time.perf_counter()
            s.run(None, {"images": x})
            times.append((time.perf_counter() - t) * 1e3)
        top = ", ".join(f"{k} {v}" for k, v in kinds.most_common(6))
        print(
            f"| {os.path.basename(path)} | {os.path.getsize(path) / 1e6:.2f} | "
            f"{sum(kinds.values())} ({top}) | {statistics.median(times):.2f} |"
        )


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "predict":
        predict(*args)
    elif mode == "torchvision":
        torchvision_parity(*args)
    elif mode == "clip":
        clip(*args)
    elif mode == "latency":
        latency(args)
    else:
        sys.exit(__doc__)
