// KID with SqueezeNet features (metrics.hpp says why not Inception): unbiased MMD² with the cubic
// polynomial kernel, and a bootstrap over images from per-image kernel block sums.
#include <algorithm>
#include <cmath>
#include <random>

#include "face2scene/metrics.hpp"

namespace face2scene::metrics {
namespace F = torch::nn::functional;

torch::Tensor kid_features(const Lpips& net, const torch::Tensor& image, int patch, int max_patches) {
  if (image.dim() != 3 || image.size(0) != 3) throw ArgumentError("kid_features: expected a [3,H,W] image, got " + c10::str(image.sizes()));
  if (patch < 32 || max_patches < 1) throw ArgumentError("kid_features: patch must be >= 32 and max_patches >= 1");
  auto x = image.to(torch::kCPU, torch::kFloat32).unsqueeze(0);
  int64_t h = x.size(2), w = x.size(3);
  if (h < patch || w < patch) {  // small images: the short side up to one patch
    const double s = double(patch) / double(std::min(h, w));
    h = std::max<int64_t>(patch, std::llround(double(h) * s)), w = std::max<int64_t>(patch, std::llround(double(w) * s));
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBicubic).align_corners(false))
            .clamp(0, 1);
  }
  // A centred grid of whole tiles; when there are more than max_patches, an even spread of them.
  const int64_t ny = h / patch, nx = w / patch, oy = (h - ny * patch) / 2, ox = (w - nx * patch) / 2;
  std::vector<std::pair<int64_t, int64_t>> cells;
  for (int64_t i = 0; i < ny; ++i)
    for (int64_t j = 0; j < nx; ++j) cells.push_back({oy + i * patch, ox + j * patch});
  std::vector<std::pair<int64_t, int64_t>> pick;
  const size_t k = std::min<size_t>(cells.size(), size_t(max_patches));
  for (size_t i = 0; i < k; ++i) pick.push_back(cells[i * cells.size() / k]);
  std::vector<torch::Tensor> tiles;
  for (auto [y, xx] : pick) tiles.push_back(x[0].slice(1, y, y + patch).slice(2, xx, xx + patch));
  const auto taps = net.features(torch::stack(tiles));
  return kid_normalise(taps.back().mean({2, 3}).to(torch::kCPU, torch::kFloat32));
}

torch::Tensor kid_normalise(const torch::Tensor& f) {
  return f / f.norm(2, 1, true).clamp_min(1e-12) * std::sqrt(double(f.size(1)));
}

namespace {
torch::Tensor poly_kernel(const torch::Tensor& a, const torch::Tensor& b) {
  return (torch::matmul(a.to(torch::kFloat64), b.to(torch::kFloat64).t()) / double(a.size(1)) + 1).pow(3);
}
}  // namespace

double kid(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1) || a.size(0) < 2 || b.size(0) < 2)
    throw ArgumentError("kid: expected [m,d] and [n,d] features with m, n >= 2, got " + c10::str(a.sizes()) + " and " + c10::str(b.sizes()));
  const double m = double(a.size(0)), n = double(b.size(0));
  const auto kxx = poly_kernel(a, a), kyy = poly_kernel(b, b), kxy = poly_kernel(a, b);
  const double sxx = (kxx.sum() - kxx.diagonal().sum()).item<double>(), syy = (kyy.sum() - kyy.diagonal().sum()).item<double>();
  return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * kxy.sum().item<double>() / (m * n);
}

