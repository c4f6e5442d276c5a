// The degradation-conditioned scene restorer (see scene_restorer.hpp).
#include "face2scene/scene_restorer.hpp"

#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"

namespace face2scene {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

CondAdapterImpl::CondAdapterImpl(int64_t ch, int64_t token_dim, int64_t h) : heads(h) {
  norm = register_module("norm", nn::GroupNorm(nn::GroupNormOptions(8, ch)));
  to_q = register_module("to_q", nn::Conv2d(nn::Conv2dOptions(ch, ch, 1)));
  to_kv = register_module("to_kv", nn::Linear(token_dim, 2 * ch));
  to_out = register_module("to_out", nn::Conv2d(nn::Conv2dOptions(ch, ch, 1)));
  film = register_module("film", nn::Linear(token_dim, 2 * ch));
  // Zero-initialised outputs: the adapter starts as the identity, so training begins from the
  // pretrained prior instead of from a perturbed one.
  torch::NoGradGuard ng;
  to_out->weight.zero_();
  to_out->bias.zero_();
  film->weight.zero_();
  film->bias.zero_();
}

std::pair<torch::Tensor, torch::Tensor> CondAdapterImpl::group_stats(const torch::Tensor& x) const {
  // In float32 whatever the compute dtype: these numbers are shared by every tile of an image.
  auto g = x.to(torch::kFloat32).reshape({x.size(0), norm->options.num_groups(), -1});
  auto mean = g.mean(2);
  auto var = (g - mean.unsqueeze(-1)).pow(2).mean(2);
  return {mean, var};
}

torch::Tensor CondAdapterImpl::forward(const torch::Tensor& x, const torch::Tensor& tokens, const torch::Tensor& mean_in,
                                       const torch::Tensor& var_in) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  torch::Tensor n, mean = mean_in, var = var_in;
  // On CUDA, GroupNorm's own statistics kernel gives each (image, group) row one thread block: 8
  // blocks for a photo, 13.6 ms a 512² photo on an H100 (docs/pipeline.md, "GPU speed"). The same
  // statistics as a plain reduction spread over the whole GPU; the formula below is GroupNorm's
  // (SceneRestorer.WholeImageStatisticsReproduceGroupNormAndStayPerImage).
  // Inference only: training keeps the fused kernel's memory footprint.
  if (!mean.defined() && x.is_cuda() && !torch::GradMode::is_enabled()) std::tie(mean, var) = group_stats(x);
  if (mean.defined()) {
    const int64_t groups = norm->options.num_groups();
    if (mean.sizes() != torch::IntArrayRef({b, groups}) || var.sizes() != mean.sizes()) {
      throw ArgumentError("CondAdapter: statistics must be [" + std::to_string(b) + "," + std::to_string(groups) +
                          "], got " + c10::str(mean.sizes()));
    }
    // GroupNorm's formula with the given statistics.
    auto g = x.to(torch::kFloat32).reshape({b, groups, -1});
    g = (g - mean.to(g.device()).unsqueeze(-1)) * torch::rsqrt(var.to(g.device()).unsqueeze(-1) + norm->options.eps());
    n = g.view({b, c, h, w}) * norm->weight.to(torch::kFloat32).view({1, c, 1, 1}) +
        norm->bias.to(torch::kFloat32).view({1, c, 1, 1});
    n = n.to(x.scalar_type());
  } else {
    n = norm(x);
  }
  auto q = to_q(n).flatten(2).transpose(1, 2);  // [B,HW,C]
  auto kv = to_kv(tokens).chunk(2, -1);               // [B,T,C] each
  auto a = multi_head_attention(q, kv[0], kv[1], heads).transpose(1, 2).reshape({b, c, h, w});
  auto y = x + to_out(a);
  auto gb = film(tokens.mean(1)).view({b, 2 * c, 1, 1}).chunk(2, 1);
  return y * (1 + gb[0]) + gb[1];
}

SceneRestorerImpl::SceneRestorerImpl(const SceneRestorerOptions& o) : options(o) {
  if (o.adapter_every < 1) throw ArgumentError("SceneRestorer: adapter_every must be >= 1");
  lora_down = register_module("lora_down", nn::ModuleList());
  lora_up = register_module("lora_up", nn::ModuleList());
  lora_gate = register_module("lora_gate", nn::ModuleList());
  adapters = register_module("adapters", nn::ModuleList());
  if (o.backbone == RealEsrganModel::kX4Plus) {
    build_rrdb();
  } else {
    build_srvgg();
  }
  stem_x1 = register_module("stem_x1", nn::Conv2d(nn::Conv2dOptions(3 * 16, o.num_feat, 3).padding(1)));
}

