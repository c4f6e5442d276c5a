// Files of the oracle core: FaDeX and the conditioned scene restorer (with its MapNet).
#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/scene_restorer.hpp"

namespace face2scene {
namespace {
constexpr const char* kFaDeXArch = "face2scene-fadex";
constexpr const char* kRestorerArch = "face2scene-scene-restorer";
constexpr const char* kParamEncoderArch = "face2scene-param-encoder";
constexpr const char* kVersion = "1";

// The tail of every single-network load: strict weights, then device and eval mode.
template <typename Net>
Net finish_load(Net net, const SafeTensors& st, const std::string& path, const torch::Device& device) {
  load_state_dict_strict(*net, st.tensors, path);
  net->to(device);
  net->eval();
  return net;
}

TensorMap with_prefix(const TensorMap& in, const std::string& prefix, torch::Dtype dtype) {
  TensorMap out;
  for (const auto& [k, v] : in) {
    auto t = v.detach().to(torch::kCPU).contiguous();
    if (t.is_floating_point()) t = t.to(dtype);
    out[prefix + k] = t;
  }
  return out;
}

TensorMap strip_prefix(const TensorMap& in, const std::string& prefix) {
  TensorMap out;
  for (const auto& [k, v] : in) {
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  }
  return out;
}
}  // namespace

void save_fadex(const std::string& path, FaDeX& net, torch::Dtype dtype) {
  const auto& o = net->options;
  Metadata meta{{"arch", kFaDeXArch},
                {"version", kVersion},
                {"in_size", std::to_string(o.in_size)},
                {"width", std::to_string(o.width)},
                {"max_width", std::to_string(o.max_width)},
                {"code_dim", std::to_string(o.code_dim)},
                {"code_grid", std::to_string(o.code_grid)},
                {"param_dim", std::to_string(o.param_dim)},
                {"lq_geometry", o.lq_geometry}};
  // The normaliser buffers stay float32: they turn the regression back into physical units.
  TensorMap t = with_prefix(state_dict(*net), "", dtype);
  t["param_mean"] = net->param_mean.detach().cpu().to(torch::kFloat32).contiguous();
  t["param_std"] = net->param_std.detach().cpu().to(torch::kFloat32).contiguous();
  save_safetensors(path, t, meta);
}

FaDeX load_fadex(const std::string& path, const torch::Device& device) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kFaDeXArch, path);
  FaDeXOptions o;
  o.in_size = metadata_int(st.metadata, "in_size", path);
  o.width = metadata_int(st.metadata, "width", path);
  o.max_width = metadata_int(st.metadata, "max_width", path);
  o.code_dim = metadata_int(st.metadata, "code_dim", path);
  o.code_grid = metadata_int(st.metadata, "code_grid", path);
  o.param_dim = metadata_int(st.metadata, "param_dim", path);
  // Files written before face-size training have no key: they read fixed-size cuts.
  const auto geometry = st.metadata.find("lq_geometry");
  if (geometry != st.metadata.end()) o.lq_geometry = geometry->second;
  if (o.lq_geometry != "fixed" && o.lq_geometry != "native") {
    throw FormatError(path + ": metadata lq_geometry '" + o.lq_geometry + "' is neither 'fixed' nor 'native'");
  }
  return finish_load(FaDeX(o), st, path, device);
}

void save_restorer(const std::string& path, SceneRestorer& net, MapNet& mapnet, bool blind, torch::Dtype dtype,
                   const Metadata& extra) {
  const auto& o = net->options;
  const auto& m = mapnet->options;
  const bool x4plus = o.backbone == RealEsrganModel::kX4Plus;
  Metadata meta{{"arch", kRestorerArch},
                {"version", kVersion},
                {"backbone", model_name(o.backbone)},
                {"base", weights_filename(o.backbone) + " (" + model_arch(o.backbone) + "), not included"},
                {"blind", blind ? "1" : "0"},
                {"num_feat", std::to_string(o.num_feat)},
                {x4plus ? "num_block" : "num_conv", std::to_string(x4plus ? o.num_block : o.num_conv)},
                {"token_dim", std::to_string(o.token_dim)},
                {"adapter_every", std::to_string(o.adapter_every)},
                {"heads", std::to_string(o.heads)},
                {"lora_rank", std::to_string(o.lora_rank)},
                {"code_dim", std::to_string(m.code_dim)},
                {"embed_dim", std::to_string(m.embed_dim)},
                {"mapnet_heads", std::to_string(m.heads)}};
  if (x4plus) meta["num_grow_ch"] = std::to_string(o.num_grow_ch);
  for (const auto& [k, v] : extra) {
    if (meta.count(k)) throw ArgumentError("save_restorer: extra metadata may not replace '" + k + "'");
    meta[k] = v;
  }
  TensorMap t = with_prefix(net->trainable_state(), "restorer.", dtype);
  for (auto& [k, v] : with_prefix(state_dict(*mapnet), "mapnet.", dtype)) t[k] = v;
  save_safetensors(path, t, meta);
}

