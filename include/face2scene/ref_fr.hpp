// Ref-FR: reference-based face restoration, the first stage of face2scene. An aligned degraded
// face (FFHQ frame) plus 0–5 aligned photos of the same person -> the restored face.
//
// A U-Net restores the face; one reference encoder, shared by all references, turns each
// reference into tokens at 32² and 16² (of a 128² face). At those two scales the degraded face's
// features query the tokens of all references by cross-attention:
//   - 2-D position embeddings on queries and keys (the faces share the FFHQ frame, so "the same
//     place" is a good prior, yet attention can still look elsewhere when the pose differs), and
//     any number of references is just a longer key sequence;
//   - reference features take the degraded face's per-channel feature means (AdaIN's first
//     moment), so identity (structure) is taken from the references but colour and lighting are
//     not; their contrast is kept, since a degraded face has little and matching it would erase
//     the references' detail;
//   - learned null tokens are always among the keys: with no references attention reads only
//     them, so the blind mode is the same network;
//   - an ASFF-style gate decides per pixel how much of the attended features to take:
//     F = F_lq + σ(conv[F_lq, A]) · (A − F_lq).
// The output is the input plus a predicted residual, so an untrained network is near identity.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/safetensors.hpp"

namespace face2scene {

struct RefFROptions {
  int64_t size = 128;       // aligned face side (FFHQ frame); multiple of 32
  int64_t width = 64;       // channels at size/2; doubled at /4 and /8 (64, 128, 256)
  int64_t ref_width = 32;   // reference encoder channels at size/2 (doubled twice)
  int64_t heads = 4;        // cross-attention heads
  int64_t null_tokens = 8;  // learned keys/values that stand in for "no reference"
  int64_t pos_freqs = 8;    // sinusoidal frequencies per axis of the 2-D position embedding
  int64_t max_refs = 5;     // more references than this are refused (ArgumentError)
  // Aligned reference paths (0 = none, as in version-1 files; 2 = at size/2 and size/4): the
  // references' features at the same place of the FFHQ frame, averaged over references, added
  // to the face's through a gate. Attention alone (tokens at 16²) carries too coarse a structure:
  // references were worth 0.0003 L1 after 8 k steps (docs/ref_fr.md).
  int64_t aligned_levels = 2;
};

// The aligned path: F = F + σ(conv[F, A]) · A with A = W·mean_r(R_r − mean_xy(R_r)). Removing each
// reference's spatial mean per channel (AdaIN's first moment) leaves structure, not colour or
// light; W starts at zero so a network warm-started from a version-1 file is unchanged at first.
struct AlignedRefFusionImpl : torch::nn::Module {
  AlignedRefFusionImpl(int64_t channels, int64_t ref_channels);
  // f [B,C,h,w]; refs [B,R,Cr,h,w] (undefined or R = 0: f is returned unchanged).
  torch::Tensor forward(const torch::Tensor& f, const torch::Tensor& refs);
  torch::nn::Conv2d proj{nullptr}, gate{nullptr};
};
TORCH_MODULE(AlignedRefFusion);

// Cross-attention of the degraded face's features over reference tokens, fused by the gate.
struct RefFusionImpl : torch::nn::Module {
  RefFusionImpl(int64_t channels, int64_t heads, int64_t null_tokens, int64_t pos_freqs, int64_t gate_kernel = 3);
  // f_lq [B,C,h,w]; refs [B,R,C,hr,wr] (R may be 0). Returns the fused features [B,C,h,w].
  torch::Tensor forward(const torch::Tensor& f_lq, const torch::Tensor& refs);
  int64_t heads, pos_freqs;
  torch::nn::LayerNorm norm_q{nullptr}, norm_k{nullptr};
  torch::nn::Linear pos_q{nullptr}, pos_k{nullptr}, to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
  torch::nn::Conv2d gate{nullptr};
  torch::Tensor null_k, null_v;  // [N, C]
};
TORCH_MODULE(RefFusion);

// Reference features, encoded once per reference and reusable for every face of that person.
struct RefFeatures {
  torch::Tensor f32, f16;  // [B,R,C,h,w] at size/4 (pooled to size/8) and size/8; R may be 0
  torch::Tensor a64, a32;  // aligned paths: [B,R,Cr,h,w] at size/2 and size/4 (undefined if none)
  int64_t count() const { return f16.defined() ? f16.size(1) : 0; }
  // The features of one item ([1,R,...]) shared by `batch` faces (views, no copies): a person's
  // references are encoded once for all of that person's faces.
  RefFeatures expand(int64_t batch) const;
};

struct RefFRImpl : torch::nn::Module {
  explicit RefFRImpl(const RefFROptions& options = {});
  // refs [B,R,3,S,S] in [0,1] (R = 0 allowed, or an undefined tensor) -> features.
  RefFeatures encode_refs(const torch::Tensor& refs, int64_t batch);
  // lq [B,3,S,S] in [0,1] (the degraded face resized to S in the FFHQ frame) -> restored [B,3,S,S],
  // not clamped (training sees the raw values).
  torch::Tensor forward(const torch::Tensor& lq, const RefFeatures& refs);
  torch::Tensor forward(const torch::Tensor& lq, const torch::Tensor& refs = {});
  int64_t num_parameters() const;
  // Multiply-adds of one face's forward with `refs` references (convolutions, linear layers and
  // attention products; activations and norms, < 1 %, are left out): the FLOP floor is 2× this.
  // `encode`: include the reference encoder (false: references encoded once, as the pipeline does).
  int64_t macs(int64_t refs, bool encode = true) const;
  RefFROptions options;
  // U-Net.
  torch::nn::Conv2d in_conv{nullptr}, down1{nullptr}, down2{nullptr};
  torch::nn::Sequential enc64{nullptr}, enc32{nullptr}, enc16{nullptr}, dec32{nullptr}, dec64{nullptr};
  torch::nn::Conv2d up16{nullptr}, up32{nullptr}, merge32{nullptr}, merge64{nullptr}, out_conv{nullptr};
  // Reference encoder (shared by all references).
  torch::nn::Conv2d ref_in{nullptr}, ref_down1{nullptr}, ref_down2{nullptr};
  torch::nn::Sequential ref32{nullptr}, ref16{nullptr};
  torch::nn::Conv2d ref_proj32{nullptr}, ref_proj16{nullptr};  // reference width -> the face's
  RefFusion fuse32{nullptr}, fuse16{nullptr};
  AlignedRefFusion align64{nullptr}, align32{nullptr};  // when options.aligned_levels == 2
};
TORCH_MODULE(RefFR);

// Files: weights with the options in the metadata, arch "face2scene-ref-fr"; `blind` marks the
// control twin trained without references. Loading is strict and names every bad key.
inline constexpr const char* kRefFRArch = "face2scene-ref-fr";
void save_ref_fr(const std::string& path, RefFR& net, bool blind, torch::Dtype dtype = torch::kFloat32,
                 const Metadata& extra = {});
struct LoadedRefFR {
  RefFR net{nullptr};
  bool blind = false;
  Metadata metadata;
};
LoadedRefFR load_ref_fr(const std::string& path, const torch::Device& device = torch::kCPU);
// Warm start of a (possibly larger) network from a file: every tensor of the file must exist in
// `net` with the same shape (else FormatError naming the key); tensors of `net` the file lacks keep
// their initialisation and are listed in `fresh`. The file's options must match except
// aligned_levels and max_refs; its metadata is returned (e.g. trained_steps).
struct WarmStart {
  std::vector<std::string> fresh;
  Metadata metadata;
};
WarmStart warm_start_ref_fr(RefFR& net, const std::string& path);

// ---- the adversarial critic used in training ------------------------------------------------
// A PatchGAN discriminator whose convolutions are spectrally normalised (one power iteration per
// training forward, as torch.nn.utils.spectral_norm does), so the critic stays Lipschitz.
struct SNConv2dImpl : torch::nn::Module {
  SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias, u;  // u: the power-iteration vector (buffer)
  int64_t stride, padding;
};
TORCH_MODULE(SNConv2d);

struct PatchDiscriminatorImpl : torch::nn::Module {
  explicit PatchDiscriminatorImpl(int64_t width = 64, int64_t layers = 3);
  torch::Tensor forward(const torch::Tensor& x);  // [B,3,S,S] in [0,1] -> logits [B,1,s,s]
  torch::nn::ModuleList convs{nullptr};
};
TORCH_MODULE(PatchDiscriminator);

}  // namespace face2scene
