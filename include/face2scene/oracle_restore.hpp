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
  // The GAN fine-tunes of the two restorers (scene_restorer_gan.safetensors,
  // scene_restorer_blind_gan.safetensors beside them; needed only for realism > 0).
  std::string restorer_gan, restorer_blind_gan;
  // fadex.safetensors, scene_restorer.safetensors, scene_restorer_blind.safetensors in `dir`
  // (default: $F2S_MODELS, else ./weights, else <cache>/weights). Throws IoError naming what is
  // missing and how to get it. base: empty = the Real-ESRGAN weights of each restorer file's
  // backbone (general-x4v3 or x4plus) from the cache, checked when the file is loaded.
  static OracleModelPaths locate(const std::string& dir = "");
};

struct OracleOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // CUDA: kBFloat16 / kHalf for the restorer
  // tile = 0: whole image. Sizes count network positions: input pixels at ×4, 4x4 pixel blocks at
  // ×1 (where the network runs on the block grid: --tile 256 means 1024-pixel tiles there).
  TileOptions tiles{};
  // The conditioning adapters normalise every tile with GroupNorm statistics of the whole image,
  // so the result does not depend on the tile size or device. They come from one extra pass over
  // the image up to the last adapter (tiled runs only; an untiled run takes them on the way), or
  // over a copy downscaled to this many pixels when the image is larger (then for untiled runs
  // too, so that tiled and untiled still agree).
  int64_t stats_max_pixels = int64_t(1) << 20;
  // Fidelity ↔ invented detail (ESRGAN's network interpolation): the restorer's weights are
  // (1 − realism)·L1-trained + realism·GAN-trained. 0 = the L1 restorer exactly (the default);
  // > 0 needs the GAN files (OracleModelPaths::restorer_gan).
  double realism = 0;
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
  // lq [B,3,H,W] in [0,1] -> restored [B,3,sH,sW] float32 on the CPU, clamped. scale 4 or 1.
  // Tiled or not, the same result up to float rounding (within 50 dB PSNR / 2/255 at the seams).
  // `on_tile(done, total)` reports the tiles as they finish (progress).
  torch::Tensor restore(const torch::Tensor& lq, const torch::Tensor& tokens, int scale,
                        const std::function<void(int, int)>& on_tile = nullptr) const;
  // The same, left on the restorer's device (float32): the pipeline pastes the faces there and
  // copies only the quantised photo back (on the GPU the float copy to the host and a CPU paste at
  // the output size cost more than the restorer itself: docs/pipeline.md, "GPU speed").
  torch::Tensor restore_on_device(const torch::Tensor& lq, const torch::Tensor& tokens, int scale,
                                  const std::function<void(int, int)>& on_tile = nullptr) const;
  Image restore(const Image& lq, const torch::Tensor& tokens, int scale) const;
  bool blind_model() const { return blind_; }
  RealEsrganModel backbone() const { return net_->options.backbone; }
  int64_t face_size() const;
  // FaDeX reads faces cut at their own side in the photo (FaDeXOptions::lq_geometry "native").
  bool fadex_native_geometry() const;

 private:
  // FaDeX on a pair: batched on the device, the HQ face resized to FaDeX's input side.
  FaDeXOutput run_fadex(const torch::Tensor& face_lq, const torch::Tensor& face_hq) const;
  // The adapters' statistics for x (on the device, sides multiples of 4 for scale 1): over x, or
  // over a copy downscaled to stats_max_pixels.
  AdapterStats image_stats(const torch::Tensor& x, const torch::Tensor& tokens, int scale) const;
  OracleOptions options_;
  mutable FaDeX fadex_{nullptr};
  mutable SceneRestorer net_{nullptr};
  mutable MapNet mapnet_{nullptr};
  bool blind_ = false;
};

}  // namespace face2scene
