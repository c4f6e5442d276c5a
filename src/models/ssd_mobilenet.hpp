// face-api's face detector, SSD MobileNet v1 (src/ssdMobilenetv1/*.ts in @vladmandic/face-api
// 1.7.15), as a LibTorch module, and the reader of its TF.js weights. Private to face2scene: the
// public API is FaceDetector (face2scene/faces.hpp), which uses it beside dlib's HOG.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "face2scene/safetensors.hpp"

namespace face2scene {

inline constexpr const char* kSsdMobilenetArch = "faceapi_ssd_mobilenetv1";
inline constexpr const char* kSsdMobilenetVersion = "1";

// The network sees exactly this square (its 5,118 anchors are fixed to it).
inline constexpr int64_t kSsdInput = 512;

struct SsdMobilenetV1Options {
  int64_t anchors = 5118;  // rows of the anchor table ("Output/extra_dim")
};

// One depthwise-separable block of MobileNet v1: depthwise 3×3 + batch norm + ReLU6, then a
// pointwise 1×1 convolution whose batch norm is folded into its bias, + ReLU6.
struct SsdSeparableImpl : torch::nn::Module {
  SsdSeparableImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t stride;
  torch::Tensor dw_weight, bn_gamma, bn_beta, bn_mean, bn_var, pw_weight, pw_bias;
};
TORCH_MODULE(SsdSeparable);

struct SsdOutput {
  torch::Tensor boxes;   // [B,N,4] x0,y0,x1,y1 in units of the 512² input (0..1)
  torch::Tensor scores;  // [B,N] face probability
};

struct SsdMobilenetV1Impl : torch::nn::Module {
  explicit SsdMobilenetV1Impl(SsdMobilenetV1Options options = {});
  // x: [B,3,512,512] RGB 0..255 (float).
  SsdOutput forward(const torch::Tensor& x);

  SsdMobilenetV1Options options;
  torch::Tensor conv0_weight, conv0_bias;                 // MobileNet's first 3×3 stride-2 layer
  std::vector<SsdSeparable> blocks;                       // MobileNet conv_1 … conv_13
  std::vector<torch::Tensor> extra_weight, extra_bias;    // prediction conv_0 … conv_7
  std::vector<torch::Tensor> box_weight, box_bias, class_weight, class_bias;  // 6 box predictors
  torch::Tensor priors;                                   // [N,4] y0,x0,y1,x1 (0..1)
};
TORCH_MODULE(SsdMobilenetV1);

// Reads face-api's ssd_mobilenetv1_model-weights_manifest.json (+ .bin) into this module's state
// dict (filters HWIO -> OIHW; depthwise HWC1 -> C1HW). The graph's int32 constants are left out.
TensorMap read_faceapi_ssd_weights(const std::string& manifest_path);

}  // namespace face2scene
