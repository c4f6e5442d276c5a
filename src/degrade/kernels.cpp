// Blur kernels (Real-ESRGAN's families plus motion and defocus), depthwise blurring, and resizing
// with separable resampling weights (LibTorch 1.13's interpolate has no antialias).
#include <algorithm>
#include <cmath>

#include "face2scene/degrade.hpp"

namespace face2scene {
namespace {
constexpr double kPi = 3.14159265358979323846;

// Quadratic form x^T Sigma^-1 x of Real-ESRGAN's sigma_matrix2(sig_x, sig_y, theta).
struct InverseSigma {
  double a, b, c;  // [[a, b], [b, c]]
  InverseSigma(double sx, double sy, double theta) {
    const double ct = std::cos(theta), st = std::sin(theta);
    const double s00 = ct * ct * sx * sx + st * st * sy * sy;
    const double s01 = ct * st * (sx * sx - sy * sy);
    const double s11 = st * st * sx * sx + ct * ct * sy * sy;
    const double det = s00 * s11 - s01 * s01;
    a = s11 / det;
    b = -s01 / det;
    c = s00 / det;
  }
  double operator()(double x, double y) const { return a * x * x + 2 * b * x * y + c * y * y; }
};

// Fraction of an 8x8 supersampling grid inside the pixel where `inside` holds: antialiased shapes.
template <typename F>
double coverage(double px, double py, F inside) {
  int n = 0;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) n += inside(px + (j + 0.5) / 8 - 0.5, py + (i + 0.5) / 8 - 0.5) ? 1 : 0;
  return n / 64.0;
}
}  // namespace

torch::Tensor make_blur_kernel(const BlurParams& p) {
  if (p.type == KernelType::kNone) return torch::ones({1, 1}, torch::kFloat32);
  const int k = p.size;
  if (k < 1 || k % 2 == 0) throw ArgumentError("blur kernel size " + std::to_string(k) + " must be odd and >= 1");
  const int r = k / 2;
  std::vector<double> w(static_cast<size_t>(k) * k, 0.0);
  auto at = [&](int y, int x) -> double& { return w[static_cast<size_t>(y + r) * k + (x + r)]; };
  switch (p.type) {
    case KernelType::kIsoGaussian:
    case KernelType::kAnisoGaussian:
    case KernelType::kGeneralizedIso:
    case KernelType::kGeneralizedAniso:
    case KernelType::kPlateauIso:
    case KernelType::kPlateauAniso: {
      const bool iso = p.type == KernelType::kIsoGaussian || p.type == KernelType::kGeneralizedIso ||
                       p.type == KernelType::kPlateauIso;
      const InverseSigma q(p.sigma_x, iso ? p.sigma_x : p.sigma_y, iso ? 0.0 : p.theta);
      for (int y = -r; y <= r; ++y)
        for (int x = -r; x <= r; ++x) {
          const double d = q(x, y);
          if (p.type == KernelType::kIsoGaussian || p.type == KernelType::kAnisoGaussian) {
            at(y, x) = std::exp(-0.5 * d);
          } else if (p.type == KernelType::kGeneralizedIso || p.type == KernelType::kGeneralizedAniso) {
            at(y, x) = std::exp(-0.5 * std::pow(d, p.beta));
          } else {
            at(y, x) = 1.0 / (std::pow(d, p.beta) + 1.0);
          }
        }
      break;
    }
    case KernelType::kSinc: {
      // Real-ESRGAN's circular_lowpass_kernel: wc J1(wc r) / (2 pi r), centre wc^2 / (4 pi).
      const double wc = p.cutoff;
      for (int y = -r; y <= r; ++y)
        for (int x = -r; x <= r; ++x) {
          const double d = std::sqrt(double(x * x + y * y));
          at(y, x) = d == 0 ? wc * wc / (4 * kPi) : wc * std::cyl_bessel_j(1.0, wc * d) / (2 * kPi * d);
        }
      break;
    }
    case KernelType::kMotion: {
      // A 1-pixel-wide segment of `length` centred on the kernel, direction theta.
      const double dx = std::cos(p.theta), dy = std::sin(p.theta), half = p.length / 2.0;
      for (int y = -r; y <= r; ++y)
        for (int x = -r; x <= r; ++x)
          at(y, x) = coverage(x, y, [&](double u, double v) {
            const double t = u * dx + v * dy;
            const double n = -u * dy + v * dx;
            return std::abs(n) <= 0.5 && std::abs(t) <= half;
          });
      break;
    }
    case KernelType::kDefocus: {
      const double rr = double(p.radius) * p.radius;
      for (int y = -r; y <= r; ++y)
        for (int x = -r; x <= r; ++x) at(y, x) = coverage(x, y, [&](double u, double v) { return u * u + v * v <= rr; });
      break;
    }
    case KernelType::kNone:
      break;
  }
  double sum = 0;
  for (double v : w) sum += v;
  if (!(sum > 0) || !std::isfinite(sum)) {
    throw ArgumentError("blur kernel (type " + std::to_string(int(p.type)) + ") is empty: check its size/length/radius");
  }
  auto t = torch::empty({k, k}, torch::kFloat64);
  double* d = t.data_ptr<double>();
  for (size_t i = 0; i < w.size(); ++i) d[i] = w[i] / sum;
  return t.to(torch::kFloat32);
}

