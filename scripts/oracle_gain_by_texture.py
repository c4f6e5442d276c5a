#!/usr/bin/env python3
"""Where does the face code help? Splits the ablation's crops into terciles by texture (mean
gradient magnitude of the ground-truth crop, grey, 8-bit) and prints the paired gain
face_code - blind (PSNR dB, mean ± 95% CI, normal approximation) per tercile, all presets and
severe alone, at x4 and x1.

Usage: scripts/oracle_gain_by_texture.py ABLATION_CSV [SET_DIR=.cache/oracle_set]
ABLATION_CSV is bench_oracle --ablation's per-crop CSV (e.g. docs/results/oracle_ablation.csv);
SET_DIR the crops written by `bench_oracle --export-set`. Needs ImageMagick (convert, identify);
standard library only otherwise."""
import csv
import math
import os
import statistics as st
import subprocess
import sys


def texture(path):
    w = int(subprocess.run(["identify", "-format", "%w", path], capture_output=True, text=True, check=True).stdout)
    raw = subprocess.run(["convert", path, "-colorspace", "Gray", "-depth", "8", "gray:-"],
                         capture_output=True, check=True).stdout
    h = len(raw) // w
    total, n = 0.0, 0
    for y in range(h - 1):
        row, below = raw[y * w:(y + 1) * w], raw[(y + 1) * w:(y + 2) * w]
        for x in range(w - 1):
            gx, gy = row[x + 1] - row[x], below[x] - row[x]
            total += math.sqrt(gx * gx + gy * gy)
            n += 1
    return total / n


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    set_dir = sys.argv[2] if len(sys.argv) > 2 else ".cache/oracle_set"
    psnr = {}
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            psnr[(r["image"], r["preset"], r["scale"], r["method"])] = float(r["psnr"])
    tex = {}
    scenes = os.path.join(set_dir, "scenes")
    for f in sorted(os.listdir(scenes)):
        # "000_Kodak24+kodim01.png" -> "Kodak24/kodim01", the CSV's image name
        name = f.split("_", 1)[1].rsplit(".", 1)[0].replace("+", "/")
        tex[name] = texture(os.path.join(scenes, f))
    names = sorted(tex, key=tex.get)
    third = len(names) // 3
    groups = [("low texture", names[:third]), ("mid", names[third:2 * third]), ("high texture", names[2 * third:])]
    for scale in ("4", "1"):
        for label, sel in groups:
            for preset in (None, "severe"):
                gains = [psnr[(n, p, scale, "face_code")] - psnr[(n, p, scale, "blind")]
                         for n in sel for p in (["mild", "moderate", "severe"] if preset is None else [preset])
                         if (n, p, scale, "face_code") in psnr]
                ci = 1.96 * st.stdev(gains) / math.sqrt(len(gains))
                print(f"x{scale} {label:<12} (gradient {tex[sel[0]]:5.1f}-{tex[sel[-1]]:5.1f}) {preset or 'all':<6} "
                      f"face_code - blind {st.mean(gains):+.3f} ± {ci:.3f} dB (n={len(gains)})")


if __name__ == "__main__":
    main()
