#!/usr/bin/python3
# (Debian's python3: /usr/bin/python3 tests/fuzz/make_seeds.py)
"""Writes the tiny synthetic seed corpus under tests/fuzz/corpus/<target>/ (no photos: gradients
and noise made here). Needs python3-pil and python3-numpy. Run from the repository root; the
output is committed, so rerun only to change the seeds."""
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms

root = 'tests/fuzz/corpus'
rng = np.random.default_rng(1)


def put(target, name, data):
    os.makedirs(f'{root}/{target}', exist_ok=True)
    open(f'{root}/{target}/{name}', 'wb').write(data)


def img(mode, w=9, h=7):
    y, x = np.mgrid[0:h, 0:w]
    g = ((x * 29 + y * 17) % 256).astype(np.uint8)
    n = rng.integers(0, 256, (h, w), dtype=np.uint8)
    planes = {'L': [g], 'LA': [g, n], 'RGB': [g, n, 255 - g], 'RGBA': [g, n, 255 - g, n // 2 + 100]}[mode]
    return Image.fromarray(np.stack(planes, -1).squeeze(), mode)


def save(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def exif_tiff(orientation, big=True):
    e = '>' if big else '<'
    head = (b'MM' if big else b'II') + struct.pack(e + 'HI', 42, 8)
    ifd = struct.pack(e + 'H', 1) + struct.pack(e + 'HHI', 0x0112, 3, 1) + struct.pack(e + 'HH', orientation, 0)
    return head + ifd + struct.pack(e + 'I', 0)


def png_with_chunk(png, ctype, data):
    chunk = struct.pack('>I', len(data)) + ctype + data + struct.pack('>I', zlib.crc32(ctype + data) & 0xffffffff)
    i = png.index(b'IDAT') - 4
    return png[:i] + chunk + png[i:]


srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
lab_like = ImageCms.ImageCmsProfile(ImageCms.createProfile('LAB')).tobytes()

# PNG: every colour type and depth libpng expands, interlacing, tRNS, iCCP and eXIf.
for mode in ['L', 'LA', 'RGB', 'RGBA']:
    put('png', f'{mode}.png', save(img(mode), 'PNG'))
put('png', 'palette.png', save(img('RGB').convert('P', palette=Image.ADAPTIVE, colors=8), 'PNG'))
put('png', 'grey1bit.png', save(img('L').convert('1'), 'PNG'))
put('png', 'grey16.png', save(Image.fromarray((np.arange(63, dtype=np.uint16).reshape(7, 9) * 1000), 'I;16'), 'PNG'))
put('png', 'trns.png', save(img('RGB'), 'PNG', transparency=(0, 0, 0)))
put('png', 'iccp_srgb.png', save(img('RGB'), 'PNG', icc_profile=srgb))
put('png', 'exif6.png', png_with_chunk(save(img('RGB'), 'PNG'), b'eXIf', exif_tiff(6)))

# JPEG: baseline, progressive, grey, 4:2:0 and 4:4:4, EXIF orientation, ICC (one and two APP2s).
put('jpeg', 'rgb420.jpg', save(img('RGB', 17, 11), 'JPEG', quality=80))
put('jpeg', 'rgb444.jpg', save(img('RGB'), 'JPEG', quality=90, subsampling=0))
put('jpeg', 'grey.jpg', save(img('L'), 'JPEG', quality=75))
put('jpeg', 'progressive.jpg', save(img('RGB', 17, 11), 'JPEG', quality=70, progressive=True))
put('jpeg', 'optimized.jpg', save(img('RGB', 17, 11), 'JPEG', quality=60, optimize=True))
for o in (3, 6, 8):
    put('jpeg', f'exif{o}.jpg', save(img('RGB'), 'JPEG', quality=85, exif=b'Exif\0\0' + exif_tiff(o, big=o != 6)))
put('jpeg', 'icc_srgb.jpg', save(img('RGB'), 'JPEG', quality=85, icc_profile=srgb))
put('jpeg', 'icc_lab.jpg', save(img('RGB'), 'JPEG', quality=85, icc_profile=lab_like))


# safetensors: a few dtypes and shapes, metadata.
def safetensors(tensors, meta=None):
    header, data = {}, b''
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        header['__metadata__'] = meta
    h = json.dumps(header).encode()
    return struct.pack('<Q', len(h)) + h + data


put('safetensors', 'f32.safetensors', safetensors({'w': ('F32', [2, 3], np.arange(6, dtype='<f4').tobytes())}, {'arch': 'X'}))
put('safetensors', 'mixed.safetensors', safetensors({
    'a': ('F16', [4], np.ones(4, '<f2').tobytes()), 'b': ('I64', [1, 1], struct.pack('<q', -5)),
    'c': ('BF16', [2], b'\x80\x3f\x00\x40'), 'd': ('BOOL', [3], b'\x01\x00\x01'), 'e': ('U8', [0], b'')}))

# ncnn: [u16 param length][param][bin], a tiny graph with every reader path (fp16, fp32, table, raw).
param = ('7767517\n5 5\nInput in 0 1 data\n'
         'Convolution c1 1 1 data a 0=2 1=3 4=1 5=1 6=54 9=2 -23310=1,0.2\n'
         'PReLU p 1 1 a b 0=2\n'
         'ConvolutionDepthWise d 1 1 b c 0=2 1=1 5=0 6=2 7=2\n'
         'Eltwise e 2 1 b c out 0=1 -23301=2,1.0,0.5\n')
w = (struct.pack('<I', 0x01306B47) + np.ones(54, '<f2').tobytes()
     + np.zeros(2, '<f4').tobytes() + np.full(2, 0.1, '<f4').tobytes()
     + struct.pack('<I', 0) + np.ones(2, '<f4').tobytes())
put('ncnn', 'tiny.bin', struct.pack('<H', len(param)) + param.encode() + w)
table = np.linspace(-1, 1, 256, dtype='<f4').tobytes()
param2 = '7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 5=0 6=3\n'
put('ncnn', 'table8.bin', struct.pack('<H', len(param2)) + param2.encode() + table + bytes([0, 128, 255, 0]))
