// PSNR and SSIM in plain C++ (no torch): a 1 MP pair must take well under 100 ms on one core,
// which rules out tensor round trips. The filters run in float on values shifted by -128: SSIM's
// variances are differences of large second moments, and centring keeps float's error far below
// C2 = 58.5 (see docs/metrics.md).
#include <algorithm>
#include <cmath>
#include <limits>

#include "face2scene/metrics.hpp"
#include "metrics/ssim_kernel.hpp"

namespace face2scene::metrics {

Planes to_planes(const Image& image, const PixelOptions& opt) {
  if (image.empty()) throw ArgumentError("metrics: empty image");
  if (image.channels != 1 && image.channels != 3) {
    throw ArgumentError("metrics: image has " + std::to_string(image.channels) + " channels, expected 1 or 3");
  }
  const int cb = opt.crop_border;
  if (cb < 0) throw ArgumentError("metrics: crop border must be >= 0, got " + std::to_string(cb));
  if (image.width <= 2 * cb || image.height <= 2 * cb) {
    throw ArgumentError("metrics: crop border " + std::to_string(cb) + " leaves nothing of a " +
                        std::to_string(image.width) + "x" + std::to_string(image.height) + " image");
  }
  Planes p;
  p.width = image.width - 2 * cb;
  p.height = image.height - 2 * cb;
  const bool to_y = opt.y_channel && image.channels == 3;
  p.channels = to_y ? 1 : image.channels;
  const size_t n = static_cast<size_t>(p.width) * p.height;
  p.data.resize(n * p.channels);
  const double scale = 255.0 / image.max_value();
  const int c_in = image.channels;
  for (int y = 0; y < p.height; ++y) {
    const uint16_t* row = image.data.data() + (static_cast<size_t>(y + cb) * image.width + cb) * c_in;
    float* dst = p.data.data() + static_cast<size_t>(y) * p.width;
    for (int x = 0; x < p.width; ++x) {
      const uint16_t* px = row + static_cast<size_t>(x) * c_in;
      if (to_y) {
        const double r = px[0] * scale, g = px[1] * scale, b = px[2] * scale;
        dst[x] = static_cast<float>(16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0);
      } else {
        for (int c = 0; c < c_in; ++c) dst[x + c * n] = static_cast<float>(px[c] * scale);
      }
    }
  }
  return p;
}

void check_pair(const Image& pred, const Image& gt, const PixelOptions& opt, const std::string& what) {
  if (pred.width != gt.width || pred.height != gt.height) {
    throw ArgumentError(what + ": sizes differ: " + std::to_string(pred.width) + "x" + std::to_string(pred.height) +
                        " vs " + std::to_string(gt.width) + "x" + std::to_string(gt.height));
  }
  if (pred.channels != gt.channels) {
    throw ArgumentError(what + ": one image is grey and the other RGB (" + std::to_string(pred.channels) + " vs " +
                        std::to_string(gt.channels) + " channels); convert both to the same colour type");
  }
  if (pred.width <= 2 * opt.crop_border || pred.height <= 2 * opt.crop_border) {
    throw ArgumentError(what + ": crop border " + std::to_string(opt.crop_border) + " leaves nothing of a " +
                        std::to_string(pred.width) + "x" + std::to_string(pred.height) + " image");
  }
}

double psnr_planes(const Planes& a, const Planes& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) {
    throw ArgumentError("psnr: plane shapes differ");
  }
  // Per-row partial sums in double keep the accumulation exact enough for 16-bit inputs too.
  double sse = 0.0;
  const size_t n = a.data.size();
  const size_t row = static_cast<size_t>(a.width);
  for (size_t i = 0; i < n; i += row) {
    double s = 0.0;
    for (size_t j = i; j < i + row; ++j) {
      const double d = static_cast<double>(a.data[j]) - b.data[j];
      s += d * d;
    }
    sse += s;
  }
  const double mse = sse / static_cast<double>(n);
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

double psnr(const Image& pred, const Image& gt, const PixelOptions& opt) {
  check_pair(pred, gt, opt, "psnr");
  return psnr_planes(to_planes(pred, opt), to_planes(gt, opt));
}

namespace detail {

const std::array<float, 11>& gaussian11() {
  static const std::array<float, 11> w = [] {
    std::array<double, 11> d{};
    double sum = 0.0;
    for (int i = 0; i < 11; ++i) {
      d[i] = std::exp(-(i - 5) * (i - 5) / (2.0 * 1.5 * 1.5));
      sum += d[i];
    }
    std::array<float, 11> f{};
    for (int i = 0; i < 11; ++i) f[i] = static_cast<float>(d[i] / sum);
    return f;
  }();
  return w;
}

SsimMeans ssim_plane(const float* a, const float* b, int width, int height) {
  constexpr int kWin = 11;
  if (width < kWin || height < kWin) {
    throw ArgumentError("ssim: image is " + std::to_string(width) + "x" + std::to_string(height) +
                        ", the 11x11 window needs at least 11x11");
  }
  const auto& w = gaussian11();
  const int ow = width - kWin + 1, oh = height - kWin + 1;
  constexpr float kShift = 128.0f;
  constexpr double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  // Horizontal pass per input row into a ring of 11 filtered rows (5 maps each: a, b, a^2, b^2,
  // ab of the shifted values), then the vertical pass per output row. The ring (~5*11*width
  // floats) stays in cache, and both inner loops run over x and vectorise. The kernel is
  // symmetric, so each pass sums mirrored pairs first: 6 multiplies instead of 11.
  const size_t rs = static_cast<size_t>(ow);
  std::vector<float> ring(static_cast<size_t>(kWin) * 5 * rs);
  auto slot = [&](int row, int map) { return ring.data() + (static_cast<size_t>(row % kWin) * 5 + map) * rs; };
  std::vector<float> src(5 * static_cast<size_t>(width));
  float *sa = src.data(), *sb = sa + width, *saa = sb + width, *sbb = saa + width, *sab = sbb + width;
  std::vector<float> acc(5 * rs);
  double ssim_sum = 0.0, cs_sum = 0.0;
  for (int y = 0; y < height; ++y) {
    const float* ra = a + static_cast<size_t>(y) * width;
    const float* rb = b + static_cast<size_t>(y) * width;
    for (int x = 0; x < width; ++x) {
      const float va = ra[x] - kShift, vb = rb[x] - kShift;
      sa[x] = va;
      sb[x] = vb;
      saa[x] = va * va;
      sbb[x] = vb * vb;
      sab[x] = va * vb;
    }
    for (int m = 0; m < 5; ++m) {
      const float* in = src.data() + static_cast<size_t>(m) * width;
      float* out = slot(y, m);
      for (int x = 0; x < ow; ++x) out[x] = w[5] * in[x + 5];
      for (int k = 0; k < 5; ++k) {
        const float wk = w[k];
        for (int x = 0; x < ow; ++x) out[x] += wk * (in[x + k] + in[x + 10 - k]);
      }
    }
    if (y < kWin - 1) continue;
    const int top = y - (kWin - 1);  // output row
    for (int m = 0; m < 5; ++m) {
      float* o = acc.data() + static_cast<size_t>(m) * rs;
      const float* c = slot(top + 5, m);
      for (int x = 0; x < ow; ++x) o[x] = w[5] * c[x];
      for (int k = 0; k < 5; ++k) {
        const float wk = w[k];
        const float* p0 = slot(top + k, m);
        const float* p1 = slot(top + 10 - k, m);
        for (int x = 0; x < ow; ++x) o[x] += wk * (p0[x] + p1[x]);
      }
    }
    const float *ma = acc.data(), *mb = ma + rs, *maa = mb + rs, *mbb = maa + rs, *mab = mbb + rs;
    // Per-pixel terms in float (vectorised), accumulated per row in double.
    constexpr float c1 = static_cast<float>(C1), c2 = static_cast<float>(C2);
    double row_ssim = 0.0, row_cs = 0.0;
    for (int x0 = 0; x0 < ow; x0 += 64) {
      const int x1 = std::min(ow, x0 + 64);
      float part_ssim = 0.f, part_cs = 0.f;
      for (int x = x0; x < x1; ++x) {
        const float fa = ma[x], fb = mb[x];
        const float va = maa[x] - fa * fa, vb = mbb[x] - fb * fb, cov = mab[x] - fa * fb;
        const float mua = fa + kShift, mub = fb + kShift;
        const float cs = (2.f * cov + c2) / (va + vb + c2);
        const float l = (2.f * mua * mub + c1) / (mua * mua + mub * mub + c1);
        part_ssim += l * cs;
        part_cs += cs;
      }
      row_ssim += part_ssim;
      row_cs += part_cs;
    }
    ssim_sum += row_ssim;
    cs_sum += row_cs;
  }
  const double count = static_cast<double>(ow) * oh;
  return {ssim_sum / count, cs_sum / count};
}

}  // namespace detail

double ssim_planes(const Planes& a, const Planes& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) {
    throw ArgumentError("ssim: plane shapes differ");
  }
  double sum = 0.0;
  for (int c = 0; c < a.channels; ++c) sum += detail::ssim_plane(a.plane(c), b.plane(c), a.width, a.height).ssim;
  return sum / a.channels;
}

double ssim(const Image& pred, const Image& gt, const PixelOptions& opt) {
  check_pair(pred, gt, opt, "ssim");
  return ssim_planes(to_planes(pred, opt), to_planes(gt, opt));
}

}  // namespace face2scene::metrics
