// Ref-FR (include/face2scene/ref_fr.hpp): the U-Net, the shared reference encoder and the gated
// cross-attention fusion; the spectrally normalised PatchGAN critic of its training; its files.
#include "face2scene/ref_fr.hpp"

#include <cmath>
#include <set>

#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"  // multi_head_attention

namespace face2scene {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
constexpr const char* kVersion = "2";  // 2: aligned reference paths

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}

// Residual block without normalisation: the degraded face's own statistics (noise, contrast) are
// information the decoder needs, and batch statistics would mix faces of different degradations.
struct FaceResBlockImpl : nn::Module {
  explicit FaceResBlockImpl(int64_t ch) {
    conv1 = register_module("conv1", conv(ch, ch, 3));
    conv2 = register_module("conv2", conv(ch, ch, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return x + conv2(torch::leaky_relu(conv1(x), 0.2)); }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(FaceResBlock);

nn::Sequential blocks(int64_t ch, int n) {
  nn::Sequential s;
  for (int i = 0; i < n; ++i) s->push_back(FaceResBlock(ch));
  return s;
}

torch::Tensor lrelu(const torch::Tensor& x) { return torch::leaky_relu(x, 0.2); }

torch::Tensor upsample2(const torch::Tensor& x) {
  return F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
}

// [h*w, 4F] sinusoids of the pixel centres' coordinates in [0,1] (same frame for every face size).
torch::Tensor position_features(int64_t h, int64_t w, int64_t freqs, const torch::TensorOptions& to) {
  auto ys = (torch::arange(h, to) + 0.5) / double(h);
  auto xs = (torch::arange(w, to) + 0.5) / double(w);
  auto grid = torch::meshgrid({ys, xs}, "ij");
  auto y = grid[0].reshape({-1, 1}), x = grid[1].reshape({-1, 1});
  auto f = torch::pow(2.0, torch::arange(freqs, to)).reshape({1, -1}) * M_PI;
  return torch::cat({torch::sin(x * f), torch::cos(x * f), torch::sin(y * f), torch::cos(y * f)}, 1);
}

}  // namespace

// ---- fusion ---------------------------------------------------------------------------------
RefFusionImpl::RefFusionImpl(int64_t c, int64_t heads_, int64_t null_tokens, int64_t freqs, int64_t gate_kernel)
    : heads(heads_), pos_freqs(freqs) {
  norm_q = register_module("norm_q", nn::LayerNorm(nn::LayerNormOptions({c})));
  norm_k = register_module("norm_k", nn::LayerNorm(nn::LayerNormOptions({c})));
  pos_q = register_module("pos_q", nn::Linear(4 * freqs, c));
  pos_k = register_module("pos_k", nn::Linear(4 * freqs, c));
  to_q = register_module("to_q", nn::Linear(c, c));
  to_k = register_module("to_k", nn::Linear(c, c));
  to_v = register_module("to_v", nn::Linear(c, c));
  to_out = register_module("to_out", nn::Linear(c, c));
  // 3x3 (at 32²) lets the gate see a neighbourhood: a reference feature that lands on the wrong
  // place (pose, expression) disagrees with its neighbours and is turned down. At 16² a 1x1 gate
  // keeps the parameter count near 4 M.
  gate = register_module("gate", conv(2 * c, c, gate_kernel));
  null_k = register_parameter("null_k", torch::randn({null_tokens, c}) * 0.02);
  null_v = register_parameter("null_v", torch::randn({null_tokens, c}) * 0.02);
  {
    torch::NoGradGuard ng;
    gate->weight.mul_(0.1);
    gate->bias.fill_(-1.0);  // start mostly closed: the U-Net first learns to restore on its own
  }
}

torch::Tensor RefFusionImpl::forward(const torch::Tensor& f, const torch::Tensor& refs) {
  const int64_t b = f.size(0), c = f.size(1), h = f.size(2), w = f.size(3);
  auto to = f.options();
  auto q_tokens = f.flatten(2).transpose(1, 2);  // [B,hw,C]
  auto pos = position_features(h, w, pos_freqs, to);
  auto q = to_q(norm_q(q_tokens) + pos_q(pos));
  auto keys = null_k.unsqueeze(0).expand({b, -1, -1});
  auto values = null_v.unsqueeze(0).expand({b, -1, -1});
  if (refs.defined() && refs.size(1) > 0) {
    const int64_t r = refs.size(1), hr = refs.size(3), wr = refs.size(4);
    auto rt = refs.permute({0, 1, 3, 4, 2}).reshape({b, r * hr * wr, c});  // [B,R*hr*wr,C]
    // AdaIN's first moment: the references' per-channel means are replaced by the degraded
    // face's, so colour and light come from the face. Their spread is kept: a badly degraded
    // face's features have little contrast, and matching it would erase exactly the detail the
    // references are there to give (with full AdaIN the references were worth nothing after
    // 4.9 k training steps: docs/ref_fr.md).
    rt = rt - rt.mean(1, true) + q_tokens.mean(1, true);
    auto rpos = pos_k(position_features(hr, wr, pos_freqs, to)).repeat({r, 1});  // [R*hr*wr,C]
    keys = torch::cat({keys, to_k(norm_k(rt) + rpos)}, 1);
    values = torch::cat({values, to_v(rt)}, 1);
  }
  auto a = to_out(multi_head_attention(q, keys, values, heads));  // [B,hw,C]
  a = a.transpose(1, 2).reshape({b, c, h, w});
  auto g = torch::sigmoid(gate(torch::cat({f, a}, 1)));
  return f + g * (a - f);
}

AlignedRefFusionImpl::AlignedRefFusionImpl(int64_t c, int64_t rc) {
  proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(rc, c, 1).bias(false)));
  gate = register_module("gate", conv(2 * c, c, 3));
  torch::NoGradGuard ng;
  proj->weight.zero_();
  gate->weight.mul_(0.1);
}

