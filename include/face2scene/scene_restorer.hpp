// The degradation-conditioned scene restorer: a Real-ESRGAN network kept frozen as the pretrained
// prior (the backbone: SRVGGNetCompact realesr-general-x4v3 for speed, or RRDBNet x4plus for
// quality), plus what face2scene trains and ships:
//   - LoRA (rank r), each rank component gated by the tokens (gate = 1 + Linear(mean token)), so
//     the code can steer the whole correction. general-x4v3: every body convolution after the
//     first. x4plus: the last convolution of every residual dense block, conv_body, the two
//     upsampling convolutions and conv_hr.
//   - a conditioning adapter (cross-attention of the feature map over MapNet's 21 tokens, then a
//     FiLM scale/shift from their mean) after every k-th body convolution (general-x4v3) or every
//     k-th RRDB block plus one after the body (x4plus),
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
  RealEsrganModel backbone = RealEsrganModel::kGeneralX4V3;
  int num_feat = 64;        // base model width (both Real-ESRGAN models: 64)
  int num_conv = 32;        // general-x4v3: body convolutions (32)
  int num_block = 23;       // x4plus: RRDB blocks (23)
  int num_grow_ch = 32;     // x4plus: dense-block growth channels (32)
  int64_t token_dim = 256;  // MapNet token width
  // general-x4v3: an adapter after every 4th body conv -> 8 adapters. x4plus (use 3): after every
  // 3rd RRDB block and one after the body -> 8 adapters.
  int adapter_every = 4;
  int64_t heads = 4;        // cross-attention heads
  int64_t lora_rank = 8;
};

// The GroupNorm statistics of every conditioning adapter, in forward order, for one batch:
// mean and (biased) variance per image and group, [B, groups] float32 each. Tiled inference
// normalises every tile with the statistics of the whole image (SceneRestorerImpl::adapter_stats),
// so the result does not depend on the tile size (GroupNorm over a tile would).
struct AdapterStats {
  std::vector<torch::Tensor> mean, var;
};

