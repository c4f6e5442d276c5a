// The degradation-conditioned scene restorer: Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3)
// kept frozen as the pretrained prior, plus what face2scene trains and ships:
//   - LoRA (rank r) on every body convolution after the first, each rank component gated by the
//     tokens (gate = 1 + Linear(mean token)), so the code can steer the whole correction,
//   - a conditioning adapter after every k-th body convolution: cross-attention of the feature
//     map over MapNet's 21 tokens, then a FiLM scale/shift from their mean,
//   - a pixel-unshuffle stem for ×1 restoration (as Real-ESRGAN's ×1/×2 models do).
// Adapters and LoRA "up" layers start at zero, so an untrained restorer is exactly the base model.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "face2scene/oracle.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/safetensors.hpp"

namespace face2scene {

struct SceneRestorerOptions {
  int num_feat = 64;        // base model width (general-x4v3: 64)
  int num_conv = 32;        // base model body convolutions (general-x4v3: 32)
  int64_t token_dim = 256;  // MapNet token width
  int adapter_every = 4;    // one conditioning adapter after every 4th body conv -> 8 adapters
  int64_t heads = 4;        // cross-attention heads
  int64_t lora_rank = 8;
};

// Cross-attention of a feature map over condition tokens, then FiLM from the mean token.
struct CondAdapterImpl : torch::nn::Module {
  CondAdapterImpl(int64_t channels, int64_t token_dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& tokens);
  int64_t heads;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d to_q{nullptr}, to_out{nullptr};
  torch::nn::Linear to_kv{nullptr}, film{nullptr};
};
TORCH_MODULE(CondAdapter);

struct SceneRestorerImpl : torch::nn::Module {
  explicit SceneRestorerImpl(const SceneRestorerOptions& options = {});
  // x: [B,3,H,W] in [0,1]; tokens: [B,T,token_dim]. scale 4 -> [B,3,4H,4W]; scale 1 -> [B,3,H,W]
  // (H and W multiples of 4 for scale 1). Output is not clamped (training sees the raw values).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& tokens, int scale = 4);
  // Copies the Real-ESRGAN general-x4v3 weights into `base` and re-initialises the ×1 stem from
  // its first convolution; freezes the base.
  void load_base(const TensorMap& srvgg_weights, const std::string& source);
  // Only what training changes (LoRA, adapters, ×1 stem): what we ship. The base stays out.
  TensorMap trainable_state() const;
  // `fill_missing_gates`: a file from before the LoRA gates existed loads with the gates at their
  // neutral zero initialisation (training resumes from it); otherwise every key must be there.
  void load_trainable_state(const TensorMap& tensors, const std::string& source, bool fill_missing_gates = false);
  std::vector<torch::Tensor> trainable_parameters();

  SceneRestorerOptions options;
  SRVGGNetCompact base{nullptr};
  torch::nn::ModuleList lora_down{nullptr}, lora_up{nullptr}, lora_gate{nullptr}, adapters{nullptr};
  torch::nn::Conv2d stem_x1{nullptr};

 private:
  // Typed views of the base's layers (registered once, inside `base`), so forward never looks
  // modules up by name or casts them.
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::PReLU> prelus_;
  std::vector<torch::nn::Conv2d> downs_, ups_;
  std::vector<torch::nn::Linear> gates_;
  std::vector<CondAdapter> adapter_list_;
};
TORCH_MODULE(SceneRestorer);

// A restorer file holds the trainable part ("restorer.*") and its MapNet ("mapnet.*"), never the
// base; options go in the metadata. `blind` marks the null-token-only baseline.
void save_restorer(const std::string& path, SceneRestorer& net, MapNet& mapnet, bool blind,
                   torch::Dtype dtype = torch::kFloat32);
struct LoadedRestorer {
  SceneRestorer net{nullptr};
  MapNet mapnet{nullptr};
  bool blind = false;
};
// Builds both modules from the metadata, loads the base from `base_weights` (general-x4v3
// safetensors), then the file strictly.
LoadedRestorer load_restorer(const std::string& path, const std::string& base_weights,
                             const torch::Device& device = torch::kCPU, bool fill_missing_gates = false);

}  // namespace face2scene