torch::Tensor AlignedRefFusionImpl::forward(const torch::Tensor& f, const torch::Tensor& refs) {
  if (!refs.defined() || refs.size(1) == 0) return f;
  auto r = refs - refs.mean({3, 4}, true);  // structure only: each reference's channel means removed
  auto a = proj(r.mean(1));
  return f + torch::sigmoid(gate(torch::cat({f, a}, 1))) * a;
}

// ---- Ref-FR ---------------------------------------------------------------------------------
RefFRImpl::RefFRImpl(const RefFROptions& o) : options(o) {
  if (o.size % 32 != 0 || o.size < 32) throw ArgumentError("RefFR: size must be a positive multiple of 32");
  const int64_t w1 = o.width, w2 = 2 * o.width, w3 = 4 * o.width;
  const int64_t r1 = o.ref_width, r2 = 2 * o.ref_width, r3 = 4 * o.ref_width;
  // The face enters pixel-unshuffled (S/2, 12 channels): full-resolution convolutions would cost
  // most of the budget for little gain on a face this size; the output is pixel-shuffled back.
  in_conv = register_module("in_conv", conv(12, w1, 3));
  enc64 = register_module("enc64", blocks(w1, 1));
  down1 = register_module("down1", conv(w1, w2, 3, 2));
  enc32 = register_module("enc32", blocks(w2, 2));
  down2 = register_module("down2", conv(w2, w3, 3, 2));
  enc16 = register_module("enc16", blocks(w3, 1));
  up16 = register_module("up16", conv(w3, w2, 1));
  merge32 = register_module("merge32", conv(2 * w2, w2, 3));
  dec32 = register_module("dec32", blocks(w2, 1));
  up32 = register_module("up32", conv(w2, w1, 1));
  merge64 = register_module("merge64", conv(2 * w1, w1, 3));
  dec64 = register_module("dec64", blocks(w1, 1));
  out_conv = register_module("out_conv", conv(w1, 12, 3));
  {
    torch::NoGradGuard ng;  // residual starts at zero: an untrained Ref-FR returns its input
    out_conv->weight.zero_();
    out_conv->bias.zero_();
  }
  ref_in = register_module("ref_in", conv(12, r1, 3));
  ref_down1 = register_module("ref_down1", conv(r1, r2, 3, 2));
  ref32 = register_module("ref32", blocks(r2, 1));
  ref_down2 = register_module("ref_down2", conv(r2, r3, 3, 2));
  ref16 = register_module("ref16", blocks(r3, 1));
  fuse32 = register_module("fuse32", RefFusion(w2, o.heads, o.null_tokens, o.pos_freqs, 3));
  fuse16 = register_module("fuse16", RefFusion(w3, o.heads, o.null_tokens, o.pos_freqs, 1));
  // 1x1 projections of the reference features to the face's widths (the fusion mixes them with
  // the face's features and replaces their means with the face's).
  ref_proj32 = register_module("ref_proj32", conv(r2, w2, 1));
  ref_proj16 = register_module("ref_proj16", conv(r3, w3, 1));
  if (o.aligned_levels != 0 && o.aligned_levels != 2)
    throw ArgumentError("RefFR: aligned_levels must be 0 or 2");
  if (o.aligned_levels == 2) {
    align64 = register_module("align64", AlignedRefFusion(w1, r1));
    align32 = register_module("align32", AlignedRefFusion(w2, r2));
  }
}

