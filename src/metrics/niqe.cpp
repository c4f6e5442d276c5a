// NIQE (Mittal, Soundararajan, Bovik 2013) as MATLAB's niqe release and BasicSR calculate_niqe:
// the same blocks, shifts (with wrap-around, as np.roll), gamma grid and MATLAB bicubic resize.
// Everything is float64 (BasicSR mixes in float32; the difference is ~1e-4, see docs/metrics.md).
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"
#include "metrics/npz.hpp"

namespace face2scene::metrics {
namespace {

constexpr int kBlock = 96;
constexpr int kFeatures = 18;  // per scale

struct GammaGrid {
  std::vector<double> gam, r_gam;
  GammaGrid() {
    // np.arange(0.2, 10.001, 0.001): start + i * ((start + step) - start), 9801 values.
    const double delta = (0.2 + 0.001) - 0.2;
    for (int i = 0; i < 9801; ++i) {
      const double g = 0.2 + i * delta;
      gam.push_back(g);
      r_gam.push_back(std::tgamma(2 / g) * std::tgamma(2 / g) / (std::tgamma(1 / g) * std::tgamma(3 / g)));
    }
  }
};
const GammaGrid& grid() {
  static const GammaGrid g;
  return g;
}

struct Aggd {
  double alpha, beta_l, beta_r;
};

Aggd fit_aggd(const std::vector<double>& v) {
  double neg_sq = 0, pos_sq = 0, abs_sum = 0, sq = 0;
  size_t neg_n = 0, pos_n = 0;
  for (double x : v) {
    if (x < 0) {
      neg_sq += x * x;
      ++neg_n;
    } else if (x > 0) {
      pos_sq += x * x;
      ++pos_n;
    }
    abs_sum += std::fabs(x);
    sq += x * x;
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double left = neg_n ? std::sqrt(neg_sq / neg_n) : nan;
  const double right = pos_n ? std::sqrt(pos_sq / pos_n) : nan;
  const double n = static_cast<double>(v.size());
  const double gh = left / right;
  const double rhat = (abs_sum / n) * (abs_sum / n) / (sq / n);
  const double rn = rhat * (gh * gh * gh + 1) * (gh + 1) / ((gh * gh + 1) * (gh * gh + 1));
  const auto& g = grid();
  // np.argmin over an all-NaN array (a block without negative or positive values) returns 0,
  // so BasicSR then reports alpha = 0.2 with NaN betas; do the same.
  size_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < g.gam.size() && !std::isnan(rn); ++i) {
    const double d = (g.r_gam[i] - rn) * (g.r_gam[i] - rn);
    if (d < best_d) {  // first minimum, as np.argmin
      best_d = d;
      best = i;
    }
  }
  const double a = g.gam[best];
  const double k = std::sqrt(std::tgamma(1 / a) / std::tgamma(3 / a));
  return {a, left * k, right * k};
}

// 18 features of one block (bw x bh view into an image of row stride `stride`).
void block_features(const double* p, int stride, int bw, int bh, double* out) {
  std::vector<double> v(static_cast<size_t>(bw) * bh), prod(v.size());
  for (int y = 0; y < bh; ++y)
    for (int x = 0; x < bw; ++x) v[static_cast<size_t>(y) * bw + x] = p[static_cast<size_t>(y) * stride + x];
  Aggd f = fit_aggd(v);
  out[0] = f.alpha;
  out[1] = (f.beta_l + f.beta_r) / 2;
  // np.roll(block, (dy, dx)): rolled[y][x] = block[y - dy][x - dx], wrapping around.
  static constexpr int kShifts[4][2] = {{0, 1}, {1, 0}, {1, 1}, {1, -1}};
  for (int s = 0; s < 4; ++s) {
    const int dy = kShifts[s][0], dx = kShifts[s][1];
    for (int y = 0; y < bh; ++y) {
      const int sy = ((y - dy) % bh + bh) % bh;
      for (int x = 0; x < bw; ++x) {
        const int sx = ((x - dx) % bw + bw) % bw;
        prod[static_cast<size_t>(y) * bw + x] = v[static_cast<size_t>(y) * bw + x] * v[static_cast<size_t>(sy) * bw + sx];
      }
    }
    f = fit_aggd(prod);
    const double mean = (f.beta_r - f.beta_l) * std::tgamma(2 / f.alpha) / std::tgamma(1 / f.alpha);
    out[2 + 4 * s] = f.alpha;
    out[3 + 4 * s] = mean;
    out[4 + 4 * s] = f.beta_l;
    out[5 + 4 * s] = f.beta_r;
  }
}

// scipy.ndimage.convolve(img, win, mode='nearest') with a symmetric 7x7 window.
std::vector<double> filter_nearest(const std::vector<double>& img, int w, int h, const std::vector<double>& win) {
  std::vector<double> out(img.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int ky = 0; ky < 7; ++ky) {
        const int yy = std::clamp(y + ky - 3, 0, h - 1);
        const double* row = img.data() + static_cast<size_t>(yy) * w;
        for (int kx = 0; kx < 7; ++kx) s += win[ky * 7 + kx] * row[std::clamp(x + kx - 3, 0, w - 1)];
      }
      out[static_cast<size_t>(y) * w + x] = s;
    }
  }
  return out;
}