namespace {
RealEsrganModel backbone_of(const SafeTensors& st, const std::string& path) {
  auto it = st.metadata.find("backbone");
  if (it == st.metadata.end()) return RealEsrganModel::kGeneralX4V3;  // files from before x4plus
  try {
    return parse_realesrgan_model(it->second);
  } catch (const Error&) {
    throw FormatError(path + ": unknown backbone '" + it->second + "' in the metadata");
  }
}
}  // namespace

RealEsrganModel restorer_backbone(const std::string& path) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kRestorerArch, path);
  return backbone_of(st, path);
}

LoadedRestorer load_restorer(const std::string& path, const std::string& base_weights, const torch::Device& device,
                             bool fill_missing_gates) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kRestorerArch, path);
  SceneRestorerOptions o;
  o.backbone = backbone_of(st, path);
  o.num_feat = int(metadata_int(st.metadata, "num_feat", path));
  if (o.backbone == RealEsrganModel::kX4Plus) {
    o.num_block = int(metadata_int(st.metadata, "num_block", path));
    o.num_grow_ch = int(metadata_int(st.metadata, "num_grow_ch", path));
  } else {
    o.num_conv = int(metadata_int(st.metadata, "num_conv", path));
  }
  o.token_dim = metadata_int(st.metadata, "token_dim", path);
  o.adapter_every = int(metadata_int(st.metadata, "adapter_every", path));
  o.heads = metadata_int(st.metadata, "heads", path);
  o.lora_rank = metadata_int(st.metadata, "lora_rank", path);
  MapNetOptions mo;
  mo.code_dim = metadata_int(st.metadata, "code_dim", path);
  mo.embed_dim = metadata_int(st.metadata, "embed_dim", path);
  mo.heads = metadata_int(st.metadata, "mapnet_heads", path);
  mo.token_dim = o.token_dim;
  LoadedRestorer r;
  r.net = SceneRestorer(o);
  r.mapnet = MapNet(mo);
  const std::string base_path = base_weights.empty() ? realesrgan_weights_path(o.backbone) : base_weights;
  if (!file_exists(base_path)) {
    throw IoError(base_path + " not found (the " + model_name(o.backbone) + " base of " + path +
                  "): run scripts/install_models.sh");
  }
  const SafeTensors base = load_safetensors(base_path);
  check_arch(base, model_arch(o.backbone), base_path);
  r.net->load_base(base.tensors, base_path);
  for (const auto& [k, v] : st.tensors) {
    if (k.rfind("restorer.", 0) != 0 && k.rfind("mapnet.", 0) != 0) {
      throw FormatError(path + ": unexpected tensor '" + k + "' (expected restorer.* or mapnet.*)");
    }
  }
  r.net->load_trainable_state(strip_prefix(st.tensors, "restorer."), path, fill_missing_gates);
  load_state_dict_strict(*r.mapnet, strip_prefix(st.tensors, "mapnet."), path);
  r.blind = st.metadata.count("blind") && st.metadata.at("blind") == "1";
  r.net->to(device);
  r.mapnet->to(device);
  r.net->eval();
  r.mapnet->eval();
  return r;
}

void save_param_encoder(const std::string& path, ParamEncoder& net) {
  const auto& o = net->options;
  Metadata meta{{"arch", kParamEncoderArch},
                {"version", kVersion},
                {"param_dim", std::to_string(o.param_dim)},
                {"hidden", std::to_string(o.hidden)},
                {"code_dim", std::to_string(o.code_dim)},
                {"code_grid", std::to_string(o.code_grid)}};
  save_safetensors(path, with_prefix(state_dict(*net), "", torch::kFloat32), meta);
}

