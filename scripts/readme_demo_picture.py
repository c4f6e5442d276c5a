#!/usr/bin/python3
"""The README's demo picture (docs/images/restore_demo.jpg) from the demo's side-by-side output.

    face2scene restore examples/solvay_group.jpg -o out/ --side-by-side
    /usr/bin/python3 scripts/readme_demo_picture.py out/solvay_group_side_by_side.jpg out/solvay_group.jpg \
        docs/images/restore_demo.jpg

Top: the whole side-by-side (input bicubic | result), 1600 px wide. Below: the same detail of both
halves (the seated man with glasses and the white-bearded man), 800 px each, so that faces can be
judged at a size where the top row hides them. Needs Pillow (Debian python3-pil).
"""
import sys

from PIL import Image

WIDTH = 1600
# The detail, as fractions of one half (x0, y0, width, height): chosen by looking, kept fixed so
# that pictures from different versions compare.
DETAIL = (0.24, 0.277, 0.345, 0.35)
GAP = 6  # white lines between the panels


def main(src, result, dst):
    sbs = Image.open(src).convert("RGB")
    # Two halves the result's width, with a gap between them.
    half_w = Image.open(result).width
    w = sbs.width
    gap = w - 2 * half_w
    left = sbs.crop((0, 0, half_w, sbs.height))
    right = sbs.crop((half_w + gap, 0, w, sbs.height))
    panel_w = (WIDTH - GAP) // 2
    top_h = round(left.height * panel_w / left.width)
    x0, y0, dw, dh = DETAIL
    box = (round(x0 * half_w), round(y0 * left.height), round((x0 + dw) * half_w), round((y0 + dh) * left.height))
    det_h = round((box[3] - box[1]) * panel_w / (box[2] - box[0]))
    out = Image.new("RGB", (WIDTH, top_h + GAP + det_h), "white")
    for i, img in enumerate((left, right)):
        x = i * (panel_w + GAP)
        out.paste(img.resize((panel_w, top_h), Image.LANCZOS), (x, 0))
        out.paste(img.crop(box).resize((panel_w, det_h), Image.LANCZOS), (x, top_h + GAP))
    # JPEG at quality 90 keeps the repository small (a PNG of this picture is 1.2 MB).
    out.save(dst, optimize=True, **({"quality": 90} if dst.lower().endswith((".jpg", ".jpeg")) else {}))
    print(f"{dst}: {out.width}x{out.height}, detail box {box} of each {half_w}x{left.height} half")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
