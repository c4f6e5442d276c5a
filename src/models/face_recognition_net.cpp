// face-api's FaceRecognitionNet (src/faceRecognitionNet/*.ts in @vladmandic/face-api 1.7.15),
// mirrored op for op so that its TF.js weights give the same descriptors here.
#include "models/face_recognition_net.hpp"

#include "face2scene/core.hpp"
#include "models/tfjs_weights.hpp"

namespace F = torch::nn::functional;

namespace face2scene {

ChannelScaleImpl::ChannelScaleImpl(int64_t channels) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor ChannelScaleImpl::forward(const torch::Tensor& x) {
  return x * weight.view({1, -1, 1, 1}) + bias.view({1, -1, 1, 1});
}

FrConvLayerImpl::FrConvLayerImpl(int64_t in, int64_t out, int64_t kernel, bool down) {
  // TF "same" with stride 1 pads (k-1)/2 on each side; "valid" pads nothing.
  auto opts = torch::nn::Conv2dOptions(in, out, kernel).stride(down ? 2 : 1).padding(down ? 0 : (kernel - 1) / 2).bias(true);
  conv = register_module("conv", torch::nn::Conv2d(opts));
  scale = register_module("scale", ChannelScale(out));
}

torch::Tensor FrConvLayerImpl::forward(const torch::Tensor& x, bool relu) {
  auto out = scale(conv(x));
  return relu ? torch::relu(out) : out;
}

FrResidualImpl::FrResidualImpl(int64_t in, int64_t out, bool down_) : down(down_) {
  conv1 = register_module("conv1", FrConvLayer(in, out, 3, down));
  conv2 = register_module("conv2", FrConvLayer(out, out, 3, false));
}

torch::Tensor FrResidualImpl::forward(const torch::Tensor& x) {
  auto out = conv2(conv1(x, /*relu=*/true), /*relu=*/false);
  if (!down) return torch::relu(out + x);
  // residualDown: the shortcut is a 2x2/2 average pool; when the strided 3x3 conv came out one
  // pixel smaller (odd sizes), face-api appends a zero row and a zero column to the conv branch;
  // when channels double, the pooled shortcut is extended with zero channels.
  auto pooled = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
  if (pooled.size(2) != out.size(2) || pooled.size(3) != out.size(3)) {
    out = F::pad(out, F::PadFuncOptions({0, 1, 0, 1}));
  }
  if (pooled.size(1) != out.size(1)) pooled = torch::cat({pooled, torch::zeros_like(pooled)}, 1);
  return torch::relu(pooled + out);
}

FaceRecognitionNetImpl::FaceRecognitionNetImpl() {
  conv32_down = register_module("conv32_down", FrConvLayer(3, 32, 7, true));
  conv32_1 = register_module("conv32_1", FrResidual(32, 32, false));
  conv32_2 = register_module("conv32_2", FrResidual(32, 32, false));
  conv32_3 = register_module("conv32_3", FrResidual(32, 32, false));
  conv64_down = register_module("conv64_down", FrResidual(32, 64, true));
  conv64_1 = register_module("conv64_1", FrResidual(64, 64, false));
  conv64_2 = register_module("conv64_2", FrResidual(64, 64, false));
  conv64_3 = register_module("conv64_3", FrResidual(64, 64, false));
  conv128_down = register_module("conv128_down", FrResidual(64, 128, true));
  conv128_1 = register_module("conv128_1", FrResidual(128, 128, false));
  conv128_2 = register_module("conv128_2", FrResidual(128, 128, false));
  conv256_down = register_module("conv256_down", FrResidual(128, 256, true));
  conv256_1 = register_module("conv256_1", FrResidual(256, 256, false));
  conv256_2 = register_module("conv256_2", FrResidual(256, 256, false));
  // face-api calls it "down" but its shortcut is a pool of the same channel count.
  conv256_down_out = register_module("conv256_down_out", FrResidual(256, 256, true));
  fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(256, 128).bias(false)));
}

torch::Tensor FaceRecognitionNetImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "FaceRecognitionNet expects [B,3,H,W], got ", x.sizes());
  // face-api: normalize(x, [122.782, 117.001, 104.298]).div(255)
  auto mean = torch::tensor({122.782f, 117.001f, 104.298f}, x.options()).view({1, 3, 1, 1});
  auto out = (x - mean) / 255.0f;
  out = conv32_down(out, true);
  out = F::max_pool2d(out, F::MaxPool2dFuncOptions(3).stride(2));
  out = conv32_3(conv32_2(conv32_1(out)));
  out = conv64_3(conv64_2(conv64_1(conv64_down(out))));
  out = conv128_2(conv128_1(conv128_down(out)));
  out = conv256_down_out(conv256_2(conv256_1(conv256_down(out))));
  return fc(out.mean({2, 3}));
}

// ---- TF.js weights -------------------------------------------------------------------------

namespace {

// face-api name "conv32_1/conv1/conv/filters" -> module key "conv32_1.conv1.conv.weight".
std::string module_key(const std::string& tfjs_name) {
  std::string key = tfjs_name;
  for (auto& c : key) {
    if (c == '/') c = '.';
  }
  auto replace_suffix = [&](const std::string& from, const std::string& to) {
    if (key.size() >= from.size() && key.compare(key.size() - from.size(), from.size(), from) == 0) {
      key = key.substr(0, key.size() - from.size()) + to;
      return true;
    }
    return false;
  };
  if (replace_suffix("conv.filters", "conv.weight")) return key;
  if (replace_suffix("conv.bias", "conv.bias")) return key;
  if (replace_suffix("scale.weights", "scale.weight")) return key;
  if (replace_suffix("scale.biases", "scale.bias")) return key;
  if (key == "fc") return "fc.weight";
  return key;
}

}  // namespace

TensorMap read_faceapi_recognition_weights(const std::string& manifest_path) {
  TensorMap out;
  for (auto& [name, value] : read_tfjs_weights(manifest_path)) {
    auto t = value;
    if (t.dim() == 4) t = t.permute({3, 2, 0, 1}).contiguous();  // HWIO -> OIHW
    if (name == "fc") t = t.t().contiguous();                      // [256,128] -> [128,256]
    out[module_key(name)] = t;
  }
  return out;
}

}  // namespace face2scene