void SceneRestorerImpl::add_lora(int64_t in_channels, int64_t out_channels) {
  const auto& o = options;
  nn::Conv2d d(nn::Conv2dOptions(in_channels, o.lora_rank, 3).padding(1).bias(false));
  nn::Conv2d u(nn::Conv2dOptions(o.lora_rank, out_channels, 1).bias(false));
  nn::Linear g(o.token_dim, o.lora_rank);
  torch::NoGradGuard ng;
  u->weight.zero_();
  d->weight.mul_(0.5);
  g->weight.zero_();
  g->bias.zero_();
  lora_down->push_back(d);
  lora_up->push_back(u);
  lora_gate->push_back(g);
  downs_.push_back(d);
  ups_.push_back(u);
  gates_.push_back(g);
}

torch::Tensor SceneRestorerImpl::lora(size_t k, const torch::Tensor& in, const torch::Tensor& base_out,
                                      const torch::Tensor& mean_token) {
  auto gate = 1 + gates_[k]->forward(mean_token).view({in.size(0), options.lora_rank, 1, 1});
  return base_out + ups_[k]->forward(downs_[k]->forward(in) * gate);
}

void SceneRestorerImpl::build_srvgg() {
  const auto& o = options;
  if (o.num_conv % o.adapter_every != 0) {
    throw ArgumentError("SceneRestorer: num_conv must be a multiple of adapter_every");
  }
  SRVGGNetCompactOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_conv = o.num_conv;
  base = register_module("base", SRVGGNetCompact(bo));
  for (const auto& m : *base->body) {
    if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(m)) {
      convs_.emplace_back(c);
    } else if (auto p = std::dynamic_pointer_cast<nn::PReLUImpl>(m)) {
      prelus_.emplace_back(p);
    }
  }
  for (size_t i = 1; i < convs_.size(); ++i) add_lora(o.num_feat, convs_[i]->options.out_channels());
  for (int i = 0; i < o.num_conv / o.adapter_every; ++i) {
    CondAdapter a(o.num_feat, o.token_dim, o.heads);
    adapters->push_back(a);
    adapter_list_.push_back(a);
  }
}

nn::Conv2d SceneRestorerImpl::first_conv() const { return rrdb ? rrdb->conv_first : convs_[0]; }

std::vector<torch::Tensor> SceneRestorerImpl::base_parameters() const {
  return rrdb ? rrdb->parameters() : base->parameters();
}

void SceneRestorerImpl::load_base(const TensorMap& w, const std::string& source) {
  if (rrdb) {
    load_state_dict_strict(*rrdb, w, source);
  } else {
    load_state_dict_strict(*base, w, source);
  }
  torch::NoGradGuard ng;
  // pixel_unshuffle(4) puts channel c's 4x4 block at channels 16c..16c+15: spreading the base's
  // first-conv weights over them makes the ×1 path start as "box-downsample ×4, then the base".
  const auto first = first_conv();
  stem_x1->weight.copy_(first->weight.repeat_interleave(16, 1) / 16.0);  // [F,3,3,3] -> [F,48,3,3]
  stem_x1->bias.copy_(first->bias);
  for (auto& p : base_parameters()) p.set_requires_grad(false);
}

std::vector<torch::Tensor> SceneRestorerImpl::trainable_parameters() {
  std::vector<torch::Tensor> out;
  for (auto& kv : named_parameters()) {
    if (kv.key().rfind("base.", 0) != 0) out.push_back(kv.value());  // both backbones register as "base"
  }
  return out;
}

TensorMap SceneRestorerImpl::trainable_state() const {
  TensorMap out;
  for (auto& [k, v] : state_dict(*this)) {
    if (k.rfind("base.", 0) != 0) out[k] = v;
  }
  return out;
}

