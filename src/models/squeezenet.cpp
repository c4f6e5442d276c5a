// SqueezeNet 1.1 (Iandola et al. 2016) in torchvision's layout, for LPIPS.
#include "face2scene/squeezenet.hpp"

#include "face2scene/core.hpp"
#include "face2scene/ncnn.hpp"

namespace face2scene {
namespace nn = torch::nn;

FireImpl::FireImpl(const FireOptions& o) {
  squeeze = register_module("squeeze", nn::Conv2d(nn::Conv2dOptions(o.in(), o.squeeze(), 1)));
  expand1x1 = register_module("expand1x1", nn::Conv2d(nn::Conv2dOptions(o.squeeze(), o.expand1x1(), 1)));
  expand3x3 = register_module("expand3x3", nn::Conv2d(nn::Conv2dOptions(o.squeeze(), o.expand3x3(), 3).padding(1)));
}

torch::Tensor FireImpl::forward(const torch::Tensor& x) {
  auto s = torch::relu(squeeze->forward(x));
  return torch::cat({torch::relu(expand1x1->forward(s)), torch::relu(expand3x3->forward(s))}, 1);
}

SqueezeNetFeaturesImpl::SqueezeNetFeaturesImpl() {
  auto pool = [] { return nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).ceil_mode(true)); };
  features = register_module(
      "features",
      nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 64, 3).stride(2)), nn::ReLU(), pool(),  // 0-2
                     Fire(FireOptions(64, 16, 64, 64)), Fire(FireOptions(128, 16, 64, 64)), pool(),        // 3-5
                     Fire(FireOptions(128, 32, 128, 128)), Fire(FireOptions(256, 32, 128, 128)), pool(),  // 6-8
                     Fire(FireOptions(256, 48, 192, 192)), Fire(FireOptions(384, 48, 192, 192)),          // 9-10
                     Fire(FireOptions(384, 64, 256, 256)), Fire(FireOptions(512, 64, 256, 256))));        // 11-12
}

torch::Tensor SqueezeNetFeaturesImpl::forward(const torch::Tensor& x) { return features->forward(x); }

std::vector<torch::Tensor> SqueezeNetFeaturesImpl::taps(const torch::Tensor& x) {
  static const std::vector<size_t> kTapAfter = {1, 4, 7, 9, 10, 11, 12};
  std::vector<torch::Tensor> out;
  torch::Tensor h = x;
  size_t next = 0;
  size_t i = 0;
  for (auto& m : *features) {
    h = m.forward(h);
    if (next < kTapAfter.size() && i == kTapAfter[next]) {
      out.push_back(h);
      ++next;
    }
    ++i;
  }
  return out;
}

TensorMap squeezenet1_1_from_ncnn(const std::string& param_path, const std::string& bin_path) {
  const ncnn::Model model = ncnn::load(param_path, bin_path);
  const auto convs = model.layers_of_type("Convolution");
  // 1 stem + 8 fire modules x 3 + the classifier.
  if (convs.size() != 26) {
    throw FormatError(param_path + ": expected 26 convolutions (SqueezeNet 1.1), found " + std::to_string(convs.size()));
  }
  TensorMap out;
  auto put = [&](const std::string& name, const ncnn::Layer* l) {
    out[name + ".weight"] = ncnn::conv_weight(*l).to(torch::kFloat32).contiguous();
    auto b = ncnn::conv_bias(*l);
    if (!b.defined()) throw FormatError(param_path + ": layer " + l->name + " has no bias");
    out[name + ".bias"] = b.to(torch::kFloat32).contiguous();
  };
  put("features.0", convs[0]);
  static const int kFireIndex[8] = {3, 4, 6, 7, 9, 10, 11, 12};
  for (int f = 0; f < 8; ++f) {
    const ncnn::Layer* sq = convs[1 + 3 * f];
    const ncnn::Layer* a = convs[2 + 3 * f];
    const ncnn::Layer* b = convs[3 + 3 * f];
    if (sq->get_int(1, 0) != 1) throw FormatError(param_path + ": " + sq->name + " should be a 1x1 squeeze conv");
    const ncnn::Layer* e1 = a->get_int(1, 0) == 1 ? a : b;
    const ncnn::Layer* e3 = a->get_int(1, 0) == 3 ? a : b;
    if (e1 == e3 || e1->get_int(1, 0) != 1 || e3->get_int(1, 0) != 3) {
      throw FormatError(param_path + ": fire module after " + sq->name + " lacks a 1x1 and a 3x3 expand conv");
    }
    const std::string base = "features." + std::to_string(kFireIndex[f]);
    put(base + ".squeeze", sq);
    put(base + ".expand1x1", e1);
    put(base + ".expand3x3", e3);
  }
  if (convs[25]->get_int(0, 0) != 1000) throw FormatError(param_path + ": last convolution is not the 1000-class classifier");
  return out;
}

}  // namespace face2scene