int64_t RefFRImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

RefFeatures RefFeatures::expand(int64_t batch) const {
  RefFeatures out;
  for (auto [dst, src] : {std::pair{&out.f32, &f32}, {&out.f16, &f16}, {&out.a64, &a64}, {&out.a32, &a32}}) {
    if (!src->defined()) continue;
    if (src->size(0) != 1) throw ArgumentError("RefFeatures::expand: features of one item expected");
    std::vector<int64_t> sizes = src->sizes().vec();
    sizes[0] = batch;
    *dst = src->expand(sizes);
  }
  return out;
}

namespace {
int64_t conv_macs(const nn::Conv2d& c, int64_t out_side) {
  const auto& o = c->options;
  return out_side * out_side * o.in_channels() / o.groups() * o.out_channels() * (*o.kernel_size())[0] *
         (*o.kernel_size())[1];
}
int64_t seq_macs(const nn::Sequential& s, int64_t side) {
  int64_t n = 0;
  for (const auto& m : s->children())
    for (const auto& c : m->children())
      if (auto conv = std::dynamic_pointer_cast<nn::Conv2dImpl>(c)) n += conv_macs(nn::Conv2d(conv), side);
  return n;
}
// Queries of side² tokens over null + refs × 16² keys of width C, with projections and the gate.
int64_t fusion_macs(const RefFusion& f, int64_t side, int64_t key_tokens) {
  const int64_t c = f->to_q->options.in_features(), q = side * side, pos = f->pos_q->options.in_features();
  return q * (c * c * 2 + pos * c) + key_tokens * (c * c * 2 + pos * c) + 2 * q * key_tokens * c +
         conv_macs(f->gate, side);
}
}  // namespace

int64_t RefFRImpl::macs(int64_t refs, bool encode) const {
  const int64_t s1 = options.size / 2, s2 = s1 / 2, s3 = s2 / 2;
  int64_t n = conv_macs(in_conv, s1) + seq_macs(enc64, s1) + conv_macs(down1, s2) + seq_macs(enc32, s2) +
              conv_macs(down2, s3) + seq_macs(enc16, s3) + conv_macs(up16, s3) + conv_macs(merge32, s2) +
              seq_macs(dec32, s2) + conv_macs(up32, s2) + conv_macs(merge64, s1) + seq_macs(dec64, s1) +
              conv_macs(out_conv, s1);
  const int64_t keys = options.null_tokens + refs * s3 * s3;
  n += fusion_macs(fuse32, s2, keys) + fusion_macs(fuse16, s3, keys);
  if (refs > 0 && encode)
    n += refs * (conv_macs(ref_in, s1) + conv_macs(ref_down1, s2) + seq_macs(ref32, s2) + conv_macs(ref_down2, s3) +
                 seq_macs(ref16, s3) + conv_macs(ref_proj32, s3) + conv_macs(ref_proj16, s3));
  if (refs > 0 && align64)
    n += conv_macs(align64->proj, s1) + conv_macs(align64->gate, s1) + conv_macs(align32->proj, s2) +
         conv_macs(align32->gate, s2);
  return n;
}

