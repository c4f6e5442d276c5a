// torchvision's SqueezeNet 1.1 feature extractor (the `features` Sequential), as LPIPS uses it.
// Parameter names follow torchvision ("features.0.weight", "features.3.squeeze.weight", ...), so a
// state dict exported from here loads into torchvision.models.squeezenet1_1().features unchanged.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "face2scene/safetensors.hpp"

namespace face2scene {

struct FireOptions {
  FireOptions(int64_t in, int64_t squeeze, int64_t expand1x1, int64_t expand3x3)
      : in_(in), squeeze_(squeeze), expand1x1_(expand1x1), expand3x3_(expand3x3) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, squeeze);
  TORCH_ARG(int64_t, expand1x1);
  TORCH_ARG(int64_t, expand3x3);
};

// squeeze 1x1 + ReLU, then concat(expand1x1 + ReLU, expand3x3 + ReLU) along channels.
struct FireImpl : torch::nn::Module {
  explicit FireImpl(const FireOptions& o);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d squeeze{nullptr}, expand1x1{nullptr}, expand3x3{nullptr};
};
TORCH_MODULE(Fire);

struct SqueezeNetFeaturesImpl : torch::nn::Module {
  SqueezeNetFeaturesImpl();
  // The whole `features` stack; returns the output of the last layer (512 channels).
  torch::Tensor forward(const torch::Tensor& x);
  // LPIPS' seven taps: after features[1] (relu), [4], [7], [9], [10], [11], [12]
  // (64, 128, 256, 384, 384, 512, 512 channels).
  std::vector<torch::Tensor> taps(const torch::Tensor& x);
  torch::nn::Sequential features{nullptr};
};
TORCH_MODULE(SqueezeNetFeatures);

// torchvision squeezenet1_1 weights from the ncnn export (pnnx, fp16 weights, fp32 biases) as a
// state dict with torchvision names, prefixed "features.". The classifier conv is left out.
// Convolutions are matched by order and kernel size (ncnn lists expand1x1 before expand3x3).
TensorMap squeezenet1_1_from_ncnn(const std::string& param_path, const std::string& bin_path);

}  // namespace face2scene