// Cross-attention of a feature map over condition tokens, then FiLM from the mean token.
struct CondAdapterImpl : torch::nn::Module {
  CondAdapterImpl(int64_t channels, int64_t token_dim, int64_t heads);
  // mean/var undefined: GroupNorm over x itself (training, whole images); else x is normalised
  // with these statistics ([B, groups]) and the norm's affine parameters.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& tokens, const torch::Tensor& mean = {},
                        const torch::Tensor& var = {});
  // What GroupNorm would compute over x: mean and biased variance, [B, groups] float32.
  std::pair<torch::Tensor, torch::Tensor> group_stats(const torch::Tensor& x) const;
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
  // `stats`: normalise every adapter with these (from adapter_stats of the whole image) instead of
  // over x; null = GroupNorm over x, as in training.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& tokens, int scale = 4,
                        const AdapterStats* stats = nullptr);
  // The adapters' GroupNorm statistics over the whole of x (what forward(x, tokens, scale) uses):
  // runs the network up to its last adapter only.
  AdapterStats adapter_stats(const torch::Tensor& x, const torch::Tensor& tokens, int scale = 4);
  // Copies the backbone's Real-ESRGAN weights into the base and re-initialises the ×1 stem from
  // its first convolution; freezes the base.
  void load_base(const TensorMap& srvgg_weights, const std::string& source);
  // Only what training changes (LoRA, adapters, ×1 stem): what we ship. The base stays out.
  TensorMap trainable_state() const;
  // `fill_missing_gates`: a file from before the LoRA gates existed loads with the gates at their
  // neutral zero initialisation (training resumes from it); otherwise every key must be there.
  void load_trainable_state(const TensorMap& tensors, const std::string& source, bool fill_missing_gates = false);
  std::vector<torch::Tensor> trainable_parameters();

  // The frozen base (registered as "base"): the parameters of one of these two.
  std::vector<torch::Tensor> base_parameters() const;

  SceneRestorerOptions options;
  SRVGGNetCompact base{nullptr};  // general-x4v3 backbone, else null
  RRDBNet rrdb{nullptr};          // x4plus backbone, else null
  torch::nn::ModuleList lora_down{nullptr}, lora_up{nullptr}, lora_gate{nullptr}, adapters{nullptr};
  torch::nn::Conv2d stem_x1{nullptr};

 private:
  void build_srvgg();
  void build_rrdb();  // scene_restorer_x4plus.cpp
  // One gated LoRA branch per adapted convolution, in forward order.
  void add_lora(int64_t in_channels, int64_t out_channels);
  // base_out + up(down(in) · gate_k): the k-th adapted convolution's output.
  torch::Tensor lora(size_t k, const torch::Tensor& in, const torch::Tensor& base_out, const torch::Tensor& mean_token);
  // How the adapters normalise in one forward pass: with given statistics (`use`), or over the
  // features while recording them (`record`: the pass stops after the last adapter, returning an
  // undefined tensor), or neither (plain GroupNorm).
  struct StatsMode {
    const AdapterStats* use = nullptr;
    AdapterStats* record = nullptr;
  };
  torch::Tensor adapt(size_t k, const torch::Tensor& h, const torch::Tensor& tokens, const StatsMode& mode);
  void check_inputs(const torch::Tensor& x, const torch::Tensor& tokens, int scale) const;
  torch::Tensor forward_srvgg(const torch::Tensor& x, const torch::Tensor& tokens, int scale, const StatsMode& mode);
  torch::Tensor forward_rrdb(const torch::Tensor& x, const torch::Tensor& tokens, int scale,
                             const StatsMode& mode);  // scene_restorer_x4plus.cpp
  torch::nn::Conv2d first_conv() const;  // the base's first convolution (the ×1 stem copies it)

  // Typed views of the base's layers (registered once, inside the base), so forward never looks
  // modules up by name or casts them.
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::PReLU> prelus_;
  std::vector<ResidualDenseBlock> rdbs_;
  std::vector<torch::nn::Conv2d> downs_, ups_;
  std::vector<torch::nn::Linear> gates_;
  std::vector<CondAdapter> adapter_list_;
};
TORCH_MODULE(SceneRestorer);

// A restorer file holds the trainable part ("restorer.*") and its MapNet ("mapnet.*"), never the
// base; options and the backbone go in the metadata. `blind` marks the null-token-only baseline.
// `extra`: more metadata (e.g. how it was trained: "losses" = "l1+lpips+gan" for a GAN fine-tune).
void save_restorer(const std::string& path, SceneRestorer& net, MapNet& mapnet, bool blind,
                   torch::Dtype dtype = torch::kFloat32, const Metadata& extra = {});
struct LoadedRestorer {
  SceneRestorer net{nullptr};
  MapNet mapnet{nullptr};
  bool blind = false;
};
// The backbone a restorer file was trained on (files without the key predate x4plus: general-x4v3).
RealEsrganModel restorer_backbone(const std::string& path);
// Builds both modules from the metadata, loads the base from `base_weights` (the backbone's
// Real-ESRGAN safetensors; empty = realesrgan_weights_path(backbone)), then the file strictly.
LoadedRestorer load_restorer(const std::string& path, const std::string& base_weights,
                             const torch::Device& device = torch::kCPU, bool fill_missing_gates = false);

// Network interpolation (ESRGAN's "realism" dial): every tensor of `l1` (restorer + MapNet) set
// to (1 − realism)·l1 + realism·gan, in place. realism 0 leaves l1 untouched (bit for bit), 1
// copies gan. Interpolation is meaningful between a model and its own fine-tune (the GAN restorer
// starts from the L1 weights), so both must share architecture, options and blind flag:
// ArgumentError naming `what` and the first mismatch otherwise.
void interpolate_restorer(LoadedRestorer& l1, const LoadedRestorer& gan, double realism, const std::string& what);
// load_restorer of both files, then interpolate_restorer (realism 0 or 1 loads one file only).
LoadedRestorer load_restorer_realism(const std::string& l1_path, const std::string& gan_path, double realism,
                                     const std::string& base_weights, const torch::Device& device = torch::kCPU);

}  // namespace face2scene
