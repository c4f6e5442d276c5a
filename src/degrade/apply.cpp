// The degradation pipeline: stage 1 (blur, resize, noise, JPEG), optional stage 2, then the final
// step (resize to the target, sinc, JPEG in either order), as Real-ESRGAN's second-order model.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "face2scene/degrade.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace {
int64_t scaled(int64_t n, double s) { return std::max<int64_t>(1, int64_t(std::floor(n * s + 1e-6))); }

// Per-item kernels padded to one odd size [N,k,k]; nullopt-like undefined tensor when all none.
torch::Tensor stack_kernels(const std::vector<BlurParams>& blurs) {
  bool any = false;
  int64_t k = 1;
  std::vector<torch::Tensor> ks;
  for (const auto& b : blurs) {
    ks.push_back(make_blur_kernel(b));
    any = any || b.type != KernelType::kNone;
    k = std::max(k, ks.back().size(0));
  }
  if (!any) return {};
  for (auto& t : ks) {
    const int64_t p = (k - t.size(0)) / 2;
    if (p > 0) t = torch::constant_pad_nd(t, {p, p, p, p}, 0.0);
  }
  return torch::stack(ks, 0);
}

torch::Tensor blur_step(const torch::Tensor& x, const std::vector<BlurParams>& blurs) {
  auto k = stack_kernels(blurs);
  return k.defined() ? blur_images(x, k) : x;
}

torch::Tensor resize_to(const torch::Tensor& x, int64_t h, int64_t w, ResizeMode mode) {
  if (x.size(2) == h && x.size(3) == w) return x;
  return resize_images(x, h, w, mode);
}

// Real-ESRGAN's generate_gaussian_noise_pt / generate_poisson_noise_pt, one generator per item so
// an item's noise does not depend on its batch. Poisson uses 256 levels (Real-ESRGAN counts the
// distinct values of each image, which is 256 for natural 8-bit images).
torch::Tensor noise_step(const torch::Tensor& x, const std::vector<NoiseParams>& noise, std::vector<torch::Generator>& gens) {
  bool any = false;
  for (auto& n : noise) any = any || (n.type != NoiseType::kNone && n.level > 0);
  if (!any) return x;
  std::vector<torch::Tensor> items = x.unbind(0);
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& n = noise[i];
    if (n.type == NoiseType::kNone || n.level <= 0) continue;
    auto img = items[i];
    torch::Tensor delta;
    if (n.type == NoiseType::kGaussian) {
      delta = torch::randn({n.gray ? 1 : c, h, w}, gens[i], img.options()) * (n.level / 255.0);
    } else {
      auto base = img;
      if (n.gray && c == 3) base = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0);
      base = base.clamp(0.0, 1.0).mul(255.0).round().div(255.0).detach();
      const double vals = 256.0;
      delta = (torch::poisson(base * vals, gens[i]) / vals - base) * n.level;
    }
    items[i] = (img + delta.expand({c, h, w})).clamp(0.0, 1.0);
  }
  return torch::stack(items, 0);
}

torch::Tensor jpeg_step(const torch::Tensor& x, const std::vector<int>& q, JpegMode mode) {
  return jpeg_images(x.clamp(0.0, 1.0), q, mode);
}

using Signature = std::tuple<int, float, bool, int, float, int, float, int, bool>;
Signature signature(const DegradationParams& p) {
  const bool two = p.order == 2;
  return {p.order,
          p.out_scale,
          p.keep_size,
          int(p.stage1.resize.mode),
          p.stage1.resize.scale,
          two ? int(p.stage2.resize.mode) : 0,
          two ? p.stage2.resize.scale : 1.f,
          int(p.final_step.resize_mode),
          p.final_step.jpeg_first};
}

