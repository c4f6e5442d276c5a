// LPIPS v0.1 with the SqueezeNet backbone (Zhang et al. 2018, the "lpips" package, net='squeeze').
#include <filesystem>

#include "face2scene/metrics.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/squeezenet.hpp"
#include "face2scene/tensor.hpp"
#include "metrics/torch_legacy.hpp"

namespace face2scene::metrics {
namespace fs = std::filesystem;

namespace {
constexpr int kTaps = 7;
const int64_t kTapChannels[kTaps] = {64, 128, 256, 384, 384, 512, 512};
const char* kExportedFile = "lpips_squeeze.safetensors";
}  // namespace

struct Lpips::Impl {
  SqueezeNetFeatures net;
  std::vector<torch::Tensor> lin;  // [1,C,1,1] each
  torch::Device device = torch::kCPU;
  torch::Tensor shift, scale;      // LPIPS ScalingLayer, [1,3,1,1]
};

Lpips::Lpips(const std::string& weights_dir, const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.device = device;
  TensorMap backbone, heads;
  const fs::path dir(weights_dir);
  const fs::path exported = dir / kExportedFile;
  std::string source;
  if (fs::exists(exported)) {
    source = exported.string();
    SafeTensors st = load_safetensors(source);
    check_arch(st, "lpips-squeeze-v0.1", source);
    for (auto& [k, v] : st.tensors) {
      if (k.rfind("features.", 0) == 0) backbone[k] = v; else heads[k] = v;
    }
  } else {
    const fs::path pth = dir / "lpips_v0.1" / "squeeze.pth";
    const fs::path ncnn_dir = dir / "squeezenet1_1_torchvision_ncnn_fp16";
    const fs::path param = ncnn_dir / "squeezenet_v1.1.ncnn.param", bin = ncnn_dir / "squeezenet_v1.1.ncnn.bin";
    for (const auto& p : {pth, param, bin}) {
      if (!fs::exists(p)) {
        throw IoError("lpips: " + p.string() + " not found; --lpips-weights must name a folder with lpips_v0.1/ and " +
                      "squeezenet1_1_torchvision_ncnn_fp16/ (e.g. ../shared/data/weights) or " + kExportedFile);
      }
    }
    source = pth.string() + " + " + param.string();
    heads = detail::load_legacy_torch_state_dict(pth.string());
    backbone = squeezenet1_1_from_ncnn(param.string(), bin.string());
  }
  load_state_dict_strict(*m.net, backbone, source);
  for (int i = 0; i < kTaps; ++i) {
    const std::string key = "lin" + std::to_string(i) + ".model.1.weight";
    auto it = heads.find(key);
    if (it == heads.end()) throw FormatError(source + ": LPIPS head '" + key + "' missing");
    if (it->second.sizes() != torch::IntArrayRef({1, kTapChannels[i], 1, 1})) {
      throw FormatError(source + ": '" + key + "' has shape " + c10::str(it->second.sizes()) + ", expected [1, " +
                        std::to_string(kTapChannels[i]) + ", 1, 1]");
    }
    m.lin.push_back(it->second.to(device, torch::kFloat32));
  }
  if (heads.size() != static_cast<size_t>(kTaps)) throw FormatError(source + ": unexpected extra LPIPS head tensors");
  m.net->to(device);
  m.net->eval();
  for (auto& p : m.net->parameters()) p.set_requires_grad(false);
  m.shift = torch::tensor({-.030f, -.088f, -.188f}, torch::kFloat32).view({1, 3, 1, 1}).to(device);
  m.scale = torch::tensor({.458f, .448f, .450f}, torch::kFloat32).view({1, 3, 1, 1}).to(device);
}

Lpips::~Lpips() = default;
Lpips::Lpips(Lpips&&) noexcept = default;
Lpips& Lpips::operator=(Lpips&&) noexcept = default;

namespace {
std::vector<torch::Tensor> taps_of(Lpips::Impl& m, const torch::Tensor& x) {
  // normalize=True in lpips: [0,1] -> [-1,1], then the ScalingLayer.
  auto in = (x.to(m.device, torch::kFloat32) * 2 - 1 - m.shift) / m.scale;
  return m.net->taps(in);
}
}  // namespace

std::vector<torch::Tensor> Lpips::features(const torch::Tensor& x) const {
  torch::NoGradGuard ng;
  return taps_of(*impl_, x);
}

torch::Tensor Lpips::forward(const torch::Tensor& a, const torch::Tensor& b) const {
  torch::NoGradGuard ng;
  return distance(a, b);
}

torch::Tensor Lpips::distance(const torch::Tensor& a, const torch::Tensor& b) const {
  if (a.dim() != 4 || a.sizes() != b.sizes() || a.size(1) != 3) {
    throw ArgumentError("lpips: expected two [N,3,H,W] tensors of the same shape, got " + c10::str(a.sizes()) +
                        " and " + c10::str(b.sizes()));
  }
  const int64_t n = a.size(0);
  // One pass over both images: the batch halves are a and b.
  const auto f = taps_of(*impl_, torch::cat({a, b}, 0));
  torch::Tensor total = torch::zeros({n}, torch::TensorOptions().device(impl_->device));
  for (int i = 0; i < kTaps; ++i) {
    // normalize_tensor: x / (||x||_channels + 1e-10)
    auto unit = f[i] / (f[i].pow(2).sum(1, true).sqrt() + 1e-10);
    auto d = (unit.narrow(0, 0, n) - unit.narrow(0, n, n)).pow(2);
    total = total + (d * impl_->lin[i]).sum(1).mean({1, 2});
  }
  return total;
}

torch::Tensor Lpips::masked(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) const {
  torch::NoGradGuard ng;
  if (a.dim() != 4 || a.sizes() != b.sizes() || a.size(1) != 3)
    throw ArgumentError("lpips: expected two [N,3,H,W] tensors of the same shape, got " + c10::str(a.sizes()) + " and " +
                        c10::str(b.sizes()));
  if (mask.dim() != 4 || mask.size(1) != 1 || mask.size(2) != a.size(2) || mask.size(3) != a.size(3) ||
      (mask.size(0) != 1 && mask.size(0) != a.size(0)))
    throw ArgumentError("lpips: the mask must be [N or 1,1,H,W] of the images' size, got " + c10::str(mask.sizes()));
  const int64_t n = a.size(0);
  const auto f = taps_of(*impl_, torch::cat({a, b}, 0));
  const auto m = mask.to(impl_->device, torch::kFloat32).expand({n, 1, a.size(2), a.size(3)});
  torch::Tensor total = torch::zeros({n}, torch::TensorOptions().device(impl_->device));
  for (int i = 0; i < kTaps; ++i) {
    auto unit = f[i] / (f[i].pow(2).sum(1, true).sqrt() + 1e-10);
    auto d = ((unit.narrow(0, 0, n) - unit.narrow(0, n, n)).pow(2) * impl_->lin[i]).sum(1);  // [N,h,w]
    // Coverage of each tap cell by the mask: adaptive average pooling = area resize.
    auto w = torch::adaptive_avg_pool2d(m, {d.size(1), d.size(2)}).squeeze(1);
    total = total + (d * w).sum({1, 2}) / w.sum({1, 2});  // 0/0 = NaN for an empty region
  }
  return total;
}

double Lpips::operator()(const Image& a, const Image& b) const {
  if (a.width != b.width || a.height != b.height) {
    throw ArgumentError("lpips: sizes differ: " + std::to_string(a.width) + "x" + std::to_string(a.height) + " vs " +
                        std::to_string(b.width) + "x" + std::to_string(b.height));
  }
  if (a.width < 16 || a.height < 16) throw ArgumentError("lpips: images must be at least 16x16");
  auto ta = image_to_tensor(a, impl_->device, torch::kFloat32, true).unsqueeze(0);
  auto tb = image_to_tensor(b, impl_->device, torch::kFloat32, true).unsqueeze(0);
  return forward(ta, tb).item<double>();
}

void Lpips::export_safetensors(const std::string& path) const {
  TensorMap t;
  for (const auto& [k, v] : state_dict(*impl_->net)) t[k] = v.to(torch::kCPU, torch::kFloat32).contiguous();
  for (int i = 0; i < kTaps; ++i) t["lin" + std::to_string(i) + ".model.1.weight"] = impl_->lin[i].cpu().contiguous();
  save_safetensors(path, t, {{"arch", "lpips-squeeze-v0.1"}, {"version", "1"},
                             {"source", "torchvision squeezenet1_1 (ncnn fp16 export) + LPIPS v0.1 squeeze.pth"}});
}

}  // namespace face2scene::metrics
