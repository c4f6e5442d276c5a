// Real-ESRGAN inference on images: tiles, dtype/device, grey, alpha, bit depth and --outscale.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {

Upscaler::Upscaler(const UpscaleOptions& options, const std::string& weights_path) : options_(options) {
  if (!(options.outscale > 0.0) || options.outscale > 16.0) {
    throw ArgumentError("--outscale must be in (0, 16], got " + std::to_string(options.outscale));
  }
  if (options.device.is_cpu() && options.dtype != torch::kFloat32) {
    throw ArgumentError("Real-ESRGAN on the CPU runs in float32 only");
  }
  const std::string path = weights_path.empty() ? realesrgan_weights_path(options.model) : weights_path;
  const auto t0 = std::chrono::steady_clock::now();
  // Creating the CUDA context and cuDNN's handle takes a few hundred ms: do both (a tiny convolution
  // in the compute dtype and layout) while the weights are read and parsed.
  std::future<void> cuda_ready;
  if (options.device.is_cuda()) {
    const auto opts = torch::TensorOptions().device(options.device).dtype(options.dtype);
    cuda_ready = std::async(std::launch::async, [opts]() {
      torch::NoGradGuard no_grad;
      const auto x = torch::zeros({1, 3, 16, 16}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
      const auto w = torch::zeros({8, 3, 3, 3}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
      torch::conv2d(x, w, {}, 1, 1).sum().item<float>();
    });
  }
  net_ = load_realesrgan(options.model, path);
  const auto t1 = std::chrono::steady_clock::now();
  if (cuda_ready.valid()) cuda_ready.get();
  const auto t2 = std::chrono::steady_clock::now();
  if (options.device.is_cuda()) {
    auto& ctx = at::globalContext();
    ctx.setBenchmarkCuDNN(options.cudnn_benchmark);
    // "fp32" means fp32: TF32 would round the inputs of every convolution to 10 mantissa bits.
    if (options.dtype == torch::kFloat32) ctx.setAllowTF32CuDNN(false);
  }
  net_.ptr()->to(options.device, options.dtype);
  net_.ptr()->eval();
  // Channels-last (NHWC) lets oneDNN / cuDNN skip a layout reorder around every convolution:
  // measured 1.34x (x4plus) and 1.5x (general-x4v3) on the 2-core CPU.
  for (auto& p : net_.ptr()->parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  char buf[160];
  std::snprintf(buf, sizeof buf, "upscaler ready: weights %.3f s, device waited %.3f s, to device %.3f s", secs(t0, t1), secs(t1, t2),
                secs(t2, std::chrono::steady_clock::now()));
  log_debug(buf);
}

torch::Tensor Upscaler::upscale_x4(const torch::Tensor& image) const { return upscale_x4_on_device(image).to(torch::kCPU); }

torch::Tensor Upscaler::upscale_x4_on_device(const torch::Tensor& image) const {
  torch::NoGradGuard no_grad;
  auto x = image.dim() == 3 ? image.unsqueeze(0) : image;
  if (x.dim() != 4 || x.size(1) != 3) throw ArgumentError("Upscaler: expected a [1,3,H,W] tensor");
  const auto device = options_.device;
  const auto dtype = options_.dtype;
  auto fn = [&](const torch::Tensor& tile) {
    return net_.forward(tile.to(device, dtype).contiguous(torch::MemoryFormat::ChannelsLast)).to(torch::kFloat32);
  };
  namespace F = torch::nn::functional;
  const int64_t p = options_.pre_pad;
  if (p > 0) {
    // Reflect needs more pixels than the pad; tiny images fall back to replicate.
    if (x.size(2) > p && x.size(3) > p) {
      x = F::pad(x, F::PadFuncOptions({p, p, p, p}).mode(torch::kReflect));
    } else {
      x = F::pad(x, F::PadFuncOptions({p, p, p, p}).mode(torch::kReplicate));
    }
  }
  auto y = run_tiled(x, 4, options_.tiles, fn);
  if (p > 0) y = y.slice(2, 4 * p, y.size(2) - 4 * p).slice(3, 4 * p, y.size(3) - 4 * p);
  return y.clamp_(0.0, 1.0).contiguous();
}

namespace {
torch::Tensor resample(const torch::Tensor& x, int64_t h, int64_t w) {
  namespace F = torch::nn::functional;
  if (x.size(2) == h && x.size(3) == w) return x;
  const bool down = h < x.size(2) || w < x.size(3);
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{h, w})
                               .mode(torch::kBicubic)
                               .align_corners(false)
                               .antialias(down))
      .clamp_(0.0, 1.0);
}
}  // namespace

Image Upscaler::upscale(const Image& image) const {
  if (image.empty()) throw ArgumentError("Upscaler: empty image");
  // -v: per-image stage times; the network's share is measured by waiting for the device there.
  const bool timing = log_level() == LogLevel::kDebug;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto rgb = image_to_tensor(image, torch::kCPU, torch::kFloat32, /*rgb=*/true).unsqueeze(0);
  const auto t1 = clock::now();
  // Stays on the device through resampling and quantisation (tensor_to_image copies 8-bit back).
  auto y = upscale_x4_on_device(rgb);
  if (timing) y.flatten()[0].item<float>();
  const auto t2 = clock::now();
  const int64_t oh = std::max<int64_t>(1, std::llround(image.height * options_.outscale));
  const int64_t ow = std::max<int64_t>(1, std::llround(image.width * options_.outscale));
  y = resample(y, oh, ow);
  if (image.channels == 1) {
    // The network is colour-only; grey in gives (almost) grey out, folded back with BT.601.
    y = (0.299 * y.select(1, 0) + 0.587 * y.select(1, 1) + 0.114 * y.select(1, 2)).unsqueeze(1);
  }
  Image out = tensor_to_image(y, image.bit_depth);
  if (timing) {
    auto ms = [](clock::time_point a, clock::time_point b) { return 1e3 * std::chrono::duration<double>(b - a).count(); };
    char buf[200];
    std::snprintf(buf, sizeof buf, "upscale %dx%d: to tensor %.1f ms, network %.1f ms, resample+quantise+copy %.1f ms",
                  image.width, image.height, ms(t0, t1), ms(t1, t2), ms(t2, clock::now()));
    log_debug(buf);
  }
  if (image.has_alpha()) {
    auto a = alpha_to_tensor(image, torch::kCPU).to(torch::kFloat32);  // [1,H,W] in [0,1]
    torch::Tensor up;
    if (a.min().item<float>() == a.max().item<float>()) {
      up = torch::full({1, oh, ow}, a.min().item<float>());  // uniform alpha: nothing to enlarge
    } else {
      // As Real-ESRGAN does: the alpha plane goes through the same network as grey RGB.
      auto a3 = a.unsqueeze(0).expand({1, 3, a.size(1), a.size(2)}).contiguous();
      up = resample(upscale_x4(a3), oh, ow).mean(1);
    }
    set_alpha_from_tensor(out, up);
  }
  return out;
}

}  // namespace face2scene