RefFeatures RefFRImpl::encode_refs(const torch::Tensor& refs, int64_t batch) {
  RefFeatures out;
  if (!refs.defined() || refs.size(1) == 0) return out;
  if (refs.dim() != 5 || refs.size(0) != batch || refs.size(2) != 3 || refs.size(3) != options.size ||
      refs.size(4) != options.size)
    throw ArgumentError("RefFR: references must be [B,R,3," + std::to_string(options.size) + "," +
                        std::to_string(options.size) + "] with B = " + std::to_string(batch));
  const int64_t r = refs.size(1);
  if (r > options.max_refs)
    throw ArgumentError("RefFR: " + std::to_string(r) + " references, at most " + std::to_string(options.max_refs));
  auto x = F::pixel_unshuffle(refs.reshape({batch * r, 3, options.size, options.size}) * 2 - 1, 2);
  auto f = lrelu(ref_in(x));
  auto f32 = ref32->forward(lrelu(ref_down1(f)));
  auto f16 = ref16->forward(lrelu(ref_down2(f32)));
  // At the 32² level the keys are pooled to 16²: attention cost grows with the key count, and
  // identity is carried by structure coarser than 4 px of a 128² face.
  auto p32 = ref_proj32(F::avg_pool2d(f32, F::AvgPool2dFuncOptions(2)));
  auto p16 = ref_proj16(f16);
  auto unflat = [&](const torch::Tensor& t) { return t.reshape({batch, r, t.size(1), t.size(2), t.size(3)}); };
  out.f32 = unflat(p32);
  out.f16 = unflat(p16);
  if (options.aligned_levels == 2) {
    out.a64 = unflat(f);
    out.a32 = unflat(f32);
  }
  return out;
}

torch::Tensor RefFRImpl::forward(const torch::Tensor& lq, const RefFeatures& refs) {
  if (lq.dim() != 4 || lq.size(1) != 3 || lq.size(2) != options.size || lq.size(3) != options.size)
    throw ArgumentError("RefFR: input must be [B,3," + std::to_string(options.size) + "," +
                        std::to_string(options.size) + "]");
  auto x = F::pixel_unshuffle(lq * 2 - 1, 2);
  auto e64 = enc64->forward(lrelu(in_conv(x)));
  if (align64) e64 = align64(e64, refs.a64);
  auto e32 = enc32->forward(lrelu(down1(e64)));
  if (align32) e32 = align32(e32, refs.a32);
  e32 = fuse32(e32, refs.f32);
  auto e16 = fuse16(enc16->forward(lrelu(down2(e32))), refs.f16);
  auto d32 = dec32->forward(lrelu(merge32(torch::cat({upsample2(up16(e16)), e32}, 1))));
  auto d64 = dec64->forward(lrelu(merge64(torch::cat({upsample2(up32(d32)), e64}, 1))));
  return lq + F::pixel_shuffle(out_conv(d64), 2);
}

torch::Tensor RefFRImpl::forward(const torch::Tensor& lq, const torch::Tensor& refs) {
  return forward(lq, encode_refs(refs, lq.size(0)));
}

// ---- files ----------------------------------------------------------------------------------
void save_ref_fr(const std::string& path, RefFR& net, bool blind, torch::Dtype dtype, const Metadata& extra) {
  const auto& o = net->options;
  Metadata meta = extra;
  meta["arch"] = kRefFRArch;
  meta["version"] = kVersion;
  meta["blind"] = blind ? "1" : "0";
  meta["size"] = std::to_string(o.size);
  meta["width"] = std::to_string(o.width);
  meta["ref_width"] = std::to_string(o.ref_width);
  meta["heads"] = std::to_string(o.heads);
  meta["null_tokens"] = std::to_string(o.null_tokens);
  meta["pos_freqs"] = std::to_string(o.pos_freqs);
  meta["max_refs"] = std::to_string(o.max_refs);
  meta["aligned_levels"] = std::to_string(o.aligned_levels);
  meta["parameters"] = std::to_string(net->num_parameters());
  save_safetensors(path, state_dict(*net), meta, dtype);
}

namespace {
// The network's options as a file's metadata records them (version-1 files have no aligned paths).
RefFROptions options_of(const SafeTensors& st, const std::string& path) {
  RefFROptions o;
  o.size = metadata_int(st.metadata, "size", path);
  o.width = metadata_int(st.metadata, "width", path);
  o.ref_width = metadata_int(st.metadata, "ref_width", path);
  o.heads = metadata_int(st.metadata, "heads", path);
  o.null_tokens = metadata_int(st.metadata, "null_tokens", path);
  o.pos_freqs = metadata_int(st.metadata, "pos_freqs", path);
  o.max_refs = metadata_int(st.metadata, "max_refs", path);
  o.aligned_levels = st.metadata.count("aligned_levels") ? metadata_int(st.metadata, "aligned_levels", path) : 0;
  return o;
}
}  // namespace

