// face-api's SSD MobileNet v1, mirrored op for op (TF "same" padding included) so that its TF.js
// weights give the same boxes and scores here (tests/test_ssd_mobilenet.cpp checks against TF.js).
#include "models/ssd_mobilenet.hpp"

#include <sstream>

#include "face2scene/core.hpp"
#include "models/tfjs_weights.hpp"

namespace F = torch::nn::functional;

namespace face2scene {

namespace {

// TF's "same" padding: the output is ceil(n / stride) and the odd pixel of padding goes after
// (bottom/right), which PyTorch's symmetric padding cannot express.
torch::Tensor pad_same(const torch::Tensor& x, int64_t k, int64_t s) {
  auto pads = [&](int64_t n) {
    const int64_t out = (n + s - 1) / s;
    const int64_t total = std::max<int64_t>((out - 1) * s + k - n, 0);
    return std::pair<int64_t, int64_t>{total / 2, total - total / 2};
  };
  const auto [t, b] = pads(x.size(2));
  const auto [l, r] = pads(x.size(3));
  if (t == 0 && b == 0 && l == 0 && r == 0) return x;
  return F::pad(x, F::PadFuncOptions({l, r, t, b}));
}

torch::Tensor conv_same(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t s,
                        int64_t groups = 1) {
  return F::conv2d(pad_same(x, w.size(2), s), w, F::Conv2dFuncOptions().bias(b).stride(s).groups(groups));
}

torch::Tensor clip6(const torch::Tensor& x) { return x.clamp(0, 6); }

}  // namespace

SsdSeparableImpl::SsdSeparableImpl(int64_t in, int64_t out, int64_t stride_) : stride(stride_) {
  dw_weight = register_parameter("dw_weight", torch::zeros({in, 1, 3, 3}));
  bn_gamma = register_parameter("bn_gamma", torch::ones({in}));
  bn_beta = register_parameter("bn_beta", torch::zeros({in}));
  bn_mean = register_parameter("bn_mean", torch::zeros({in}));
  bn_var = register_parameter("bn_var", torch::ones({in}));
  pw_weight = register_parameter("pw_weight", torch::zeros({out, in, 1, 1}));
  pw_bias = register_parameter("pw_bias", torch::zeros({out}));
}

torch::Tensor SsdSeparableImpl::forward(const torch::Tensor& x) {
  auto y = conv_same(x, dw_weight, {}, stride, x.size(1));
  // tf.batchNorm with epsilon 0.0010000000474974513 (face-api's constant).
  const auto inv = bn_gamma / torch::sqrt(bn_var + 0.0010000000474974513);
  y = clip6((y - bn_mean.view({1, -1, 1, 1})) * inv.view({1, -1, 1, 1}) + bn_beta.view({1, -1, 1, 1}));
  return clip6(F::conv2d(y, pw_weight, F::Conv2dFuncOptions().bias(pw_bias)));
}

SsdMobilenetV1Impl::SsdMobilenetV1Impl(SsdMobilenetV1Options o) : options(o) {
  conv0_weight = register_parameter("conv0_weight", torch::zeros({32, 3, 3, 3}));
  conv0_bias = register_parameter("conv0_bias", torch::zeros({32}));
  // MobileNet v1's channels; stride 2 at blocks 2, 4, 6 and 12.
  const int64_t ch[14] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
  for (int i = 1; i <= 13; ++i) {
    const int64_t s = (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
    blocks.push_back(register_module("conv_" + std::to_string(i), SsdSeparable(ch[i - 1], ch[i], s)));
  }
  // The prediction layer's extra feature maps: 1×1 then 3×3 stride 2, four times.
  const int64_t ex[9] = {1024, 256, 512, 128, 256, 128, 256, 64, 128};
  for (int i = 0; i < 8; ++i) {
    const int64_t k = i % 2 ? 3 : 1;
    extra_weight.push_back(register_parameter("extra_" + std::to_string(i) + "_weight", torch::zeros({ex[i + 1], ex[i], k, k})));
    extra_bias.push_back(register_parameter("extra_" + std::to_string(i) + "_bias", torch::zeros({ex[i + 1]})));
  }
  // Box predictors read conv_11 (3 anchors a cell), MobileNet's output and extras 1, 3, 5, 7 (6 each).
  const int64_t pin[6] = {512, 1024, 512, 256, 256, 128};
  for (int i = 0; i < 6; ++i) {
    const int64_t a = i == 0 ? 3 : 6;
    const std::string p = "box_" + std::to_string(i);
    box_weight.push_back(register_parameter(p + "_box_weight", torch::zeros({a * 4, pin[i], 1, 1})));
    box_bias.push_back(register_parameter(p + "_box_bias", torch::zeros({a * 4})));
    class_weight.push_back(register_parameter(p + "_class_weight", torch::zeros({a * 3, pin[i], 1, 1})));
    class_bias.push_back(register_parameter(p + "_class_bias", torch::zeros({a * 3})));
  }
  priors = register_buffer("priors", torch::zeros({o.anchors, 4}));
}

SsdOutput SsdMobilenetV1Impl::forward(const torch::Tensor& input) {
  if (input.dim() != 4 || input.size(1) != 3 || input.size(2) != kSsdInput || input.size(3) != kSsdInput)
    {
    std::ostringstream shape;
    shape << input.sizes();
    throw ArgumentError("SSD MobileNet v1: input must be [B,3,512,512], got " + shape.str());
  }
  auto x = clip6(conv_same(input / 127.5 - 1.0, conv0_weight, conv0_bias, 2));
  torch::Tensor conv11;
  for (size_t i = 0; i < blocks.size(); ++i) {
    x = blocks[i]->forward(x);
    if (i + 1 == 11) conv11 = x;
  }
  std::vector<torch::Tensor> maps{conv11, x};
  auto e = x;
  for (int i = 0; i < 8; ++i) {
    e = clip6(conv_same(e, extra_weight[size_t(i)], extra_bias[size_t(i)], i % 2 ? 2 : 1));
    if (i % 2) maps.push_back(e);
  }
  const int64_t B = input.size(0);
  std::vector<torch::Tensor> enc, cls;
  for (size_t i = 0; i < maps.size(); ++i) {
    // TF's NHWC order: anchors run fastest within a cell, cells row by row.
    enc.push_back(F::conv2d(maps[i], box_weight[i], F::Conv2dFuncOptions().bias(box_bias[i])).permute({0, 2, 3, 1}).reshape({B, -1, 4}));
    cls.push_back(F::conv2d(maps[i], class_weight[i], F::Conv2dFuncOptions().bias(class_bias[i])).permute({0, 2, 3, 1}).reshape({B, -1, 3}));
  }
  const auto code = torch::cat(enc, 1);  // [B,N,4]: dy, dx, dh, dw against each anchor
  const auto p = priors.unsqueeze(0);
  const auto ph = p.select(2, 2) - p.select(2, 0), pw = p.select(2, 3) - p.select(2, 1);
  const auto pcy = p.select(2, 0) + ph / 2, pcx = p.select(2, 1) + pw / 2;
  const auto cy = code.select(2, 0) / 10 * ph + pcy, cx = code.select(2, 1) / 10 * pw + pcx;
  const auto hh = torch::exp(code.select(2, 2) / 5) * ph / 2, hw = torch::exp(code.select(2, 3) / 5) * pw / 2;
  return {torch::stack({cx - hw, cy - hh, cx + hw, cy + hh}, 2), torch::sigmoid(torch::cat(cls, 1).select(2, 1))};
}

TensorMap read_faceapi_ssd_weights(const std::string& manifest_path) {
  TensorMap out;
  auto key = [](const std::string& name) -> std::string {
    auto num_after = [&](const std::string& prefix) { return std::stoi(name.substr(prefix.size())); };
    auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    if (name.rfind("MobilenetV1/Conv2d_0_pointwise/", 0) == 0) return ends("/weights") ? "conv0_weight" : "conv0_bias";
    if (name.rfind("MobilenetV1/Conv2d_", 0) == 0) {
      const std::string b = "conv_" + std::to_string(num_after("MobilenetV1/Conv2d_")) + ".";
      if (ends("depthwise_weights")) return b + "dw_weight";
      if (ends("BatchNorm/gamma")) return b + "bn_gamma";
      if (ends("BatchNorm/beta")) return b + "bn_beta";
      if (ends("BatchNorm/moving_mean")) return b + "bn_mean";
      if (ends("BatchNorm/moving_variance")) return b + "bn_var";
      if (ends("pointwise/weights")) return b + "pw_weight";
      if (ends("pointwise/convolution_bn_offset")) return b + "pw_bias";
    }
    if (name.rfind("Prediction/Conv2d_", 0) == 0) {
      const std::string b = "extra_" + std::to_string(num_after("Prediction/Conv2d_")) + "_";
      return b + (ends("/weights") ? "weight" : "bias");
    }
    if (name.rfind("Prediction/BoxPredictor_", 0) == 0 && (ends("/weights") || ends("/biases"))) {
      const std::string b = "box_" + std::to_string(num_after("Prediction/BoxPredictor_")) + "_";
      const std::string kind = name.find("BoxEncodingPredictor") != std::string::npos ? "box_" : "class_";
      return b + kind + (ends("/weights") ? "weight" : "bias");
    }
    if (name == "Output/extra_dim") return "priors";
    return "";
  };
  for (auto& [name, value] : read_tfjs_weights(manifest_path)) {
    // Graph constants: shapes, axes, and the preprocessor's scalars (x / 127.5 − 1, in forward).
    if (value.scalar_type() != torch::kFloat32 || name.rfind("Preprocessor/", 0) == 0) continue;
    const std::string k = key(name);
    if (k.empty()) throw FormatError(manifest_path + ": unexpected weight '" + name + "' for SSD MobileNet v1");
    auto t = value;
    if (k == "priors") {
      t = t.reshape({-1, 4});
    } else if (k.size() > 9 && k.compare(k.size() - 9, 9, "dw_weight") == 0) {
      t = t.permute({2, 3, 0, 1}).contiguous();  // [3,3,C,1] -> [C,1,3,3]
    } else if (t.dim() == 4) {
      t = t.permute({3, 2, 0, 1}).contiguous();  // HWIO -> OIHW
    }
    out[k] = t;
  }
  return out;
}

}  // namespace face2scene
