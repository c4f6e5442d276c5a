// Inference of the oracle core (see oracle_restore.hpp).
#include "face2scene/oracle_restore.hpp"
#include "face2scene/image_metadata.hpp"

#include <cmath>
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
      p.restorer_gan = d + "/scene_restorer_gan.safetensors";
      p.restorer_blind_gan = d + "/scene_restorer_blind_gan.safetensors";
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
  const std::string& gan_file = blind_model ? paths.restorer_blind_gan : paths.restorer_gan;
  if (options.realism > 0 && gan_file.empty()) {
    throw IoError(file + ": realism > 0 needs the GAN-trained restorer beside it (scene_restorer*_gan.safetensors)");
  }
  auto loaded = load_restorer_realism(file, gan_file, options.realism, paths.base, options.device);
  if (loaded.blind != blind_model) {
    throw FormatError(file + (blind_model ? ": is not the blind model" : ": is the blind model, not the conditioned one"));
  }
  net_ = loaded.net;
  mapnet_ = loaded.mapnet;
  net_->to(options.device, options.dtype);
  if (options.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
}

int64_t OracleRestorer::face_size() const { return fadex_->options.in_size; }
bool OracleRestorer::fadex_native_geometry() const { return fadex_->options.lq_geometry == "native"; }

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

namespace {
std::vector<DegradationSummary> summaries(const FaDeX& fadex, const torch::Tensor& params) {
  if (fadex->options.param_dim != kDegradationTargetSize) {
    throw FormatError("FaDeX regresses " + std::to_string(fadex->options.param_dim) + " values, this build reads " +
                      std::to_string(kDegradationTargetSize));
  }
  auto v = fadex->denormalize_params(params).to(torch::kCPU, torch::kFloat32).contiguous();
  std::vector<DegradationSummary> out;
  for (int64_t i = 0; i < v.size(0); ++i) {
    out.push_back(DegradationSummary::from_vector(v[i].data_ptr<float>() + DegradationParams::kVectorSize));
  }
  return out;
}
}  // namespace

std::vector<DegradationSummary> OracleRestorer::read_degradation(const torch::Tensor& lq, const torch::Tensor& hq) const {
  torch::NoGradGuard ng;
  return summaries(fadex_, run_fadex(lq, hq).params);
}

std::pair<torch::Tensor, std::vector<DegradationSummary>> OracleRestorer::code_map_and_reading(
    const torch::Tensor& lq, const torch::Tensor& hq) const {
  torch::NoGradGuard ng;
  auto out = run_fadex(lq, hq);
  return {out.code_map, summaries(fadex_, out.params)};
}

torch::Tensor OracleRestorer::tokens(const torch::Tensor& code_map) const {
  torch::NoGradGuard ng;
  auto t = code_map.defined() ? mapnet_->forward(code_map.to(options_.device, torch::kFloat32)) : mapnet_->null_tokens(1);
  return t.to(options_.dtype);
}

AdapterStats OracleRestorer::image_stats(const torch::Tensor& x, const torch::Tensor& tokens, int scale) const {
  const int64_t h = x.size(2), w = x.size(3);
  if (h * w <= options_.stats_max_pixels) return net_->adapter_stats(x, tokens, scale);
  // Area-preserving downscale (antialiased), in float32; ×1 keeps whole 4x4 blocks.
  const double k = std::sqrt(double(options_.stats_max_pixels) / double(h * w));
  const int64_t q = scale == 1 ? 4 : 1;
  const int64_t sh = std::max<int64_t>(q, int64_t(std::lround(h * k / q)) * q);
  const int64_t sw = std::max<int64_t>(q, int64_t(std::lround(w * k / q)) * q);
  auto small = F::interpolate(x.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{sh, sw})
                                                        .mode(torch::kBilinear)
                                                        .align_corners(false)
                                                        .antialias(true))
                   .clamp_(0, 1)
                   .to(x.scalar_type());
  return net_->adapter_stats(small, tokens, scale);
}

torch::Tensor OracleRestorer::restore(const torch::Tensor& lq, const torch::Tensor& tokens, int scale,
                                      const std::function<void(int, int)>& on_tile) const {
  return restore_on_device(lq, tokens, scale, on_tile).cpu();
}

torch::Tensor OracleRestorer::restore_on_device(const torch::Tensor& lq_in, const torch::Tensor& tokens_in, int scale,
                                                const std::function<void(int, int)>& on_tile) const {
  torch::NoGradGuard ng;
  if (scale != 4 && scale != 1) throw ArgumentError("scene restorer: scale must be 4 or 1");
  auto x = (lq_in.dim() == 3 ? lq_in.unsqueeze(0) : lq_in).to(options_.device, options_.dtype);
  auto tokens = tokens_in.to(options_.device, options_.dtype);
  if (tokens.size(0) != x.size(0)) tokens = tokens.expand({x.size(0), -1, -1});
  const int64_t h = x.size(2), w = x.size(3);
  // ×1 works on 4x4 pixel blocks: pad to a multiple of 4, tile on the unshuffled grid so every
  // tile covers whole blocks, then crop.
  if (scale == 1) {
    const int64_t ph = (4 - h % 4) % 4, pw = (4 - w % 4) % 4;
    if (ph || pw) x = F::pad(x, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));
  }
  // At ×1 the network works on the grid of 4x4 blocks, so tile, overlap and margin count blocks
  // there (network positions, as input pixels do at ×4). Scaling them down by 4 instead would
  // leave a 3-block margin against a receptive field of ~34 positions: tiles then differed from
  // the untiled result by up to 43/255.
  const TileOptions& tiles = options_.tiles;
  const int64_t gh = scale == 1 ? x.size(2) / 4 : h, gw = scale == 1 ? x.size(3) / 4 : w;
  const bool tiled = tiles.tile > 0 && (tiles.tile < gh || tiles.tile < gw);
  // Untiled and small enough: GroupNorm over the image itself, exactly as trained. Otherwise
  // every tile normalises with the statistics of the whole image.
  AdapterStats stats;
  const bool fixed = tiled || h * w > options_.stats_max_pixels;
  if (fixed) stats = image_stats(x, tokens, scale);
  const AdapterStats* use = fixed ? &stats : nullptr;
  if (scale == 4) {
    auto fn = [&](const torch::Tensor& t) { return net_->forward(t, tokens, 4, use).to(torch::kFloat32); };
    return run_tiled(x, 4, tiles, fn, on_tile).clamp_(0, 1);
  }
  auto fn = [&](const torch::Tensor& t) {
    return torch::pixel_unshuffle(net_->forward(torch::pixel_shuffle(t, 4), tokens, 1, use), 4).to(torch::kFloat32);
  };
  auto y = torch::pixel_shuffle(run_tiled(torch::pixel_unshuffle(x, 4), 1, tiles, fn, on_tile), 4);
  return y.slice(2, 0, h).slice(3, 0, w).clamp_(0, 1);
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
