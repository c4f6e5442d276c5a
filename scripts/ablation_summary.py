#!/usr/bin/env python3
"""Summarise a bench_oracle --ablation CSV (also a partial one, e.g. a run stopped early): per
(preset, scale) cell that every image completed, the mean of each method and paired differences
with 95 % percentile-bootstrap intervals (2000 resamples over images, seed 1), as Markdown.

  /usr/bin/python3 scripts/ablation_summary.py out/bench/ablation.csv [A-B ...]

Pairs default to the GAN questions of issue #21: gan_face_code-gan_blind, gan_face_code-x4plus,
gan_face_code-face_code, face_code-blind. Rows of an image whose cell is incomplete are dropped."""
import csv
import random
import sys
from collections import defaultdict

METRICS = [("psnr", "PSNR↑"), ("ssim", "SSIM↑"), ("lpips", "LPIPS↓"), ("niqe", "NIQE↓"), ("brisque", "BRISQUE↓")]


def boot(d, n=2000, seed=1):
    rng = random.Random(seed)
    k = len(d)
    means = sorted(sum(d[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    return sum(d) / k, means[int(0.025 * n)], means[int(0.975 * n) - 1]


def main():
    path = sys.argv[1]
    pairs = [p.split("-") for p in sys.argv[2:]] or [["gan_face_code", "gan_blind"], ["gan_face_code", "x4plus"],
                                                       ["gan_face_code", "face_code"], ["face_code", "blind"]]
    rows = [r for r in csv.DictReader(open(path)) if r.get("brisque") not in (None, "")]
    methods = sorted({r["method"] for r in rows})
    cell = defaultdict(lambda: defaultdict(dict))  # (preset, scale) -> image -> method -> row
    for r in rows:
        cell[(r["preset"], r["scale"])][r["image"]][r["method"]] = r
    print(f"Source: `{path}` ({len(rows)} rows). Cells with every image complete for all {len(methods)} methods.\n")
    for key in sorted(cell, key=lambda k: (k[1] != "4", ["mild", "moderate", "severe"].index(k[0]))):
        imgs = {i: m for i, m in cell[key].items() if len(m) == len(methods)}
        if len(imgs) < 5:
            continue
        print(f"### {key[0]} ×{key[1]}: {len(imgs)} images\n")
        print("| method | " + " | ".join(h for _, h in METRICS) + " |")
        print("|---|" + "---|" * len(METRICS))
        for m in methods:
            vals = [sum(float(imgs[i][m][c]) for i in imgs) / len(imgs) for c, _ in METRICS]
            print(f"| {m} | " + " | ".join(f"{v:.4f}" if c in ("ssim", "lpips") else f"{v:.2f}" for v, (c, _) in zip(vals, METRICS)) + " |")
        print("\n| paired difference | " + " | ".join(h for _, h in METRICS) + " |")
        print("|---|" + "---|" * len(METRICS))
        for a, b in pairs:
            if a not in methods or b not in methods:
                continue
            cells = []
            for c, _ in METRICS:
                mu, lo, hi = boot([float(imgs[i][a][c]) - float(imgs[i][b][c]) for i in imgs])
                f = "{:+.4f}" if c in ("ssim", "lpips") else "{:+.2f}"
                cells.append(f"{f.format(mu)} [{f.format(lo)}, {f.format(hi)}]")
            print(f"| {a} − {b} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
