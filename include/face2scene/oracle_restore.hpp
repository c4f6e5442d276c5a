// Inference of the oracle core: read a degradation code from a (degraded face, clean/restored
// face) pair, say it in words, and restore a whole scene with it (or blind), tiled, on CPU or CUDA.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/degrade.hpp"
#include "face2scene/image.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/scene_restorer.hpp"
#include "face2scene/tiling.hpp"

namespace face2scene {

struct OracleModelPaths {
  std::string fadex, restorer, restorer_blind, base;
  // fadex.safetensors, scene_restorer.safetensors, scene_restorer_blind.safetensors in `dir`
  // (default: $F2S_MODELS, else ./weights, else <cache>/weights). Throws IoError naming what is
  // missing and how to get it. base: empty = the Real-ESRGAN weights of each restorer file's
  // backbone (general-x4v3 or x4plus) from the cache, checked when the file is loaded.
  static OracleModelPaths locate(const std::string& dir = "");
};

struct OracleOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // CUDA: kBFloat16 / kHalf for the restorer
  TileOptions tiles{};                   // tile = 0: whole image
};

class OracleRestorer {
 public:
  // `blind_model`: load the blind twin instead of the conditioned restorer (for the ablation).
  OracleRestorer(const OracleModelPaths& paths, const OracleOptions& options, bool blind_model = false);

  // Faces [B,3,h,w] in [0,1] (any device): LQ any size, HQ resized to FaDeX's input if needed.
  // Returns the code map [B,C,g,g] (float32, on the device).
  torch::Tensor code_map(const torch::Tensor& face_lq, const torch::Tensor& face_hq) const;
  // What FaDeX's head reads from each pair: blur, noise, JPEG quality, scale (in words with
  // DegradationSummary::describe()).
  std::vector<DegradationSummary> read_degradation(const torch::Tensor& face_lq, const torch::Tensor& face_hq) const;
  // Both from one FaDeX pass (the pipeline needs the code and the words for every face).
  std::pair<torch::Tensor, std::vector<DegradationSummary>> code_map_and_reading(const torch::Tensor& face_lq,
                                                                                 const torch::Tensor& face_hq) const;
  // 21 tokens from a code map, or the learned null tokens when `code_map` is undefined.
  torch::Tensor tokens(const torch::Tensor& code_map) const;
  // lq [1,3,H,W] in [0,1] -> restored [1,3,sH,sW] float32 on the CPU, clamped. scale 4 or 1.
  torch::Tensor restore(const torch::Tensor& lq, const torch::Tensor& tokens, int scale) const;
  Image restore(const Image& lq, const torch::Tensor& tokens, int scale) const;
  bool blind_model() const { return blind_; }
  RealEsrganModel backbone() const { return net_->options.backbone; }
  int64_t face_size() const;

 private:
  // FaDeX on a pair: batched on the device, the HQ face resized to FaDeX's input side.
  FaDeXOutput run_fadex(const torch::Tensor& face_lq, const torch::Tensor& face_hq) const;
  OracleOptions options_;
  mutable FaDeX fadex_{nullptr};
  mutable SceneRestorer net_{nullptr};
  mutable MapNet mapnet_{nullptr};
  bool blind_ = false;
};

}  // namespace face2scene
