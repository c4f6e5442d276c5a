// Real-ESRGAN model names, the weights cache, and the strict import from upscayl's ncnn graphs.
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"

namespace face2scene {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  return o.str() + "]";
}

// One Convolution of the graph and what the module expects of it.
struct ConvSlot {
  std::string name;  // parameter prefix, e.g. "body.0.rdb1.conv1"
  bool leaky = false;
};

std::vector<ConvSlot> rrdbnet_slots(const RRDBNetOptions& o) {
  std::vector<ConvSlot> s{{"conv_first", false}};
  for (int b = 0; b < o.num_block; ++b) {
    for (int r = 1; r <= 3; ++r) {
      for (int c = 1; c <= 5; ++c) {
        s.push_back({"body." + std::to_string(b) + ".rdb" + std::to_string(r) + ".conv" + std::to_string(c), c < 5});
      }
    }
  }
  for (const auto& t : {ConvSlot{"conv_body", false}, ConvSlot{"conv_up1", true}, ConvSlot{"conv_up2", true},
                        ConvSlot{"conv_hr", true}, ConvSlot{"conv_last", false}}) {
    s.push_back(t);
  }
  return s;
}

void put(TensorMap& out, const TensorMap& expected, const std::string& key, const torch::Tensor& value,
         const ncnn::Layer& layer, const std::string& source) {
  auto it = expected.find(key);
  if (it == expected.end()) {
    throw FormatError(source + ": ncnn layer '" + layer.name + "' maps to '" + key + "', which the module lacks");
  }
  if (!value.defined() || it->second.sizes() != value.sizes()) {
    throw FormatError(source + ": ncnn layer '" + layer.name + "' (line " + std::to_string(layer.line) + ") gives " +
                      key + " shape " + (value.defined() ? shape_str(value.sizes()) : "none") + ", module expects " +
                      shape_str(it->second.sizes()));
  }
  out[key] = value.clone();
}

void check_activation(const ncnn::Layer& l, bool leaky, const std::string& param, const std::string& source) {
  const int act = l.get_int(9, 0);
  const auto a = l.get_array(10);
  const bool is_leaky = act == 2 && a.size() == 1 && std::abs(a[0] - 0.2f) < 1e-6f;
  if (leaky != is_leaky || (!leaky && act != 0)) {
    throw FormatError(source + ": ncnn layer '" + l.name + "' (line " + std::to_string(l.line) + ", for " + param +
                      ") has activation type " + std::to_string(act) + "; expected " +
                      (leaky ? "LeakyReLU 0.2" : "none"));
  }
}

void expect_count(const ncnn::Model& g, const std::string& type, size_t n, const std::string& why) {
  const size_t have = g.layers_of_type(type).size();
  if (have != n) {
    throw FormatError(g.source + ": has " + std::to_string(have) + " " + type + " layers, expected " + std::to_string(n) +
                      " (" + why + ")");
  }
}

void check_nearest(const ncnn::Model& g, double scale) {
  for (const auto* l : g.layers_of_type("Interp")) {
    if (l->get_int(0, 0) != 1 || std::abs(l->get_float(1, 0) - scale) > 1e-6 || std::abs(l->get_float(2, 0) - scale) > 1e-6) {
      throw FormatError(g.source + ": Interp layer '" + l->name + "' is not a nearest ×" + std::to_string(scale) +
                        " upsampling");
    }
  }
}

TensorMap import_rrdbnet(const ncnn::Model& g) {
  RRDBNetOptions o;
  RRDBNet net(o);
  const TensorMap expected = state_dict(*net);
  const auto slots = rrdbnet_slots(o);
  const auto convs = g.layers_of_type("Convolution");
  if (convs.size() != slots.size()) {
    throw FormatError(g.source + ": has " + std::to_string(convs.size()) + " Convolution layers, RRDBNet (" +
                      std::to_string(o.num_block) + " blocks) needs " + std::to_string(slots.size()));
  }
  expect_count(g, "Eltwise", size_t(o.num_block) * 4, "RDB and RRDB residuals");
  for (const auto* e : g.layers_of_type("Eltwise")) {
    const auto c = e->get_array(1);
    if (e->get_int(0, -1) != 1 || c.size() != 2 || std::abs(c[0] - 0.2f) > 1e-6f || std::abs(c[1] - 1.f) > 1e-6f) {
      throw FormatError(g.source + ": Eltwise layer '" + e->name + "' is not the residual sum 0.2*x + skip");
    }
  }
  expect_count(g, "Interp", 2, "two nearest ×2 upsamplings");
  check_nearest(g, 2.0);
  TensorMap out;
  for (size_t i = 0; i < slots.size(); ++i) {
    check_activation(*convs[i], slots[i].leaky, slots[i].name, g.source);
    put(out, expected, slots[i].name + ".weight", ncnn::conv_weight(*convs[i]), *convs[i], g.source);
    put(out, expected, slots[i].name + ".bias", ncnn::conv_bias(*convs[i]), *convs[i], g.source);
  }
  return out;
}

