// face-api's FaceRecognitionNet (dlib's face recognition ResNet) as a LibTorch module, and the
// reader of its TF.js weights. Private to face2scene: the public API is face2scene/identity.hpp.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/safetensors.hpp"

namespace face2scene {

inline constexpr const char* kFaceRecognitionArch = "faceapi_face_recognition";
inline constexpr const char* kFaceRecognitionVersion = "1";

// face-api's "scale layer": a per-channel affine after each convolution (dlib's affine layer,
// which stands in for batch norm at inference).
struct ChannelScaleImpl : torch::nn::Module {
  explicit ChannelScaleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
};
TORCH_MODULE(ChannelScale);

// conv (+bias) -> scale -> optional ReLU. `down`: stride 2 without padding (TF "valid"), else
// stride 1 with TF "same" padding (1 px for 3x3).
struct FrConvLayerImpl : torch::nn::Module {
  FrConvLayerImpl(int64_t in, int64_t out, int64_t kernel, bool down);
  torch::Tensor forward(const torch::Tensor& x, bool relu);
  torch::nn::Conv2d conv{nullptr};
  ChannelScale scale{nullptr};
};
TORCH_MODULE(FrConvLayer);

// Two conv layers with an identity (or, for `down`, a 2x2 average-pooled, zero-channel-padded)
// shortcut, exactly as face-api's residual/residualDown.
struct FrResidualImpl : torch::nn::Module {
  FrResidualImpl(int64_t in, int64_t out, bool down);
  torch::Tensor forward(const torch::Tensor& x);
  bool down;
  FrConvLayer conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(FrResidual);

struct FaceRecognitionNetImpl : torch::nn::Module {
  FaceRecognitionNetImpl();
  // x: [B,3,150,150] RGB 0..255 (float). Returns [B,128].
  torch::Tensor forward(const torch::Tensor& x);

  FrConvLayer conv32_down{nullptr};
  FrResidual conv32_1{nullptr}, conv32_2{nullptr}, conv32_3{nullptr};
  FrResidual conv64_down{nullptr}, conv64_1{nullptr}, conv64_2{nullptr}, conv64_3{nullptr};
  FrResidual conv128_down{nullptr}, conv128_1{nullptr}, conv128_2{nullptr};
  FrResidual conv256_down{nullptr}, conv256_1{nullptr}, conv256_2{nullptr}, conv256_down_out{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(FaceRecognitionNet);

// Reads face-api's face_recognition_model-weights_manifest.json and its .bin shard(s) (in the
// same folder), dequantises (uint8/uint16 with scale and min, or float16) exactly as TF.js does,
// and renames/transposes to this module's state dict (conv filters HWIO -> OIHW, fc [256,128]
// -> Linear [128,256]). Throws IoError/FormatError naming the file and the bad entry.
TensorMap read_faceapi_recognition_weights(const std::string& manifest_path);

}  // namespace face2scene