void SceneRestorerImpl::load_trainable_state(const TensorMap& tensors, const std::string& source,
                                             bool fill_missing_gates) {
  // Strict over the trainable part: add the current base values so load_state_dict_strict checks
  // everything else by name and shape.
  TensorMap all = tensors;
  if (fill_missing_gates) {
    for (auto& [k, v] : state_dict(*this)) {
      if (k.rfind("lora_gate.", 0) == 0 && !all.count(k)) all[k] = v;
    }
  }
  for (auto& [k, v] : state_dict(*this)) {
    if (k.rfind("base.", 0) == 0) {
      if (all.count(k)) throw FormatError(source + ": unexpected base weight '" + k + "' (the base is not shipped)");
      all[k] = v;
    }
  }
  load_state_dict_strict(*this, all, source);
}

void SceneRestorerImpl::check_inputs(const torch::Tensor& x, const torch::Tensor& tokens, int scale) const {
  if (x.dim() != 4 || x.size(1) != 3) throw ArgumentError("SceneRestorer: expected [B,3,H,W]");
  if (tokens.dim() != 3 || tokens.size(0) != x.size(0) || tokens.size(2) != options.token_dim) {
    throw ArgumentError("SceneRestorer: tokens must be [B,T," + std::to_string(options.token_dim) + "], got " +
                        c10::str(tokens.sizes()));
  }
  if (scale != 4 && scale != 1) throw ArgumentError("SceneRestorer: scale must be 4 or 1, got " + std::to_string(scale));
  if (scale == 1 && (x.size(2) % 4 || x.size(3) % 4)) {
    throw ArgumentError("SceneRestorer: ×1 needs sides that are multiples of 4");
  }
}

torch::Tensor SceneRestorerImpl::forward(const torch::Tensor& x, const torch::Tensor& tokens, int scale,
                                         const AdapterStats* stats) {
  check_inputs(x, tokens, scale);
  if (stats && (stats->mean.size() != adapter_list_.size() || stats->var.size() != adapter_list_.size())) {
    throw ArgumentError("SceneRestorer: statistics for " + std::to_string(stats->mean.size()) + " adapters, the network has " +
                        std::to_string(adapter_list_.size()));
  }
  StatsMode mode;
  mode.use = stats;
  return rrdb ? forward_rrdb(x, tokens, scale, mode) : forward_srvgg(x, tokens, scale, mode);
}

AdapterStats SceneRestorerImpl::adapter_stats(const torch::Tensor& x, const torch::Tensor& tokens, int scale) {
  check_inputs(x, tokens, scale);
  AdapterStats out;
  StatsMode mode;
  mode.record = &out;
  if (rrdb) {
    forward_rrdb(x, tokens, scale, mode);
  } else {
    forward_srvgg(x, tokens, scale, mode);
  }
  return out;
}

torch::Tensor SceneRestorerImpl::adapt(size_t k, const torch::Tensor& h, const torch::Tensor& tokens, const StatsMode& mode) {
  auto& a = adapter_list_[k];
  if (mode.record) {
    auto [mean, var] = a->group_stats(h);
    mode.record->mean.push_back(mean);
    mode.record->var.push_back(var);
    return a(h, tokens, mean, var);
  }
  if (mode.use) return a(h, tokens, mode.use->mean[k], mode.use->var[k]);
  return a(h, tokens);
}

torch::Tensor SceneRestorerImpl::forward_srvgg(const torch::Tensor& x, const torch::Tensor& tokens, int scale,
                                               const StatsMode& mode) {
  torch::Tensor h, skip;
  if (scale == 4) {
    h = convs_[0](x);
    skip = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{4.0, 4.0}).mode(torch::kNearest));
  } else {
    h = stem_x1(torch::pixel_unshuffle(x, 4));
    auto low = F::avg_pool2d(x, F::AvgPool2dFuncOptions(4));
    skip = F::interpolate(low, F::InterpolateFuncOptions().scale_factor(std::vector<double>{4.0, 4.0}).mode(torch::kNearest));
  }
  h = prelus_[0](h);
  const auto mean_token = tokens.mean(1);
  const size_t n = convs_.size();
  for (size_t i = 1; i < n; ++i) {
    h = lora(i - 1, h, convs_[i](h), mean_token);
    if (i + 1 < n) {
      h = prelus_[i](h);
      if (i % size_t(options.adapter_every) == 0) {
        const size_t k = i / size_t(options.adapter_every) - 1;
        h = adapt(k, h, tokens, mode);
        if (mode.record && k + 1 == adapter_list_.size()) return {};  // all statistics taken
      }
    }
  }
  return torch::pixel_shuffle(h, 4) + skip;
}

}  // namespace face2scene
