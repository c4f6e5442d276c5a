// The geometry contract's helpers and the face-restorer registry (see pipeline.hpp).
#include <algorithm>
#include <cmath>
#include <mutex>

#include "face2scene/core.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/ref_fr.hpp"

namespace face2scene {

// ---- geometry ---------------------------------------------------------------------------------
int64_t FaceGeometry::fadex_cut(double native, int restorer_scale, bool native_geometry) const {
  if (!native_geometry) return fadex_lq(restorer_scale);
  // At least 16: align_face's smallest square. A face of 8–15 px there (its box about 5–9 px) came
  // to FaDeX only when the photo's code was read from it, and then threw.
  return std::clamp<int64_t>(std::llround(native), 16, fadex_hq);
}

int FaceGeometry::restorer_scale(int output_scale) {
  if (output_scale == 4 || output_scale == 2) return 4;
  if (output_scale == 1) return 1;
  throw ArgumentError("scale must be 4, 2 or 1, not " + std::to_string(output_scale));
}

double FaceGeometry::native_side(const Similarity& photo_to_aligned, int64_t aligned_side) {
  return static_cast<double>(aligned_side) / photo_to_aligned.scale();
}

Similarity rescale_aligned(const Similarity& m, int64_t from_side, int64_t side) {
  // Aligned pixel p of the old square is (p + 0.5) * k - 0.5 in the new one.
  const double k = static_cast<double>(side) / static_cast<double>(from_side);
  return {m.a * k, m.b * k, (m.tx + 0.5) * k - 0.5, (m.ty + 0.5) * k - 0.5};
}

Similarity on_scaled_image(const Similarity& m, double s) {
  // Output pixel q is photo pixel q / s + c, c = 0.5 / s - 0.5 (pixel centres).
  const double c = 0.5 / s - 0.5;
  return {m.a / s, m.b / s, m.tx + m.a * c - m.b * c, m.ty + m.b * c + m.a * c};
}

// ---- registry ---------------------------------------------------------------------------------
namespace {

class RefFRRestorer final : public FaceRestorer {
 public:
  RefFRRestorer(const std::string& path, const FaceRestorerLoadOptions& o) : options_(o) {
    auto loaded = load_ref_fr(path, o.device);
    net_ = loaded.net;
    blind_ = loaded.blind;
    // On the CPU: float32, or bf16 where the CPU has native bf16 (oneDNN's bf16 convolutions);
    // LibTorch's CPU fp16 kernels are slow or missing, and emulated bf16 is slower than float32.
    dtype_ = o.device.is_cuda() ? o.dtype : (o.cpu_bf16 && cpu_native_bf16() ? torch::kBFloat16 : torch::kFloat32);
    net_->to(o.device, dtype_);
    net_->eval();
  }
  std::string arch() const override { return kRefFRArch; }
  std::string name() const override { return blind_ ? "ref-fr-blind" : "ref-fr"; }
  int64_t size() const override { return net_->options.size; }
  int64_t max_references() const override { return blind_ ? 0 : net_->options.max_refs; }
  torch::Tensor restore(const torch::Tensor& faces, const torch::Tensor& refs) const override {
    torch::NoGradGuard ng;
    const auto dtype = dtype_;
    auto x = faces.to(options_.device, dtype);
    RefFeatures r;
    if (!blind_ && refs.defined() && refs.size(0) > 0) {
      // The person's references, the same for every face of the batch: encoded once.
      auto one = refs.slice(0, 0, net_->options.max_refs).to(options_.device, dtype).unsqueeze(0);
      r = net_->encode_refs(one, 1).expand(x.size(0));
    }
    return net_->forward(x, r).to(torch::kCPU, torch::kFloat32).clamp_(0, 1);
  }

 private:
  FaceRestorerLoadOptions options_;
  mutable RefFR net_{nullptr};
  bool blind_ = false;
  torch::Dtype dtype_ = torch::kFloat32;
};

std::map<std::string, FaceRestorerFactory>& factories() {
  static std::map<std::string, FaceRestorerFactory> f = {
      {kRefFRArch, [](const std::string& path, const Metadata&, const FaceRestorerLoadOptions& o) {
         return std::unique_ptr<FaceRestorer>(new RefFRRestorer(path, o));
       }}};
  return f;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_face_restorer(const std::string& arch, FaceRestorerFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  factories()[arch] = std::move(factory);
}

std::vector<std::string> face_restorer_archs() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& kv : factories()) out.push_back(kv.first);
  return out;
}

std::unique_ptr<FaceRestorer> load_face_restorer(const std::string& path, const FaceRestorerLoadOptions& options) {
  if (!file_exists(path)) throw IoError(path + ": face model not found");
  const Metadata meta = read_safetensors_metadata(path);
  const auto it = meta.find("arch");
  const std::string arch = it == meta.end() ? "" : it->second;
  FaceRestorerFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto f = factories().find(arch);
    if (f != factories().end()) factory = f->second;
  }
  if (!factory) {
    std::string known;
    for (const auto& a : face_restorer_archs()) known += (known.empty() ? "" : ", ") + a;
    throw FormatError(path + ": no face restorer for arch \"" + arch + "\" (known: " + known + ")");
  }
  return factory(path, meta, options);
}

float face_code_weight(const FaceBox& box, float score) {
  const double area = std::max(0.f, box.width()) * std::max(0.f, box.height());
  return static_cast<float>(area / (1.0 + std::exp(-static_cast<double>(score))));
}

}  // namespace face2scene