// MATLAB imresize(img, 0.5) along one axis: bicubic (a = -0.5), kernel widened by 1/scale
// (antialiasing), symmetric boundary, weights normalised per output sample.
std::vector<double> resize_half_axis(const std::vector<double>& img, int w, int h, bool along_x, int& ow, int& oh) {
  const double scale = 0.5, kw = 4.0 / scale;
  const int n_in = along_x ? w : h;
  const int n_out = static_cast<int>(std::ceil(n_in * scale));
  const int p = static_cast<int>(std::ceil(kw)) + 2;
  auto cubic = [](double x) {
    const double ax = std::fabs(x), a2 = ax * ax, a3 = a2 * ax;
    if (ax <= 1) return 1.5 * a3 - 2.5 * a2 + 1;
    if (ax <= 2) return -0.5 * a3 + 2.5 * a2 - 4 * ax + 2;
    return 0.0;
  };
  std::vector<std::vector<std::pair<int, double>>> taps(n_out);
  for (int o = 0; o < n_out; ++o) {
    const double u = (o + 1) / scale + 0.5 * (1 - 1 / scale);
    const double left = std::floor(u - kw / 2);
    double sum = 0;
    for (int k = 0; k < p; ++k) {
      const double idx = left + k;
      const double wt = scale * cubic((u - idx) * scale);
      int i0 = static_cast<int>(idx) - 1;
      if (i0 < 0) i0 = -i0 - 1;
      if (i0 >= n_in) i0 = 2 * n_in - i0 - 1;
      taps[o].push_back({i0, wt});
      sum += wt;
    }
    for (auto& t : taps[o]) t.second /= sum;
  }
  ow = along_x ? n_out : w;
  oh = along_x ? h : n_out;
  std::vector<double> out(static_cast<size_t>(ow) * oh, 0.0);
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      double s = 0;
      if (along_x) {
        for (const auto& t : taps[x]) s += t.second * img[static_cast<size_t>(y) * w + t.first];
      } else {
        for (const auto& t : taps[y]) s += t.second * img[static_cast<size_t>(t.first) * w + x];
      }
      out[static_cast<size_t>(y) * ow + x] = s;
    }
  }
  return out;
}

}  // namespace

Niqe::Niqe(const std::string& npz_path) {
  auto arrays = detail::load_npz(npz_path);
  auto need = [&](const std::string& key, size_t count) -> const std::vector<double>& {
    auto it = arrays.find(key);
    if (it == arrays.end()) throw FormatError(npz_path + ": no array '" + key + "'");
    if (it->second.data.size() != count) {
      throw FormatError(npz_path + ": '" + key + "' has " + std::to_string(it->second.data.size()) +
                        " values, expected " + std::to_string(count));
    }
    return it->second.data;
  };
  mu_ = need("mu_pris_param", 36);
  cov_ = need("cov_pris_param", 36 * 36);
  window_ = need("gaussian_window", 49);
}

