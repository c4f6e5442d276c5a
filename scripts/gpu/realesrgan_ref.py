"""Independent fp32 PyTorch reference for face2scene's Real-ESRGAN port (run by realesrgan.sh).

Re-implements RRDBNet and SRVGGNetCompact from the published architecture (parameter names as in
xinntao/Real-ESRGAN), reads face2scene's safetensors with a hand parser (no extra packages), reads
raw RGB inputs (W H from argv) and writes PNG (filter 0, zlib) - so that only torch is needed.
Usage: realesrgan_ref.py MODEL(x4plus|general-x4v3) WEIGHTS.safetensors OUTDIR IN.rgb...
Each IN.rgb is 512x512x3 uint8 (from prepare_realesrgan.sh); reflect pre-pad 10 as upscayl-bin.
"""
import json, os, struct, sys, time, zlib
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    data = b[8 + n:]
    dt = {'F16': torch.float16, 'F32': torch.float32, 'BF16': torch.bfloat16}
    out = {}
    for k, v in head.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(data[s:e]), dtype=dt[v['dtype']]).reshape(v['shape']).float()
    return out


class RDB(nn.Module):
    def __init__(s, nf=64, gc=32):
        super().__init__()
        s.conv1 = nn.Conv2d(nf, gc, 3, 1, 1); s.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        s.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1); s.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        s.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(s, x):
        l = lambda t: F.leaky_relu(t, 0.2)
        x1 = l(s.conv1(x)); x2 = l(s.conv2(torch.cat((x, x1), 1)))
        x3 = l(s.conv3(torch.cat((x, x1, x2), 1))); x4 = l(s.conv4(torch.cat((x, x1, x2, x3), 1)))
        return s.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(s):
        super().__init__(); s.rdb1 = RDB(); s.rdb2 = RDB(); s.rdb3 = RDB()

    def forward(s, x):
        return s.rdb3(s.rdb2(s.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv_first = nn.Conv2d(3, 64, 3, 1, 1)
        s.body = nn.Sequential(*[RRDB() for _ in range(23)])
        for n in ['conv_body', 'conv_up1', 'conv_up2', 'conv_hr']:
            setattr(s, n, nn.Conv2d(64, 64, 3, 1, 1))
        s.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def forward(s, x):
        l = lambda t: F.leaky_relu(t, 0.2)
        f = s.conv_first(x); f = f + s.conv_body(s.body(f))
        f = l(s.conv_up1(F.interpolate(f, scale_factor=2, mode='nearest')))
        f = l(s.conv_up2(F.interpolate(f, scale_factor=2, mode='nearest')))
        return s.conv_last(l(s.conv_hr(f)))


class SRVGG(nn.Module):
    def __init__(s):
        super().__init__()
        m = [nn.Conv2d(3, 64, 3, 1, 1), nn.PReLU(64)]
        for _ in range(32):
            m += [nn.Conv2d(64, 64, 3, 1, 1), nn.PReLU(64)]
        m += [nn.Conv2d(64, 48, 3, 1, 1)]
        s.body = nn.ModuleList(m)

    def forward(s, x):
        o = x
        for b in s.body:
            o = b(o)
        return F.pixel_shuffle(o, 4) + F.interpolate(x, scale_factor=4, mode='nearest')


def write_png(path, rgb):  # rgb: HxWx3 uint8 tensor on CPU
    h, w, _ = rgb.shape
    rows = torch.cat([torch.zeros(h, 1, dtype=torch.uint8), rgb.reshape(h, w * 3)], 1).contiguous()
    try:
        raw = rows.numpy().tobytes()
    except Exception:  # torch without numpy
        raw = bytes(rows.flatten().tolist())
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
    png += chunk(b'IDAT', zlib.compress(raw, 1)) + chunk(b'IEND', b'')
    open(path, 'wb').write(png)


def main():
    model, weights, outdir = sys.argv[1:4]
    net = RRDBNet() if model == 'x4plus' else SRVGG()
    sd = load_safetensors(weights)
    net.load_state_dict(sd, strict=True)
    net = net.cuda().eval()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    os.makedirs(outdir, exist_ok=True)
    for p in sys.argv[4:]:
        b = open(p, 'rb').read()
        x = torch.frombuffer(bytearray(b), dtype=torch.uint8).reshape(512, 512, 3).permute(2, 0, 1)
        x = x.float().div(255).unsqueeze(0).cuda()
        t = time.time()
        with torch.no_grad():
            y = net(F.pad(x, (10, 10, 10, 10), mode='reflect'))[:, :, 40:-40, 40:-40]
        torch.cuda.synchronize()
        y = y.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).contiguous().cpu()
        name = os.path.basename(p)[:-4] + '.png'
        write_png(os.path.join(outdir, name), y)
        print(f'{model} {name} fp32 {time.time() - t:.2f} s', flush=True)


if __name__ == '__main__':
    main()