// Items sharing a signature: every size change agrees, so they stay one tensor.
torch::Tensor run_group(torch::Tensor x, const std::vector<DegradationParams>& ps, JpegMode jpeg) {
  const auto& p0 = ps.front();
  const int64_t h0 = x.size(2), w0 = x.size(3);
  const int64_t fh = scaled(h0, 1.0 / p0.out_scale), fw = scaled(w0, 1.0 / p0.out_scale);  // target size
  std::vector<torch::Generator> gens;
  for (const auto& p : ps) gens.push_back(make_generator(p.seed, x.device()));
  auto collect = [&](auto get) {
    std::vector<std::decay_t<decltype(get(p0))>> v;
    for (const auto& p : ps) v.push_back(get(p));
    return v;
  };
  for (int s = 1; s <= p0.order; ++s) {
    auto stage = [s](const DegradationParams& p) -> const StageParams& { return s == 1 ? p.stage1 : p.stage2; };
    x = blur_step(x, collect([&](const DegradationParams& p) { return stage(p).blur; }));
    const auto& rs = stage(p0).resize;
    if (rs.mode != ResizeMode::kNone) {
      const int64_t bh = s == 1 ? h0 : fh, bw = s == 1 ? w0 : fw;  // stage 2 scales the target size
      x = resize_to(x, scaled(bh, rs.scale), scaled(bw, rs.scale), rs.mode);
    }
    x = noise_step(x, collect([&](const DegradationParams& p) { return stage(p).noise; }), gens);
    x = jpeg_step(x, collect([&](const DegradationParams& p) { return stage(p).jpeg_quality; }), jpeg);
  }
  auto resize_sinc = [&]() {
    x = resize_to(x, fh, fw, p0.final_step.resize_mode);
    x = blur_step(x, collect([](const DegradationParams& p) {
      BlurParams b;
      if (p.final_step.sinc_size > 0) {
        b.type = KernelType::kSinc;
        b.size = p.final_step.sinc_size;
        b.cutoff = p.final_step.sinc_cutoff;
      }
      return b;
    }));
  };
  const auto final_q = collect([](const DegradationParams& p) { return p.final_step.jpeg_quality; });
  if (p0.final_step.jpeg_first) {
    x = jpeg_step(x, final_q, jpeg);
    resize_sinc();
  } else {
    resize_sinc();
    x = jpeg_step(x, final_q, jpeg);
  }
  if (p0.keep_size) x = resize_to(x, h0, w0, ResizeMode::kBicubic);
  // As a saved 8-bit image (Real-ESRGAN rounds its LQ the same way).
  return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0);
}
}  // namespace

std::pair<int64_t, int64_t> degraded_size(const DegradationParams& p, int64_t h, int64_t w) {
  if (p.keep_size) return {h, w};
  return {scaled(h, 1.0 / p.out_scale), scaled(w, 1.0 / p.out_scale)};
}

torch::Tensor apply_degradation(const torch::Tensor& batch, const DegradationParams& params, const ApplyOptions& options) {
  const int64_t b = batch.dim() == 3 ? 1 : batch.size(0);
  return apply_degradation(batch, std::vector<DegradationParams>(size_t(b), params), options);
}

torch::Tensor apply_degradation(const torch::Tensor& batch, const std::vector<DegradationParams>& params,
                                const ApplyOptions& options) {
  const bool single = batch.dim() == 3;
  torch::Tensor x = single ? batch.unsqueeze(0) : batch;
  if (x.dim() != 4 || (x.size(1) != 1 && x.size(1) != 3)) {
    throw ArgumentError("apply_degradation: need [B,C,H,W] or [C,H,W] with C = 1 or 3");
  }
  if (x.size(2) < 1 || x.size(3) < 1 || x.size(0) < 1) throw ArgumentError("apply_degradation: empty image");
  if (int64_t(params.size()) != x.size(0)) {
    throw ArgumentError("apply_degradation: " + std::to_string(params.size()) + " params for " + std::to_string(x.size(0)) + " images");
  }
  if (!x.is_floating_point()) throw ArgumentError("apply_degradation: need a floating-point tensor in [0,1]");
  for (const auto& p : params) {
    p.validate();
    if (p.out_scale != params.front().out_scale || p.keep_size != params.front().keep_size) {
      throw ArgumentError("apply_degradation: items of one batch need the same out_scale and keep_size");
    }
  }
  std::map<Signature, std::vector<int64_t>> groups;
  for (size_t i = 0; i < params.size(); ++i) groups[signature(params[i])].push_back(int64_t(i));
  torch::Tensor out;
  if (groups.size() == 1) {
    out = run_group(x, params, options.jpeg);
  } else {
    const auto [oh, ow] = degraded_size(params.front(), x.size(2), x.size(3));
    out = torch::empty({x.size(0), x.size(1), oh, ow}, x.options());
    for (auto& [sig, idx] : groups) {
      std::vector<DegradationParams> sub;
      for (auto i : idx) sub.push_back(params[size_t(i)]);
      auto it = torch::tensor(idx, torch::kInt64).to(x.device());
      out.index_copy_(0, it, run_group(x.index_select(0, it), sub, options.jpeg));
    }
  }
  return single ? out.squeeze(0) : out;
}

}  // namespace face2scene