double Niqe::on_plane(const std::vector<double>& y, int width, int height) const {
  const int nbw = width / kBlock, nbh = height / kBlock;
  // The block covariance (np.cov, ddof 1) needs two blocks: with one it is all NaN and the
  // distance's SVD fails, so say so instead.
  if (nbw < 1 || nbh < 1 || nbw * nbh < 2) {
    throw ArgumentError("niqe: image is " + std::to_string(width) + "x" + std::to_string(height) +
                        ", NIQE needs at least two 96x96 blocks (e.g. 192x96)");
  }
  int w = nbw * kBlock, h = nbh * kBlock;
  std::vector<double> img(static_cast<size_t>(w) * h);
  for (int r = 0; r < h; ++r)
    std::copy(y.begin() + static_cast<size_t>(r) * width, y.begin() + static_cast<size_t>(r) * width + w,
              img.begin() + static_cast<size_t>(r) * w);
  const int nblocks = nbw * nbh;
  std::vector<double> feats(static_cast<size_t>(nblocks) * 2 * kFeatures);
  for (int scale = 1; scale <= 2; ++scale) {
    const auto mu = filter_nearest(img, w, h, window_);
    std::vector<double> sq(img.size());
    for (size_t i = 0; i < img.size(); ++i) sq[i] = img[i] * img[i];
    const auto mu2 = filter_nearest(sq, w, h, window_);
    std::vector<double> mscn(img.size());
    for (size_t i = 0; i < img.size(); ++i) {
      const double sigma = std::sqrt(std::fabs(mu2[i] - mu[i] * mu[i]));
      mscn[i] = (img[i] - mu[i]) / (sigma + 1);
    }
    const int bs = kBlock / scale;
    int b = 0;
    for (int bx = 0; bx < nbw; ++bx) {
      for (int by = 0; by < nbh; ++by, ++b) {
        block_features(mscn.data() + static_cast<size_t>(by) * bs * w + static_cast<size_t>(bx) * bs, w, bs, bs,
                       feats.data() + static_cast<size_t>(b) * 2 * kFeatures + (scale - 1) * kFeatures);
      }
    }
    if (scale == 1) {
      int tw = 0, th = 0, ow = 0, oh = 0;
      for (auto& v : img) v /= 255.0;
      auto t = resize_half_axis(img, w, h, false, tw, th);
      img = resize_half_axis(t, tw, th, true, ow, oh);
      for (auto& v : img) v *= 255.0;
      w = ow;
      h = oh;
    }
  }
  // nanmean per feature; covariance over the blocks without any NaN (np.cov, ddof 1).
  constexpr int F = 2 * kFeatures;
  std::vector<double> mu_d(F, 0.0);
  for (int f = 0; f < F; ++f) {
    double s = 0;
    int n = 0;
    for (int i = 0; i < nblocks; ++i) {
      const double v = feats[static_cast<size_t>(i) * F + f];
      if (!std::isnan(v)) {
        s += v;
        ++n;
      }
    }
    mu_d[f] = n ? s / n : std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<int> rows;
  for (int i = 0; i < nblocks; ++i) {
    bool ok = true;
    for (int f = 0; f < F; ++f) ok = ok && !std::isnan(feats[static_cast<size_t>(i) * F + f]);
    if (ok) rows.push_back(i);
  }
  const int n = static_cast<int>(rows.size());
  auto cov = torch::zeros({F, F}, torch::kFloat64);
  if (n >= 2) {
    auto m = torch::empty({n, F}, torch::kFloat64);
    for (int r = 0; r < n; ++r)
      for (int f = 0; f < F; ++f) m[r][f] = feats[static_cast<size_t>(rows[r]) * F + f];
    auto c = m - m.mean(0, true);
    cov = c.t().matmul(c) / (n - 1);
  } else {
    cov.fill_(std::numeric_limits<double>::quiet_NaN());  // np.cov of one row is NaN too
  }
  auto cov_p = torch::from_blob(const_cast<double*>(cov_.data()), {F, F}, torch::kFloat64).clone();
  auto mu_p = torch::from_blob(const_cast<double*>(mu_.data()), {F}, torch::kFloat64).clone();
  auto md = torch::from_blob(mu_d.data(), {F}, torch::kFloat64).clone();
  auto inv = at::linalg_pinv((cov_p + cov) / 2);
  auto diff = mu_p - md;
  return std::sqrt(diff.dot(inv.mv(diff)).item<double>());
}

double Niqe::operator()(const Image& image, int crop_border) const {
  // BasicSR: Y channel (unrounded, float), crop, then rounded "for consistency with MATLAB".
  PixelOptions opt;
  opt.crop_border = crop_border;
  opt.y_channel = true;
  const Planes p = to_planes(image, opt);
  std::vector<double> y(p.data.size());
  if (image.channels == 3) {
    // Recompute Y in double: the float planes lose ~1e-5, which can flip a rounding.
    const double scale = 255.0 / image.max_value();
    for (int r = 0; r < p.height; ++r) {
      for (int c = 0; c < p.width; ++c) {
        const uint16_t* px = &image.data[(static_cast<size_t>(r + crop_border) * image.width + c + crop_border) * 3];
        const double v = 16.0 + (65.481 * px[0] * scale + 128.553 * px[1] * scale + 24.966 * px[2] * scale) / 255.0;
        y[static_cast<size_t>(r) * p.width + c] = std::nearbyint(v);
      }
    }
  } else {
    for (size_t i = 0; i < y.size(); ++i) y[i] = std::nearbyint(p.data[i]);
  }
  return on_plane(y, p.width, p.height);
}

}  // namespace face2scene::metrics