BootstrapCI kid_bootstrap(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, int resamples, double level,
                          uint64_t seed) {
  if (a.size() != b.size()) throw ArgumentError("kid_bootstrap: " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + " images");
  if (!(level > 0 && level < 1) || resamples < 1) throw ArgumentError("kid_bootstrap: level must be in (0,1) and resamples >= 1");
  BootstrapCI ci;
  const size_t N = a.size();
  ci.n = int(N);
  if (N == 0) {
    ci.mean = ci.lo = ci.hi = std::nan("");
    return ci;
  }
  const auto A = torch::cat(a, 0), B = torch::cat(b, 0);
  ci.mean = A.size(0) >= 2 && B.size(0) >= 2 ? kid(A, B) : std::nan("");
  if (N == 1) {
    ci.lo = ci.hi = ci.mean;
    return ci;
  }
  // Per-image block sums of each kernel matrix (and the diagonals the unbiased form leaves out).
  std::vector<int64_t> na(N), nb(N), oa(N + 1, 0), ob(N + 1, 0);
  for (size_t i = 0; i < N; ++i) na[i] = a[i].size(0), nb[i] = b[i].size(0), oa[i + 1] = oa[i] + na[i], ob[i + 1] = ob[i] + nb[i];
  auto blocks = [&](const torch::Tensor& k, const std::vector<int64_t>& o1, const std::vector<int64_t>& o2) {
    std::vector<double> s(N * N);
    auto acc = k.contiguous();
    for (size_t i = 0; i < N; ++i)
      for (size_t j = 0; j < N; ++j) s[i * N + j] = acc.slice(0, o1[i], o1[i + 1]).slice(1, o2[j], o2[j + 1]).sum().item<double>();
    return s;
  };
  const auto kxx = poly_kernel(A, A), kyy = poly_kernel(B, B), kxy = poly_kernel(A, B);
  const auto Sxx = blocks(kxx, oa, oa), Syy = blocks(kyy, ob, ob), Sxy = blocks(kxy, oa, ob);
  std::vector<double> dx(N), dy(N);
  const auto ddx = kxx.diagonal(), ddy = kyy.diagonal();
  for (size_t i = 0; i < N; ++i) dx[i] = ddx.slice(0, oa[i], oa[i + 1]).sum().item<double>(), dy[i] = ddy.slice(0, ob[i], ob[i + 1]).sum().item<double>();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, N - 1);
  std::vector<double> vals;
  std::vector<double> wgt(N);
  for (int r = 0; r < resamples; ++r) {
    std::fill(wgt.begin(), wgt.end(), 0.0);
    for (size_t i = 0; i < N; ++i) wgt[pick(rng)] += 1;
    // Within a set, a patch is never paired with itself, nor with its own copy when an image is
    // drawn twice: such pairs are duplicates, not samples, and would bias every resample upwards.
    double m = 0, n = 0, sxx = 0, syy = 0, sxy = 0, px = 0, py = 0;
    for (size_t i = 0; i < N; ++i) {
      if (wgt[i] == 0) continue;
      const double wi = wgt[i], dup = wi * (wi - 1);
      m += wi * double(na[i]), n += wi * double(nb[i]);
      sxx -= wi * dx[i] + dup * Sxx[i * N + i], syy -= wi * dy[i] + dup * Syy[i * N + i];
      px -= dup * double(na[i] * na[i]), py -= dup * double(nb[i] * nb[i]);
      for (size_t j = 0; j < N; ++j) {
        if (wgt[j] == 0) continue;
        const double w = wi * wgt[j];
        sxx += w * Sxx[i * N + j], syy += w * Syy[i * N + j], sxy += w * Sxy[i * N + j];
      }
    }
    px += m * (m - 1), py += n * (n - 1);
    if (px < 1 || py < 1) continue;
    vals.push_back(sxx / px + syy / py - 2 * sxy / (m * n));
  }
  std::sort(vals.begin(), vals.end());
  auto q = [&](double p) {
    if (vals.empty()) return std::nan("");
    const double pos = p * double(vals.size() - 1);
    const size_t i = size_t(std::floor(pos)), j = std::min(i + 1, vals.size() - 1);
    return vals[i] + (pos - double(i)) * (vals[j] - vals[i]);
  };
  ci.lo = q((1 - level) / 2), ci.hi = q((1 + level) / 2);
  return ci;
}

}  // namespace face2scene::metrics