LoadedRefFR load_ref_fr(const std::string& path, const torch::Device& device) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kRefFRArch, path);
  LoadedRefFR out;
  out.net = RefFR(options_of(st, path));
  load_state_dict_strict(*out.net, st.tensors, path);
  out.net->to(device);
  out.net->eval();
  out.blind = metadata_int(st.metadata, "blind", path) != 0;
  out.metadata = st.metadata;
  return out;
}

WarmStart warm_start_ref_fr(RefFR& net, const std::string& path) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kRefFRArch, path);
  const RefFROptions& o = net->options;
  const RefFROptions f = options_of(st, path);
  const std::pair<const char*, std::pair<int64_t, int64_t>> same[] = {
      {"size", {f.size, o.size}},          {"width", {f.width, o.width}},
      {"ref_width", {f.ref_width, o.ref_width}}, {"heads", {f.heads, o.heads}},
      {"null_tokens", {f.null_tokens, o.null_tokens}}, {"pos_freqs", {f.pos_freqs, o.pos_freqs}}};
  for (const auto& [key, values] : same)
    if (values.first != values.second)
      throw FormatError(path + ": metadata " + key + " = " + std::to_string(values.first) + ", the network has " +
                        std::to_string(values.second));
  auto params = net->named_parameters(true);
  auto buffers = net->named_buffers(true);
  std::set<std::string> loaded;
  torch::NoGradGuard ng;
  for (const auto& [key, t] : st.tensors) {
    torch::Tensor* dst = params.find(key);
    if (!dst) dst = buffers.find(key);
    if (!dst) throw FormatError(path + ": tensor " + key + " has no place in the network");
    if (dst->sizes() != t.sizes()) throw FormatError(path + ": tensor " + key + " has the wrong shape");
    dst->copy_(t.to(dst->device(), dst->scalar_type()));
    loaded.insert(key);
  }
  WarmStart out;
  out.metadata = st.metadata;
  for (const auto& item : params)
    if (!loaded.count(item.key())) out.fresh.push_back(item.key());
  return out;
}

// ---- critic ---------------------------------------------------------------------------------
SNConv2dImpl::SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t padding_)
    : stride(stride_), padding(padding_) {
  auto c = nn::Conv2d(nn::Conv2dOptions(in, out, kernel));  // for PyTorch's default initialisation
  weight = register_parameter("weight", c->weight.detach().clone());
  bias = register_parameter("bias", c->bias.detach().clone());
  u = register_buffer("u", F::normalize(torch::randn({out}), F::NormalizeFuncOptions().dim(0)));
}

torch::Tensor SNConv2dImpl::forward(const torch::Tensor& x) {
  auto w = weight.reshape({weight.size(0), -1});
  torch::Tensor sigma;
  {
    torch::NoGradGuard ng;
    if (is_training()) {  // one power iteration per training step, as torch.nn.utils.spectral_norm
      auto v = F::normalize(torch::mv(w.t(), u), F::NormalizeFuncOptions().dim(0));
      u.copy_(F::normalize(torch::mv(w, v), F::NormalizeFuncOptions().dim(0)));
    }
  }
  // A copy: the next forward (the critic runs on real and fake faces within one graph) updates
  // u in place, which must not touch what this pass saved for backward.
  auto uc = u.detach().clone();
  auto v = F::normalize(torch::mv(w.t(), uc), F::NormalizeFuncOptions().dim(0)).detach();
  sigma = torch::dot(uc, torch::mv(w, v));
  return F::conv2d(x, weight / sigma, F::Conv2dFuncOptions().bias(bias).stride(stride).padding(padding));
}

PatchDiscriminatorImpl::PatchDiscriminatorImpl(int64_t width, int64_t layers) {
  convs = register_module("convs", nn::ModuleList());
  int64_t ch = 3;
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t next = width << i;
    convs->push_back(SNConv2d(ch, next, 4, 2, 1));
    ch = next;
  }
  convs->push_back(SNConv2d(ch, 1, 3, 1, 1));
}

torch::Tensor PatchDiscriminatorImpl::forward(const torch::Tensor& x) {
  auto h = x * 2 - 1;
  const size_t n = convs->size();
  for (size_t i = 0; i < n; ++i) {
    h = convs[i]->as<SNConv2dImpl>()->forward(h);
    if (i + 1 < n) h = lrelu(h);
  }
  return h;
}

}  // namespace face2scene
