#include <cmath>

#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"

namespace face2scene {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads) {
  const int64_t b = q.size(0), nq = q.size(1), nk = k.size(1), d = q.size(2);
  if (d % heads != 0) throw ArgumentError("attention: width " + std::to_string(d) + " is not divisible by heads");
  const int64_t hd = d / heads;
  auto split = [&](const torch::Tensor& t, int64_t n) { return t.reshape({b, n, heads, hd}).transpose(1, 2); };
  auto qh = split(q, nq), kh = split(k, nk), vh = split(v, nk);
#if TORCH_VERSION_MAJOR >= 2
  auto o = at::scaled_dot_product_attention(qh, kh, vh);
#else
  // The score matrix [b,heads,nq,nk] is built a block of queries at a time: the scene restorer's
  // statistics pass attends from every pixel of a 1 MP copy of the photo, and the whole matrix with
  // its softmax and scaled copies there was where `restore` of a 4 MP photo peaked (3.07 GB,
  // bench_pipeline; gdb put the peak in this function). Queries are independent, so the blocks give
  // the same result.
  auto attend = [&](const torch::Tensor& qc) {
    auto attn = torch::softmax(torch::matmul(qc, kh.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd)), -1);
    return torch::matmul(attn, vh);
  };
  // Up to 2^26 scores (256 MB) in one go, else blocks of 2^24 (64 MB).
  const int64_t per_query = std::max<int64_t>(b * heads * nk, 1);
  const int64_t block = std::max<int64_t>(1, (int64_t(1) << 24) / per_query);
  torch::Tensor o;
  if (nq * per_query <= (int64_t(1) << 26)) {
    o = attend(qh);
  } else {
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < nq; s += block) parts.push_back(attend(qh.slice(2, s, std::min(nq, s + block))));
    o = torch::cat(parts, 2);
  }
#endif
  return o.transpose(1, 2).reshape({b, nq, d});
}

MapNetImpl::MapNetImpl(const MapNetOptions& o) : options(o) {
  // Overlapping patches: 3x3 windows at stride 1, so neighbouring tokens share pixels of the code.
  patch_embed = register_module("patch_embed", nn::Conv2d(nn::Conv2dOptions(o.code_dim, o.embed_dim, 3).padding(1)));
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({o.embed_dim})));
  qkv = register_module("qkv", nn::Linear(o.embed_dim, 3 * o.embed_dim));
  attn_out = register_module("attn_out", nn::Linear(o.embed_dim, o.embed_dim));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({o.embed_dim})));
  mlp = register_module("mlp", nn::Sequential(nn::Linear(o.embed_dim, 2 * o.embed_dim), nn::GELU(),
                                              nn::Linear(2 * o.embed_dim, o.embed_dim)));
  projectors = register_module("projectors", nn::ModuleList());
  for (size_t i = 0; i < o.pools.size(); ++i) {
    projectors->push_back(nn::Sequential(nn::LayerNorm(nn::LayerNormOptions({o.embed_dim})),
                                         nn::Linear(o.embed_dim, o.token_dim)));
  }
  null_tokens_ = register_parameter("null_tokens", torch::randn({1, num_tokens(), o.token_dim}) * 0.02);
}

int64_t MapNetImpl::num_tokens() const {
  int64_t n = 0;
  for (auto p : options.pools) n += p * p;
  return n;
}

torch::Tensor MapNetImpl::null_tokens(int64_t batch) const { return null_tokens_.expand({batch, -1, -1}); }

torch::Tensor MapNetImpl::forward(const torch::Tensor& code_map) {
  auto x = patch_embed(code_map);  // [B,E,g,g]
  const int64_t b = x.size(0), e = x.size(1), h = x.size(2), w = x.size(3);
  auto seq = x.flatten(2).transpose(1, 2);  // [B,g*g,E]
  auto qkv_t = qkv(norm1(seq)).chunk(3, -1);
  seq = seq + attn_out(multi_head_attention(qkv_t[0], qkv_t[1], qkv_t[2], options.heads));
  seq = seq + mlp->forward(norm2(seq));
  auto map = seq.transpose(1, 2).reshape({b, e, h, w});
  std::vector<torch::Tensor> tokens;
  for (size_t i = 0; i < options.pools.size(); ++i) {
    const int64_t p = options.pools[i];
    auto pooled = F::adaptive_avg_pool2d(map, F::AdaptiveAvgPool2dFuncOptions({p, p}));  // [B,E,p,p]
    auto t = pooled.flatten(2).transpose(1, 2);                                           // [B,p*p,E]
    tokens.push_back(projectors[i]->as<nn::Sequential>()->forward(t));
  }
  return torch::cat(tokens, 1);  // [B,21,token_dim]
}

}  // namespace face2scene
