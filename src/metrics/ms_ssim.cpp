// MS-SSIM after the authors' msssim.m (Wang, Simoncelli, Bovik 2003).
#include <algorithm>
#include <array>
#include <cmath>

#include "face2scene/metrics.hpp"
#include "metrics/ssim_kernel.hpp"

namespace face2scene::metrics {
namespace {

// msssim.m: imfilter(ones(2)/4, 'symmetric', 'same') then every other sample: the mean of each
// 2x2 block, the last row/column repeated when the size is odd.
std::vector<float> downsample2(const float* src, int w, int h, int& ow, int& oh) {
  ow = (w + 1) / 2;
  oh = (h + 1) / 2;
  std::vector<float> out(static_cast<size_t>(ow) * oh);
  for (int y = 0; y < oh; ++y) {
    const float* r0 = src + static_cast<size_t>(2 * y) * w;
    const float* r1 = src + static_cast<size_t>(std::min(2 * y + 1, h - 1)) * w;
    for (int x = 0; x < ow; ++x) {
      const int x0 = 2 * x, x1 = std::min(2 * x + 1, w - 1);
      out[static_cast<size_t>(y) * ow + x] = 0.25f * (r0[x0] + r0[x1] + r1[x0] + r1[x1]);
    }
  }
  return out;
}

}  // namespace

double ms_ssim_planes(const Planes& a, const Planes& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) {
    throw ArgumentError("ms-ssim: plane shapes differ");
  }
  static constexpr std::array<double, 5> kWeights = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};
  // The 11x11 window must fit at the 5th scale, whose size is ceil(size / 16).
  const int min_side = std::min(a.width, a.height);
  if ((min_side + 15) / 16 < 11) {
    throw ArgumentError("ms-ssim: image is " + std::to_string(a.width) + "x" + std::to_string(a.height) +
                        " (after crop); 5 scales with an 11x11 window need both sides >= 161");
  }
  double total = 0.0;
  for (int c = 0; c < a.channels; ++c) {
    std::vector<float> pa(a.plane(c), a.plane(c) + static_cast<size_t>(a.width) * a.height);
    std::vector<float> pb(b.plane(c), b.plane(c) + static_cast<size_t>(b.width) * b.height);
    int w = a.width, h = a.height;
    double value = 1.0;
    for (int level = 0; level < 5; ++level) {
      const auto m = detail::ssim_plane(pa.data(), pb.data(), w, h);
      // Negative cs would make the fractional power undefined; clamp as pytorch_msssim does.
      const double term = level < 4 ? std::max(m.cs, 0.0) : std::max(m.ssim, 0.0);
      value *= std::pow(term, kWeights[level]);
      if (level < 4) {
        int nw = 0, nh = 0;
        pa = downsample2(pa.data(), w, h, nw, nh);
        pb = downsample2(pb.data(), w, h, nw, nh);
        w = nw;
        h = nh;
      }
    }
    total += value;
  }
  return total / a.channels;
}

double ms_ssim(const Image& pred, const Image& gt, const PixelOptions& opt) {
  check_pair(pred, gt, opt, "ms-ssim");
  return ms_ssim_planes(to_planes(pred, opt), to_planes(gt, opt));
}

}  // namespace face2scene::metrics
