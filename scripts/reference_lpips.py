#!/usr/bin/python3
"""Independent LPIPS reference values for tests/test_metrics.cpp (CPU, float64).

Everything here is independent of face2scene's C++: the ncnn SqueezeNet weights are parsed by the
numpy reader below, the LPIPS heads are read by torch.load (legacy format), the architecture is
torchvision's squeezenet1_1 and the LPIPS formulas are those of scripts/gpu/verify_lpips.py.
Needs Debian's python3-torch and python3-torchvision (1.13 / 0.14):

    /usr/bin/python3 scripts/reference_lpips.py ../shared/data > tests/fixtures/metrics/lpips_reference.json
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_lpips import Lpips  # noqa: E402
from reference_metrics import IMAGES, degrade  # noqa: E402


def ncnn_squeezenet(param_path, bin_path):
    """torchvision-named state dict from the ncnn export: conv weights fp16 (tagged), biases fp32."""
    lines = open(param_path).read().split("\n")[2:]
    raw = open(bin_path, "rb").read()
    pos = 0
    convs = []
    for ln in lines:
        tok = ln.split()
        if not tok or tok[0] != "Convolution":
            continue
        nin, nout = int(tok[2]), int(tok[3])
        kv = dict(t.split("=") for t in tok[4 + nin + nout:])
        cout, k, n = int(kv["0"]), int(kv["1"]), int(kv["6"])
        tag = int.from_bytes(raw[pos:pos + 4], "little")
        assert tag == 0x01306B47, hex(tag)
        pos += 4
        w = np.frombuffer(raw, dtype="<f2", count=n, offset=pos).astype(np.float32)
        pos += (2 * n + 3) // 4 * 4
        b = np.frombuffer(raw, dtype="<f4", count=cout, offset=pos).copy()
        pos += 4 * cout
        convs.append((k, torch.from_numpy(w.reshape(cout, -1, k, k).copy()), torch.from_numpy(b)))
    assert pos == len(raw), (pos, len(raw))
    sd = {"features.0.weight": convs[0][1], "features.0.bias": convs[0][2]}
    for f, idx in enumerate([3, 4, 6, 7, 9, 10, 11, 12]):
        sq, x, y = convs[1 + 3 * f], convs[2 + 3 * f], convs[3 + 3 * f]
        e1, e3 = (x, y) if x[0] == 1 else (y, x)
        for name, c in (("squeeze", sq), ("expand1x1", e1), ("expand3x3", e3)):
            sd["features.%d.%s.weight" % (idx, name)] = c[1]
            sd["features.%d.%s.bias" % (idx, name)] = c[2]
    return sd


def to_tensor(arr):
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1).unsqueeze(0)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    w = os.path.join(data, "weights")
    nc = os.path.join(w, "squeezenet1_1_torchvision_ncnn_fp16")
    weights = ncnn_squeezenet(os.path.join(nc, "squeezenet_v1.1.ncnn.param"), os.path.join(nc, "squeezenet_v1.1.ncnn.bin"))
    heads = torch.load(os.path.join(w, "lpips_v0.1", "squeeze.pth"), map_location="cpu")
    weights.update({k: v.float() for k, v in heads.items()})
    model = Lpips(weights).double().eval()
    model.lins = [x.double() for x in model.lins]
    cases = []
    with torch.no_grad():
        for rel, _ in IMAGES:
            gt = np.array(Image.open(os.path.join(data, rel)))
            pred = degrade(gt)
            v = model(to_tensor(pred), to_tensor(gt)).item()
            cases.append({"gt": rel, "lpips": v})
            print(rel, v, file=sys.stderr)
    json.dump({"generator": "scripts/reference_lpips.py", "torch": torch.__version__, "cases": cases}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