torch::Tensor blur_images(const torch::Tensor& x, const torch::Tensor& kernels) {
  const int64_t b = x.size(0), c = x.size(1), k = kernels.size(-1);
  if (kernels.size(0) != b || k % 2 == 0) throw ArgumentError("blur_images: need [B,k,k] kernels with odd k");
  if (k == 1) return x * kernels.view({b, 1, 1, 1}).to(x.device(), x.scalar_type());
  const int64_t pad = k / 2;
  namespace F = torch::nn::functional;
  // Reflect as Real-ESRGAN's filter2D; where the image is smaller than the pad, the excess is
  // replicated, so a kernel zero-padded to a batch's largest size gives the same result alone.
  const int64_t rh = std::min(pad, x.size(2) - 1), rw = std::min(pad, x.size(3) - 1);
  torch::Tensor padded = x;
  if (rh > 0 || rw > 0) padded = F::pad(padded, F::PadFuncOptions({rw, rw, rh, rh}).mode(torch::kReflect));
  if (rh < pad || rw < pad) {
    padded = F::pad(padded, F::PadFuncOptions({pad - rw, pad - rw, pad - rh, pad - rh}).mode(torch::kReplicate));
  }
  const auto conv = [&](const torch::Tensor& in, const torch::Tensor& w) {  // w [B,kh,kw], depthwise
    auto ww = w.to(x.device(), x.scalar_type()).repeat_interleave(c, 0).unsqueeze(1);
    return torch::conv2d(in, ww, torch::Tensor(), torch::IntArrayRef{1, 1}, torch::IntArrayRef{0, 0},
                         torch::IntArrayRef{1, 1}, b * c);
  };
  // Rank-1 kernels (isotropic and axis-aligned Gaussians, deltas) run as two 1-D passes: k times
  // fewer operations for the commonest kernels.
  {
    auto k64 = kernels.to(torch::kCPU, torch::kFloat64);
    auto [u, sv, vh] = torch::linalg_svd(k64, false);
    if ((sv.select(1, 1) <= 1e-6 * sv.select(1, 0)).all().item<bool>()) {
      auto root = sv.select(1, 0).sqrt().view({b, 1});
      auto col = (u.select(2, 0) * root).view({b, k, 1}), row = (vh.select(1, 0) * root).view({b, 1, k});
      auto in = padded.reshape({1, b * c, padded.size(2), padded.size(3)});
      return conv(conv(in, col), row).view({b, c, x.size(2), x.size(3)});
    }
  }
  auto w = kernels.to(x.device(), x.scalar_type()).repeat_interleave(c, 0).unsqueeze(1);  // [B*C,1,k,k]
  auto out = torch::conv2d(padded.reshape({1, b * c, padded.size(2), padded.size(3)}), w, torch::Tensor(), torch::IntArrayRef{1, 1}, torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1}, b * c);
  return out.view({b, c, x.size(2), x.size(3)});
}

namespace {
double cubic(double x) {  // Keys, a = -0.5 (MATLAB imresize, PIL)
  const double a = -0.5;
  x = std::abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

// Resampling weights along one axis: out[i] = sum_j m[i,j] * in[j].
torch::Tensor axis_matrix(int64_t in, int64_t out, ResizeMode mode) {
  const double ratio = double(in) / out;  // > 1 when downscaling
  std::vector<std::vector<std::pair<int64_t, double>>> rows(out);
  for (int64_t i = 0; i < out; ++i) {
    auto& row = rows[i];
    if (mode == ResizeMode::kNearest) {
      row.push_back({std::min<int64_t>(in - 1, int64_t(std::floor((i + 0.5) * ratio))), 1.0});
    } else if (mode == ResizeMode::kArea) {
      // Exact overlap of the output pixel's footprint with each input pixel.
      const double lo = i * ratio, hi = (i + 1) * ratio;
      for (int64_t j = int64_t(std::floor(lo)); j < int64_t(std::ceil(hi - 1e-12)); ++j) {
        const double ov = std::min(hi, double(j + 1)) - std::max(lo, double(j));
        if (ov > 0) row.push_back({std::clamp<int64_t>(j, 0, in - 1), ov});
      }
    } else {
      const double support = mode == ResizeMode::kBicubic ? 2.0 : 1.0;
      const double fscale = std::max(1.0, ratio);  // antialias: stretch the filter when shrinking
      const double center = (i + 0.5) * ratio;
      const int64_t j0 = int64_t(std::floor(center - support * fscale)), j1 = int64_t(std::ceil(center + support * fscale));
      for (int64_t j = j0; j <= j1; ++j) {
        const double t = (j + 0.5 - center) / fscale;
        const double v = mode == ResizeMode::kBicubic ? cubic(t) : std::max(0.0, 1.0 - std::abs(t));
        if (v != 0) row.push_back({std::clamp<int64_t>(j, 0, in - 1), v});
      }
    }
  }
  // Dense [out, in] matrix: applied as a matrix product, fast with OpenBLAS and on GPUs.
  auto m = torch::zeros({out, in}, torch::kFloat64);
  auto a = m.accessor<double, 2>();
  for (int64_t i = 0; i < out; ++i) {
    double s = 0;
    for (auto& [j, v] : rows[i]) s += v;
    for (auto& [j, v] : rows[i]) a[i][j] += v / s;
  }
  return m;
}
}  // namespace

torch::Tensor resize_images(const torch::Tensor& x, int64_t out_h, int64_t out_w, ResizeMode mode) {
  if (out_h < 1 || out_w < 1) throw ArgumentError("resize to " + std::to_string(out_w) + "x" + std::to_string(out_h));
  if (mode == ResizeMode::kNone) throw ArgumentError("resize_images: mode none");
  torch::Tensor y = x;
  const int64_t in_h = x.size(2), in_w = x.size(3);
  if (out_w != in_w) y = torch::matmul(y, axis_matrix(in_w, out_w, mode).to(x.device(), x.scalar_type()).t());
  if (out_h != in_h) y = torch::matmul(axis_matrix(in_h, out_h, mode).to(x.device(), x.scalar_type()), y);
  return y;
}

}  // namespace face2scene
