#!/usr/bin/python3
"""Independent reference values for face2scene's metric tests (tests/test_metrics.cpp).

Run with Debian's python (python3-skimage, python3-scipy, python3-opencv, opencv-data):
    /usr/bin/python3 scripts/reference_metrics.py ../shared/data > tests/fixtures/metrics/reference.json

- PSNR / SSIM (RGB and Y): scikit-image (peak_signal_noise_ratio, structural_similarity with
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255; Y from
  skimage.color.rgb2ycbcr), i.e. the BasicSR / MATLAB convention.
- MS-SSIM: a numpy re-implementation of the authors' msssim.m (Wang, Simoncelli, Bovik 2003).
- NIQE: a numpy re-implementation of the MATLAB / BasicSR algorithm (float64 throughout), with the
  pristine model from niqe_pris_params.npz.
- BRISQUE: OpenCV contrib's cv2.quality.QualityBRISQUE_compute with the LIVE model files.

The predictions are made from each ground truth by an integer-only degradation that the C++ test
reproduces exactly (see degrade()).
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image
from scipy import ndimage, signal, special
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

IMAGES = [
    # path under the data folder, crop border
    ("natural/Set14/baboon.png", 4),
    ("natural/Set14/bridge.png", 0),   # grey
    ("natural/Set5/woman.png", 2),     # odd sizes appear while downsampling for MS-SSIM
    ("natural/Set14/comic.png", 0),    # odd height
    ("natural/Kodak24/kodim05.png", 0),
]


def degrade(gt):
    """3-tap blur (floor) plus a fixed +-8 pattern, clipped: integer-exact in C++ too."""
    g = gt.astype(np.int64)
    if g.ndim == 2:
        g = g[:, :, None]
    h, w, c = g.shape
    right = g[:, np.minimum(np.arange(w) + 1, w - 1), :]
    down = g[np.minimum(np.arange(h) + 1, h - 1), :, :]
    b = (2 * g + right + down) // 4
    yy, xx, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    n = (xx * 7 + yy * 13 + cc * 5) % 17 - 8
    out = np.clip(b + n, 0, 255).astype(np.uint8)
    return out[:, :, 0] if gt.ndim == 2 else out


def to_y(img):
    if img.ndim == 2:
        return img.astype(np.float64)
    return rgb2ycbcr(img)[:, :, 0]  # 16..235, unrounded


def crop(img, cb):
    return img[cb:img.shape[0] - cb, cb:img.shape[1] - cb] if cb else img


def sk_psnr(a, b):
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def sk_ssim(a, b):
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:
        kw["channel_axis"] = -1
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), **kw))


# ---- MS-SSIM after msssim.m -------------------------------------------------------------------
def _gauss_window():
    x = np.arange(11) - 5
    g = np.exp(-(x ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def _ssim_index_new(a, b, win):
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda x: signal.correlate2d(x, win, mode="valid")
    mu1, mu2 = f(a), f(b)
    s11 = f(a * a) - mu1 * mu1
    s22 = f(b * b) - mu2 * mu2
    s12 = f(a * b) - mu1 * mu2
    cs = (2 * s12 + C2) / (s11 + s22 + C2)
    l = (2 * mu1 * mu2 + C1) / (mu1 ** 2 + mu2 ** 2 + C1)
    return float((l * cs).mean()), float(cs.mean())


def _down(x):
    # imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end)
    p = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    f = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4.0
    return f[::2, ::2]


def ms_ssim_channel(a, b):
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    win = _gauss_window()
    mcs, mssim = [], []
    for level in range(5):
        s, cs = _ssim_index_new(a, b, win)
        mssim.append(s)
        mcs.append(cs)
        a, b = _down(a), _down(b)
    vals = [max(v, 0.0) for v in mcs[:4]] + [max(mssim[4], 0.0)]
    return float(np.prod([v ** w for v, w in zip(vals, weights)]))


def ms_ssim(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.ndim == 2:
        return ms_ssim_channel(a, b)
    return float(np.mean([ms_ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


# ---- NIQE (Mittal et al. 2013, MATLAB / BasicSR algorithm) -------------------------------------
def _cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1) +
            (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_axis(x, scale, axis):
    n_in = x.shape[axis]
    n_out = int(math.ceil(n_in * scale))
    kw = 4.0 / scale  # antialiasing widens the kernel when shrinking
    out_idx = np.arange(1, n_out + 1)
    u = out_idx / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kw / 2)
    p = int(math.ceil(kw)) + 2
    idx = left[:, None] + np.arange(p)[None, :]
    wts = scale * _cubic((u[:, None] - idx) * scale)
    wts /= wts.sum(axis=1, keepdims=True)
    # MATLAB 'symmetric' boundary on 1-based indices
    i0 = idx - 1
    i0 = np.where(i0 < 0, -i0 - 1, i0)
    i0 = np.where(i0 >= n_in, 2 * n_in - i0 - 1, i0).astype(np.int64)
    xm = np.moveaxis(x, axis, 0)
    res = np.einsum("op,op...->o...", wts, xm[i0])
    return np.moveaxis(res, 0, axis)


def matlab_imresize_half(img):
    return _resize_axis(_resize_axis(img, 0.5, 0), 0.5, 1)


_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = special.gamma(2 / _GAM) ** 2 / (special.gamma(1 / _GAM) * special.gamma(3 / _GAM))


def _aggd(block):
    block = block.ravel()
    left = np.sqrt(np.mean(block[block < 0] ** 2))
    right = np.sqrt(np.mean(block[block > 0] ** 2))
    gh = left / right
    rhat = np.mean(np.abs(block)) ** 2 / np.mean(block ** 2)
    rn = rhat * (gh ** 3 + 1) * (gh + 1) / (gh ** 2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rn) ** 2)]
    k = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left * k, right * k


def _block_features(block):
    a, bl, br = _aggd(block)
    feat = [a, (bl + br) / 2]
    for sh in ([0, 1], [1, 0], [1, 1], [1, -1]):
        prod = block * np.roll(block, sh, axis=(0, 1))
        a, bl, br = _aggd(prod)
        mean = (br - bl) * special.gamma(2 / a) / special.gamma(1 / a)
        feat += [a, mean, bl, br]
    return feat


def niqe(y, params):
    mu_p, cov_p, win = params["mu_pris_param"], params["cov_pris_param"], params["gaussian_window"]
    h, w = y.shape
    nbh, nbw = h // 96, w // 96
    img = y[: nbh * 96, : nbw * 96].astype(np.float64)
    feats = []
    for scale in (1, 2):
        mu = ndimage.convolve(img, win, mode="nearest")
        sigma = np.sqrt(np.abs(ndimage.convolve(img * img, win, mode="nearest") - mu * mu))
        mscn = (img - mu) / (sigma + 1)
        bs = 96 // scale
        rows = []
        for bx in range(nbw):
            for by in range(nbh):
                rows.append(_block_features(mscn[by * bs:(by + 1) * bs, bx * bs:(bx + 1) * bs]))
        feats.append(np.array(rows))
        if scale == 1:
            img = matlab_imresize_half(img / 255.0) * 255.0
    d = np.concatenate(feats, axis=1)
    mu_d = np.nanmean(d, axis=0)
    cov_d = np.cov(d[~np.isnan(d).any(axis=1)], rowvar=False)
    inv = np.linalg.pinv((cov_p + cov_d) / 2)
    diff = mu_p - mu_d
    return float(np.sqrt(np.squeeze(diff @ inv @ diff.T)))


def niqe_of(img, params):
    y = to_y(img)
    return niqe(np.round(y), params)


def brisque_features_of(img):
    import cv2
    bgr = img if img.ndim == 2 else img[:, :, ::-1].copy()
    return [float(v) for v in cv2.quality.QualityBRISQUE_computeFeatures(bgr).ravel()]


def brisque_of(img, weights):
    import cv2
    bgr = img if img.ndim == 2 else img[:, :, ::-1].copy()
    return float(cv2.quality.QualityBRISQUE_compute(
        bgr, os.path.join(weights, "brisque", "brisque_model_live.yml"),
        os.path.join(weights, "brisque", "brisque_range_live.yml"))[0])


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    weights = os.path.join(data, "weights")
    params = dict(np.load(os.path.join(weights, "niqe", "niqe_pris_params.npz")))
    cases = []
    for rel, cb in IMAGES:
        gt = np.array(Image.open(os.path.join(data, rel)))
        pred = degrade(gt)
        g, p = crop(gt, cb), crop(pred, cb)
        gy, py = crop(to_y(gt), cb), crop(to_y(pred), cb)
        case = {
            "gt": rel, "crop_border": cb, "channels": 1 if gt.ndim == 2 else 3,
            "width": gt.shape[1], "height": gt.shape[0],
            "psnr_rgb": sk_psnr(p, g), "psnr_y": sk_psnr(py, gy),
            "ssim_rgb": sk_ssim(p, g), "ssim_y": sk_ssim(py, gy),
            "ms_ssim_rgb": ms_ssim(p, g), "ms_ssim_y": ms_ssim(py, gy),
            "niqe_gt": niqe_of(gt, params), "niqe_pred": niqe_of(pred, params),
            "brisque_gt": brisque_of(gt, weights), "brisque_pred": brisque_of(pred, weights),
            "brisque_features_gt": brisque_features_of(gt),
        }
        cases.append(case)
        print(rel, {k: round(v, 5) for k, v in case.items() if isinstance(v, float)}, file=sys.stderr)
    json.dump({"generator": "scripts/reference_metrics.py", "degradation": "blur3+pattern17 (see degrade())",
               "cases": cases}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
