#!/usr/bin/python3
"""Image pairs for the LPIPS cross-check (scripts/gpu/prepare_lpips_verify.sh).

Writes DIR/a/<name>.png and DIR/b/<name>.png: random pairs (fixed seed, several sizes, one odd)
and real pairs from the shared data (JPEG, blur, resampling; one grey image). Debian python:
numpy + PIL only.
"""
import io
import os
import sys

import numpy as np
from PIL import Image, ImageFilter


def save(img, d, name):
    img.save(os.path.join(d, name + ".png"))


def main():
    data, out = sys.argv[1], sys.argv[2]
    da, db = os.path.join(out, "a"), os.path.join(out, "b")
    os.makedirs(da, exist_ok=True)
    os.makedirs(db, exist_ok=True)
    rng = np.random.default_rng(20261126)
    for name, (w, h), corr in [("rand_064", (64, 64), False), ("rand_100x75", (100, 75), True),
                               ("rand_256", (256, 256), True), ("rand_512", (512, 512), False)]:
        a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        if corr:  # a noisy copy: small distances matter most
            b = np.clip(a.astype(np.float64) + rng.normal(0, 12, size=a.shape), 0, 255).round().astype(np.uint8)
        else:
            b = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        save(Image.fromarray(a), da, name)
        save(Image.fromarray(b), db, name)

    def jpeg(img, q):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert(img.mode)

    real = [
        ("baby_jpeg10", "natural/Set5/baby.png", lambda im: jpeg(im, 10)),
        ("lenna_blur2", "natural/Set14/lenna.png", lambda im: im.filter(ImageFilter.GaussianBlur(2))),
        ("kodim05_bicubic4", "natural/Kodak24/kodim05.png",
         lambda im: im.resize((im.width // 4, im.height // 4), Image.BICUBIC).resize(im.size, Image.BICUBIC)),
        ("bridge_grey_jpeg20", "natural/Set14/bridge.png", lambda im: jpeg(im, 20)),
        ("butterfly_256_jpeg30", "natural/Set5/butterfly.png", lambda im: jpeg(im, 30)),
    ]
    for name, rel, fn in real:
        im = Image.open(os.path.join(data, rel))
        im = im.convert("L" if im.mode == "L" else "RGB")
        save(im, da, name)
        save(fn(im), db, name)
    print("pairs written to", out)


if __name__ == "__main__":
    main()