namespace face2scene {

Agreement compare_outputs(const torch::Tensor& a_in, const torch::Tensor& b_in, double threshold, int halo,
                          int border) {
  auto a = (a_in.dim() == 3 ? a_in.unsqueeze(0) : a_in).to(torch::kCPU, torch::kFloat64);
  auto b = (b_in.dim() == 3 ? b_in.unsqueeze(0) : b_in).to(torch::kCPU, torch::kFloat64);
  if (a.sizes() != b.sizes()) throw ArgumentError("compare_outputs: images differ in size");
  if (border > 0) {
    a = a.slice(2, border, a.size(2) - border).slice(3, border, a.size(3) - border);
    b = b.slice(2, border, b.size(2) - border).slice(3, border, b.size(3) - border);
  }
  auto sq = (a - b).pow(2);
  auto bad = std::get<0>((a - b).abs().max(1, true)) > threshold;  // [1,1,H,W]
  auto excl = bad.to(torch::kFloat32);
  if (halo > 0) {
    excl = torch::max_pool2d(excl, {2 * halo + 1, 2 * halo + 1}, {1, 1}, {halo, halo});
  }
  auto keep = (excl < 0.5).to(torch::kFloat64);
  auto psnr = [](double mse) { return mse <= 0 ? 99.0 : 10.0 * std::log10(1.0 / mse); };
  Agreement r;
  r.pixels = a.size(2) * a.size(3);
  r.outliers = bad.sum().item<int64_t>();
  r.excluded = r.pixels - keep.sum().item<int64_t>();
  r.psnr_all = psnr(sq.mean().item<double>());
  const double kept = keep.sum().item<double>() * a.size(1);
  r.psnr_sane = kept > 0 ? psnr((sq * keep).sum().item<double>() / kept) : 0.0;
  return r;
}

}  // namespace face2scene
