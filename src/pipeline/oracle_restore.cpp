// Inference of the oracle core (see oracle_restore.hpp).
#include "face2scene/oracle_restore.hpp"
#include "face2scene/image_metadata.hpp"

#include <cstdlib>
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

OracleModelPaths OracleModelPaths::locate(const std::string& dir_in) {
  std::vector<std::string> dirs;
  if (!dir_in.empty()) {
    dirs.push_back(dir_in);
  } else {
    if (const char* env = std::getenv("F2S_MODELS")) dirs.push_back(env);
    dirs.push_back("weights");
    dirs.push_back(cache_dir() + "/weights");
  }
  OracleModelPaths p;
  for (const auto& d : dirs) {
    if (file_exists(d + "/fadex.safetensors") && file_exists(d + "/scene_restorer.safetensors")) {
      p.fadex = d + "/fadex.safetensors";
      p.restorer = d + "/scene_restorer.safetensors";
      p.restorer_blind = d + "/scene_restorer_blind.safetensors";
      break;
    }
  }
  if (p.fadex.empty()) {
    std::string tried;
    for (const auto& d : dirs) tried += (tried.empty() ? "" : ", ") + d;
    throw IoError("oracle models (fadex.safetensors, scene_restorer.safetensors) not found in " + tried +
                  "; pass --models DIR (the repository's weights/ folder)");
  }
  return p;
}

OracleRestorer::OracleRestorer(const OracleModelPaths& paths, const OracleOptions& options, bool blind_model)
    : options_(options), blind_(blind_model) {
  if (options.device.is_cpu() && options.dtype != torch::kFloat32) {
    throw ArgumentError("the scene restorer runs in float32 on the CPU");
  }
  fadex_ = load_fadex(paths.fadex, options.device);
  const std::string& file = blind_model ? paths.restorer_blind : paths.restorer;
  if (!file_exists(file)) throw IoError(file + ": not found");
  auto loaded = load_restorer(file, paths.base, options.device);
  if (loaded.blind != blind_model) {
    throw FormatError(file + (blind_model ? ": is not the blind model" : ": is the blind model, not the conditioned one"));
  }
  net_ = loaded.net;
  mapnet_ = loaded.mapnet;
  net_->to(options.device, options.dtype);
  if (options.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
}

int64_t OracleRestorer::face_size() const { return fadex_->options.in_size; }

FaDeXOutput OracleRestorer::run_fadex(const torch::Tensor& lq_in, const torch::Tensor& hq_in) const {
  torch::NoGradGuard ng;
  auto lq = (lq_in.dim() == 3 ? lq_in.unsqueeze(0) : lq_in).to(options_.device, torch::kFloat32);
  auto hq = (hq_in.dim() == 3 ? hq_in.unsqueeze(0) : hq_in).to(options_.device, torch::kFloat32);
  const int64_t s = face_size();
  if (hq.size(2) != s || hq.size(3) != s) {
    hq = F::interpolate(hq, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{s, s})
                                .mode(torch::kBicubic)
                                .align_corners(false)
                                .antialias(hq.size(2) > s))
             .clamp(0, 1);
  }
  return fadex_->forward(lq, hq);
}

torch::Tensor OracleRestorer::code_map(const torch::Tensor& lq, const torch::Tensor& hq) const {
  return run_fadex(lq, hq).code_map;
}

std::vector<DegradationSummary> OracleRestorer::read_degradation(const torch::Tensor& lq, const torch::Tensor& hq) const {
  torch::NoGradGuard ng;
  if (fadex_->options.param_dim != kDegradationTargetSize) {
    throw FormatError("FaDeX regresses " + std::to_string(fadex_->options.param_dim) + " values, this build reads " +
                      std::to_string(kDegradationTargetSize));
  }
  auto v = fadex_->denormalize_params(run_fadex(lq, hq).params).to(torch::kCPU, torch::kFloat32).contiguous();
  std::vector<DegradationSummary> out;
  for (int64_t i = 0; i < v.size(0); ++i) {
    out.push_back(DegradationSummary::from_vector(v[i].data_ptr<float>() + DegradationParams::kVectorSize));
  }
  return out;
}

torch::Tensor OracleRestorer::tokens(const torch::Tensor& code_map) const {
  torch::NoGradGuard ng;
  auto t = code_map.defined() ? mapnet_->forward(code_map.to(options_.device, torch::kFloat32)) : mapnet_->null_tokens(1);
  return t.to(options_.dtype);
}

torch::Tensor OracleRestorer::restore(const torch::Tensor& lq_in, const torch::Tensor& tokens_in, int scale) const {
  torch::NoGradGuard ng;
  auto x = (lq_in.dim() == 3 ? lq_in.unsqueeze(0) : lq_in).to(options_.device, options_.dtype);
  auto tokens = tokens_in.to(options_.device, options_.dtype);
  if (tokens.size(0) != x.size(0)) tokens = tokens.expand({x.size(0), -1, -1});
  if (scale == 4) {
    auto fn = [&](const torch::Tensor& t) { return net_->forward(t, tokens, 4).to(torch::kFloat32); };
    return run_tiled(x, 4, options_.tiles, fn).clamp_(0, 1).cpu();
  }
  if (scale != 1) throw ArgumentError("scene restorer: scale must be 4 or 1");
  // ×1 works on 4x4 pixel blocks: pad to a multiple of 4, tile on the unshuffled grid so every
  // tile covers whole blocks, then crop.
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t ph = (4 - h % 4) % 4, pw = (4 - w % 4) % 4;
  if (ph || pw) x = F::pad(x, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));
  auto u = torch::pixel_unshuffle(x, 4);
  auto fn = [&](const torch::Tensor& t) {
    return torch::pixel_unshuffle(net_->forward(torch::pixel_shuffle(t, 4), tokens, 1), 4).to(torch::kFloat32);
  };
  TileOptions tiles = options_.tiles;
  if (tiles.tile > 0) {
    tiles.tile = std::max(tiles.tile / 4, 4 * tiles.overlap / 4 + 1);
    tiles.overlap = std::max(tiles.overlap / 4, 3);
    tiles.margin = std::min(tiles.margin / 4, (tiles.overlap - 1) / 2);
  }
  auto y = torch::pixel_shuffle(run_tiled(u, 1, tiles, fn), 4);
  return y.slice(2, 0, h).slice(3, 0, w).clamp_(0, 1).cpu();
}

Image OracleRestorer::restore(const Image& lq, const torch::Tensor& tokens, int scale) const {
  auto x = image_to_tensor(lq, torch::kCPU, torch::kFloat32, /*rgb=*/true).unsqueeze(0);
  auto y = restore(x, tokens, scale);
  if (lq.channels == 1) y = (0.299 * y.select(1, 0) + 0.587 * y.select(1, 1) + 0.114 * y.select(1, 2)).unsqueeze(1);
  Image out = tensor_to_image(y, lq.bit_depth);
  carry_alpha(lq, out);  // the network sees colour only; alpha is resized on its own
  return out;
}

}  // namespace face2scene