ParamEncoder load_param_encoder(const std::string& path, const torch::Device& device) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kParamEncoderArch, path);
  ParamEncoderOptions o;
  o.param_dim = metadata_int(st.metadata, "param_dim", path);
  o.hidden = metadata_int(st.metadata, "hidden", path);
  o.code_dim = metadata_int(st.metadata, "code_dim", path);
  o.code_grid = metadata_int(st.metadata, "code_grid", path);
  return finish_load(ParamEncoder(o), st, path, device);
}

namespace {
// The architecture a loaded restorer was built with, as comparable text.
std::string restorer_signature(const LoadedRestorer& r) {
  const auto& o = r.net->options;
  const auto& m = r.mapnet->options;
  return model_name(o.backbone) + " feat " + std::to_string(o.num_feat) + " conv " + std::to_string(o.num_conv) +
         " block " + std::to_string(o.num_block) + " grow " + std::to_string(o.num_grow_ch) + " token " +
         std::to_string(o.token_dim) + " adapter_every " + std::to_string(o.adapter_every) + " heads " +
         std::to_string(o.heads) + " rank " + std::to_string(o.lora_rank) + " code " + std::to_string(m.code_dim) +
         " embed " + std::to_string(m.embed_dim) + " mapnet_heads " + std::to_string(m.heads);
}
}  // namespace

void interpolate_restorer(LoadedRestorer& l1, const LoadedRestorer& gan, double realism, const std::string& what) {
  if (!(realism >= 0.0 && realism <= 1.0)) {
    throw ArgumentError(what + ": realism must be in [0, 1], not " + std::to_string(realism));
  }
  if (l1.blind != gan.blind) throw ArgumentError(what + ": one restorer is the blind twin, the other is not");
  if (restorer_signature(l1) != restorer_signature(gan)) {
    throw ArgumentError(what + ": the two restorers differ in architecture (" + restorer_signature(l1) + " vs " +
                        restorer_signature(gan) + ")");
  }
  if (realism == 0.0) return;
  torch::NoGradGuard ng;
  auto blend = [&](torch::nn::Module& a, const torch::nn::Module& b, const std::string& part) {
    auto pa = a.named_parameters(true), pb = b.named_parameters(true);
    auto ba = a.named_buffers(true), bb = b.named_buffers(true);
    for (auto* pair : {&pa, &ba}) {
      const auto& other = pair == &pa ? pb : bb;
      for (auto& item : *pair) {
        const torch::Tensor* t = other.find(item.key());
        if (!t || t->sizes() != item.value().sizes()) {
          throw ArgumentError(what + ": " + part + "." + item.key() + " has no counterpart of the same shape");
        }
        // The frozen base is the same Real-ESRGAN in both: left as loaded (no rounding).
        if (item.key().rfind("base.", 0) == 0) continue;
        auto x = item.value();
        if (!x.is_floating_point()) continue;
        x.copy_(realism == 1.0 ? t->to(x.device(), x.scalar_type())
                               : x * (1.0 - realism) + t->to(x.device(), x.scalar_type()) * realism);
      }
    }
  };
  blend(*l1.net, *gan.net, "restorer");
  blend(*l1.mapnet, *gan.mapnet, "mapnet");
}

LoadedRestorer load_restorer_realism(const std::string& l1_path, const std::string& gan_path, double realism,
                                     const std::string& base_weights, const torch::Device& device) {
  const std::string what = l1_path + " ~ " + gan_path;
  if (!(realism >= 0.0 && realism <= 1.0)) {
    throw ArgumentError(what + ": realism must be in [0, 1], not " + std::to_string(realism));
  }
  if (realism == 0.0) return load_restorer(l1_path, base_weights, device);
  if (!file_exists(gan_path)) {
    throw IoError(gan_path + ": not found (realism > 0 needs the GAN-trained restorer; realism 0 uses " + l1_path + ")");
  }
  if (realism == 1.0) return load_restorer(gan_path, base_weights, device);
  LoadedRestorer l1 = load_restorer(l1_path, base_weights, device);
  const LoadedRestorer gan = load_restorer(gan_path, base_weights, device);
  interpolate_restorer(l1, gan, realism, what);
  return l1;
}

}  // namespace face2scene