TensorMap import_srvgg(const ncnn::Model& g) {
  SRVGGNetCompactOptions o;
  SRVGGNetCompact net(o);
  const TensorMap expected = state_dict(*net);
  expect_count(g, "Convolution", size_t(o.num_conv) + 2, "SRVGGNetCompact convolutions");
  expect_count(g, "PReLU", size_t(o.num_conv) + 1, "SRVGGNetCompact activations");
  expect_count(g, "PixelShuffle", 1, "the ×4 pixel shuffle");
  expect_count(g, "Interp", 1, "the nearest-upsampled input added at the end");
  check_nearest(g, o.upscale);
  if (g.layers_of_type("PixelShuffle")[0]->get_int(0, 0) != o.upscale) {
    throw FormatError(g.source + ": PixelShuffle factor is not " + std::to_string(o.upscale));
  }
  TensorMap out;
  int index = 0;
  for (const auto& l : g.layers) {
    if (l.type != "Convolution" && l.type != "PReLU") continue;
    const std::string key = "body." + std::to_string(index);
    const bool want_conv = index % 2 == 0;
    if ((l.type == "Convolution") != want_conv) {
      throw FormatError(g.source + ": ncnn layer '" + l.name + "' is a " + l.type + " where " + key + " needs a " +
                        (want_conv ? "Convolution" : "PReLU"));
    }
    if (want_conv) {
      check_activation(l, false, key, g.source);
      put(out, expected, key + ".weight", ncnn::conv_weight(l), l, g.source);
      put(out, expected, key + ".bias", ncnn::conv_bias(l), l, g.source);
    } else {
      put(out, expected, key + ".weight", l.weights.empty() ? torch::Tensor() : l.weights[0].data, l, g.source);
    }
    ++index;
  }
  return out;
}

}  // namespace

RealEsrganModel parse_realesrgan_model(const std::string& name) {
  if (name == "x4plus" || name == "realesrgan-x4plus" || name == "RealESRGAN_x4plus") return RealEsrganModel::kX4Plus;
  if (name == "general-x4v3" || name == "x4fast" || name == "realesrgan-x4fast" || name == "realesr-general-x4v3") {
    return RealEsrganModel::kGeneralX4V3;
  }
  throw ArgumentError("unknown Real-ESRGAN model '" + name + "' (use x4plus or general-x4v3)");
}

std::string model_name(RealEsrganModel m) { return m == RealEsrganModel::kX4Plus ? "x4plus" : "general-x4v3"; }
std::string model_arch(RealEsrganModel m) {
  return m == RealEsrganModel::kX4Plus ? "RRDBNet" : "SRVGGNetCompact";
}
std::string ncnn_basename(RealEsrganModel m) {
  return m == RealEsrganModel::kX4Plus ? "realesrgan-x4plus" : "realesrgan-x4fast";
}
std::string weights_filename(RealEsrganModel m) {
  return m == RealEsrganModel::kX4Plus ? "realesrgan-x4plus.safetensors" : "realesr-general-x4v3.safetensors";
}

std::string cache_dir() {
  if (const char* c = std::getenv("F2S_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/face2scene";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/face2scene";
}

std::string realesrgan_weights_path(RealEsrganModel m) {
  if (const char* w = std::getenv("F2S_WEIGHTS_DIR"); w && *w) return std::string(w) + "/" + weights_filename(m);
  return cache_dir() + "/weights/" + weights_filename(m);
}

TensorMap import_realesrgan_ncnn(RealEsrganModel m, const ncnn::Model& graph) {
  return m == RealEsrganModel::kX4Plus ? import_rrdbnet(graph) : import_srvgg(graph);
}

torch::nn::AnyModule load_realesrgan(RealEsrganModel m, const std::string& path) {
  if (!file_exists(path)) {
    throw IoError(path + ": Real-ESRGAN " + model_name(m) +
                  " weights missing; run scripts/install_models.sh (or face2scene import-weights)");
  }
  const SafeTensors st = load_safetensors(path);
  check_arch(st, model_arch(m), path);
  if (m == RealEsrganModel::kX4Plus) {
    RRDBNet net;
    load_state_dict_strict(*net, st.tensors, path);
    return torch::nn::AnyModule(net);
  }
  SRVGGNetCompact net;
  load_state_dict_strict(*net, st.tensors, path);
  return torch::nn::AnyModule(net);
}

}  // namespace face2scene
