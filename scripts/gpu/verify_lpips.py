#!/usr/bin/env python3
"""Independent LPIPS v0.1 (SqueezeNet) in PyTorch, compared with face2scene's C++ values.

Backbone: torchvision.models.squeezenet1_1().features (architecture from torchvision, no download),
loaded with the weights face2scene exported. LPIPS formulas as in the lpips package (v0.1):
ScalingLayer, slices after features[1], [4], [7], [9], [10], [11], [12], channel unit-normalisation
(eps 1e-10), squared difference, 1x1 linear heads, spatial mean, sum.

Usage: verify_lpips.py DIR OUT   (DIR made by prepare_lpips_verify.sh)
"""
import csv
import glob
import json
import os
import struct
import sys

import torch
import torchvision
from PIL import Image

TAPS = [1, 4, 7, 9, 10, 11, 12]
DTYPES = {"F32": torch.float32, "F16": torch.float16, "F64": torch.float64, "BF16": torch.bfloat16}


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + s:base + e]), dtype=DTYPES[v["dtype"]])
        out[k] = t.reshape(v["shape"]).clone()
    return out


class Lpips(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.features = torchvision.models.squeezenet1_1().features  # random init, then overwritten
        sd = {k[len("features."):]: v for k, v in weights.items() if k.startswith("features.")}
        self.features.load_state_dict(sd, strict=True)
        self.lins = [weights["lin%d.model.1.weight" % i] for i in range(7)]
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([.458, .448, .450]).view(1, 3, 1, 1))

    def taps(self, x01):
        h = ((x01 * 2 - 1) - self.shift) / self.scale
        outs = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                outs.append(h)
        return outs

    def forward(self, a, b):
        fa, fb = self.taps(a), self.taps(b)
        total = 0
        for x, y, w in zip(fa, fb, self.lins):
            nx = x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + 1e-10)
            ny = y / (torch.sqrt(torch.sum(y ** 2, dim=1, keepdim=True)) + 1e-10)
            d = (nx - ny) ** 2
            total = total + torch.nn.functional.conv2d(d, w.to(d)).mean(dim=(2, 3), keepdim=True)
        return total.flatten()


def load_image(path):
    im = Image.open(path).convert("RGB")
    t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(im.height, im.width, 3)
    return t.permute(2, 0, 1).float().div(255).unsqueeze(0)


def read_csv(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {os.path.splitext(r["image"])[0]: float(r["lpips"]) for r in csv.DictReader(f)}


def main():
    d, out = sys.argv[1], sys.argv[2]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    weights = load_safetensors(os.path.join(d, "lpips_squeeze.safetensors"))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m32 = Lpips(weights).to(dev).eval()
    m64 = Lpips(weights).double().eval()  # CPU float64 reference
    m64.lins = [w.double() for w in m64.lins]
    cpp = read_csv(os.path.join(d, "cpp", "metrics.csv"))
    cpp_cuda = read_csv(os.path.join(out, "cpp_cuda", "metrics.csv"))
    rows = []
    with torch.no_grad():
        for pa in sorted(glob.glob(os.path.join(d, "a", "*.png"))):
            name = os.path.splitext(os.path.basename(pa))[0]
            a, b = load_image(pa), load_image(os.path.join(d, "b", name + ".png"))
            v32 = m32(a.to(dev), b.to(dev)).item()
            v64 = m64(a.double(), b.double()).item()
            rows.append({"pair": name, "size": list(a.shape[2:]), "torch_fp32_" + dev: v32, "torch_fp64_cpu": v64,
                         "face2scene_cpu": cpp.get(name), "face2scene_cuda": cpp_cuda.get(name)})
        taps = {}
        for tp in sorted(glob.glob(os.path.join(d, "taps_*.safetensors"))):
            name = os.path.basename(tp)[len("taps_"):-len(".safetensors")]
            mine = load_safetensors(tp)
            ref = m64.taps(load_image(os.path.join(d, "a", name + ".png")).double())
            diffs = []
            for i, r in enumerate(ref):
                c = mine["tap%d" % i].double()
                diffs.append({"tap": i, "shape": list(c.shape), "max_abs": (c - r).abs().max().item(),
                              "max_ref": r.abs().max().item()})
            taps[name] = diffs

    def max_diff(key):
        vals = [abs(r[key] - r["torch_fp64_cpu"]) for r in rows if r.get(key) is not None]
        return max(vals) if vals else None

    result = {"device": dev, "torch": torch.__version__, "torchvision": torchvision.__version__, "pairs": rows,
              "taps": taps, "max_abs_diff_face2scene_cpu_vs_torch_fp64": max_diff("face2scene_cpu"),
              "max_abs_diff_face2scene_cuda_vs_torch_fp64": max_diff("face2scene_cuda"),
              "max_abs_diff_torch_fp32_vs_fp64": max_diff("torch_fp32_" + dev), "tolerance": 1e-3}
    ok = result["max_abs_diff_face2scene_cpu_vs_torch_fp64"] is not None and \
        result["max_abs_diff_face2scene_cpu_vs_torch_fp64"] < 1e-3
    if result["max_abs_diff_face2scene_cuda_vs_torch_fp64"] is not None:
        ok = ok and result["max_abs_diff_face2scene_cuda_vs_torch_fp64"] < 1e-3
    result["pass"] = ok
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lpips_verify.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("%-22s %-10s %10s %10s %10s %10s" % ("pair", "size", "torch64", "torch32", "f2s_cpu", "f2s_cuda"))
    for r in rows:
        fm = lambda v: "%10.6f" % v if v is not None else "%10s" % "-"
        print("%-22s %-10s %s %s %s %s" % (r["pair"], "x".join(map(str, r["size"])), fm(r["torch_fp64_cpu"]),
                                            fm(r["torch_fp32_" + dev]), fm(r["face2scene_cpu"]), fm(r["face2scene_cuda"])))
    for name, diffs in taps.items():
        print("taps %s: max abs diff per tap %s" % (name, ", ".join("%.2e" % t["max_abs"] for t in diffs)))
    for k in ("max_abs_diff_face2scene_cpu_vs_torch_fp64", "max_abs_diff_face2scene_cuda_vs_torch_fp64",
              "max_abs_diff_torch_fp32_vs_fp64"):
        print(k, result[k])
    print("PASS" if ok else "FAIL", "(tolerance 1e-3)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
