// The oracle core of face2scene: FaDeX reads a degradation code from a (degraded face, restored
// face) pair; MapNet turns that code into 21 multi-scale tokens that condition the scene restorer
// by cross-attention. Both are plain torch::nn modules: the same definitions train on the GPU and
// infer on the CPU.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace face2scene {

// ---- FaDeX ---------------------------------------------------------------------------------
struct FaDeXOptions {
  int64_t in_size = 128;     // aligned face side (the LQ face is resized to it first)
  int64_t width = 64;        // channels of the first stage (doubles per stage, capped at max_width)
  int64_t max_width = 128;   // cap on the stage width: keeps the network small (1.6 M parameters)
  int64_t code_dim = 256;    // channels of the spatial code and length of the global code
  int64_t code_grid = 8;     // spatial code is code_grid x code_grid
  int64_t param_dim = 44;    // regression target length (kDegradationTargetSize: 39-slot vector + 5 summary values)
  // Which degraded face the network was trained to read (metadata "lq_geometry"):
  //  "fixed"  — a 128² clean face degraded as a whole (LQ 32² at ×4, 128² at ×1): the degraded face
  //             must be cut at in_size / restorer scale whatever its size in the photo (version 1);
  //  "native" — the face as it is in the degraded photo, cut at its own side there (up to in_size),
  //             trained on faces of 12–128 px (train fadex --teacher: face-size distillation).
  std::string lq_geometry = "fixed";
};

struct FaDeXOutput {
  torch::Tensor code_map;  // [B, code_dim, g, g]: what MapNet embeds
  torch::Tensor code;      // [B, code_dim], L2-normalised global code (contrastive space)
  torch::Tensor params;    // [B, param_dim], regressed (normalised) degradation parameters
};

// Degradation eXtractor. Input: LQ and HQ faces [B,3,S,S] in [0,1]. The network sees their
// concatenation and their difference, so what it learns is the mapping LQ <- HQ, not the face.
struct FaDeXImpl : torch::nn::Module {
  explicit FaDeXImpl(const FaDeXOptions& options = {});
  FaDeXOutput forward(const torch::Tensor& lq, const torch::Tensor& hq);
  // Regressed (normalised) parameters -> the degradation engine's parameter vector, using the
  // per-slot mean/std the trainer stored in the buffers param_mean/param_std.
  torch::Tensor denormalize_params(const torch::Tensor& normalised) const;
  FaDeXOptions options;
  torch::Tensor param_mean, param_std;  // [param_dim] buffers, saved with the weights
  torch::nn::Sequential stem{nullptr}, body{nullptr};
  torch::nn::Conv2d to_code{nullptr};
  torch::nn::Sequential param_head{nullptr};
};
TORCH_MODULE(FaDeX);

// ---- MapNet --------------------------------------------------------------------------------
struct MapNetOptions {
  int64_t code_dim = 256;   // FaDeX code channels
  int64_t embed_dim = 256;  // patch-embedding width
  int64_t heads = 4;
  int64_t token_dim = 256;  // width of the tokens the restorer attends to
  std::vector<int64_t> pools{1, 2, 4};  // 1 + 4 + 16 = 21 tokens
};

// Overlapping patch embedding -> degradation self-attention -> average pooling at each scale ->
// one projector per scale -> tokens [B, 21, token_dim]. A learned null-token set stands in for
// the code in blind mode (and is what classifier-free style dropout trains).
struct MapNetImpl : torch::nn::Module {
  explicit MapNetImpl(const MapNetOptions& options = {});
  torch::Tensor forward(const torch::Tensor& code_map);
  // The blind tokens, expanded to batch size.
  torch::Tensor null_tokens(int64_t batch) const;
  int64_t num_tokens() const;
  MapNetOptions options;
  torch::nn::Conv2d patch_embed{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, attn_out{nullptr};
  torch::nn::Sequential mlp{nullptr};
  torch::nn::ModuleList projectors{nullptr};
  torch::Tensor null_tokens_;
};
TORCH_MODULE(MapNet);

// ---- ParamEncoder (ablation upper bound) ----------------------------------------------------------
struct ParamEncoderOptions {
  int64_t param_dim = 44;  // kDegradationTargetSize, normalised with FaDeX's param_mean/param_std
  int64_t hidden = 256;
  int64_t code_dim = 256;  // = FaDeX code channels, so MapNet and the restorer take it unchanged
  int64_t code_grid = 8;
};
// The true degradation parameters -> a code map shaped like FaDeX's (constant over the grid). It
// exists to measure how much the restorer could gain if the code were perfect: the restorer trained
// on it is the "true parameters" upper bound of the ablation, never a shipped model.
struct ParamEncoderImpl : torch::nn::Module {
  explicit ParamEncoderImpl(const ParamEncoderOptions& options = {});
  torch::Tensor forward(const torch::Tensor& normalised_params);  // [B,P] -> [B,C,g,g]
  ParamEncoderOptions options;
  torch::nn::Sequential mlp{nullptr};
};
TORCH_MODULE(ParamEncoder);

// Files: weights (+ FaDeX's normaliser buffers) with the options in the metadata, so loading
// rebuilds the right shapes. Loading is strict and checks the architecture name and version.
void save_fadex(const std::string& path, FaDeX& net, torch::Dtype dtype = torch::kFloat32);
FaDeX load_fadex(const std::string& path, const torch::Device& device = torch::kCPU);

void save_param_encoder(const std::string& path, ParamEncoder& net);
ParamEncoder load_param_encoder(const std::string& path, const torch::Device& device = torch::kCPU);

// Multi-head attention of q [B,Nq,D] over k,v [B,Nk,D]: the fused kernel on LibTorch 2.x, the
// explicit matmul/softmax form on 1.13 (which has no scaled_dot_product_attention).
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads);

}  // namespace face2scene
