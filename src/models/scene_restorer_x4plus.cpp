// The scene restorer on the x4plus backbone (RRDBNet, Real-ESRGAN's quality model): the same
// conditioning as on general-x4v3 (gated LoRA, cross-attention + FiLM adapters, ×1 stem), placed
// where RRDBNet's features live. See scene_restorer.hpp.
#include "face2scene/core.hpp"
#include "face2scene/scene_restorer.hpp"

namespace face2scene {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
torch::Tensor lrelu(const torch::Tensor& x) {
  return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(0.2));
}
torch::Tensor up2(const torch::Tensor& x) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .scale_factor(std::vector<double>{2.0, 2.0})
                               .mode(torch::kNearest));
}
}  // namespace

void SceneRestorerImpl::build_rrdb() {
  const auto& o = options;
  if (o.num_block < 1) throw ArgumentError("SceneRestorer: x4plus needs num_block >= 1");
  RRDBNetOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_block = o.num_block;
  bo.num_grow_ch = o.num_grow_ch;
  rrdb = register_module("base", RRDBNet(bo));
  for (const auto& m : rrdb->body->children()) {
    auto block = std::dynamic_pointer_cast<RRDBImpl>(m);
    if (!block) throw Error("SceneRestorer: RRDBNet body holds a module that is not an RRDB block");
    rdbs_.push_back(block->rdb1);
    rdbs_.push_back(block->rdb2);
    rdbs_.push_back(block->rdb3);
  }
  // LoRA on each dense block's fusing convolution (it sees all five feature groups, so one branch
  // per block reaches everything the block computed), then on the convolutions after the body.
  const int64_t dense_in = o.num_feat + 4 * o.num_grow_ch;
  for (size_t i = 0; i < rdbs_.size(); ++i) add_lora(dense_in, o.num_feat);
  for (int i = 0; i < 4; ++i)
    add_lora(o.num_feat, o.num_feat);  // conv_body, conv_up1, conv_up2, conv_hr
  for (int i = 0; i < o.num_block / o.adapter_every + 1; ++i) {
    CondAdapter a(o.num_feat, o.token_dim, o.heads);
    adapters->push_back(a);
    adapter_list_.push_back(a);
  }
}

torch::Tensor SceneRestorerImpl::forward_rrdb(const torch::Tensor& x, const torch::Tensor& tokens, int scale,
                                              const StatsMode& mode) {
  const auto mean_token = tokens.mean(1);
  // ×1: the stem reads the 4×4 pixel blocks, the base then upsamples back to the input size.
  const auto feat = scale == 4 ? rrdb->conv_first(x) : stem_x1(torch::pixel_unshuffle(x, 4));
  size_t k = 0;  // next LoRA branch
  auto h = feat;
  for (int blk = 0; blk < options.num_block; ++blk) {
    auto t = h;
    for (int j = 0; j < 3; ++j) {
      auto& rdb = rdbs_[size_t(3 * blk + j)];
      // ResidualDenseBlock::forward, out of place (autograd keeps these activations), with the
      // fusing convolution adapted.
      auto x1 = lrelu(rdb->conv1(t));
      auto x2 = lrelu(rdb->conv2(torch::cat({t, x1}, 1)));
      auto x3 = lrelu(rdb->conv3(torch::cat({t, x1, x2}, 1)));
      auto x4 = lrelu(rdb->conv4(torch::cat({t, x1, x2, x3}, 1)));
      auto all = torch::cat({t, x1, x2, x3, x4}, 1);
      t = lora(k++, all, rdb->conv5(all), mean_token) * 0.2 + t;
    }
    h = t * 0.2 + h;
    if ((blk + 1) % options.adapter_every == 0)
      h = adapt(size_t(blk / options.adapter_every), h, tokens, mode);
  }
  h = feat + lora(k, h, rrdb->conv_body(h), mean_token);
  ++k;
  h = adapt(adapter_list_.size() - 1, h, tokens, mode);
  if (mode.record) return {};  // the last adapter: every statistic taken
  auto u = up2(h);
  h = lrelu(lora(k, u, rrdb->conv_up1(u), mean_token));
  ++k;
  u = up2(h);
  h = lrelu(lora(k, u, rrdb->conv_up2(u), mean_token));
  ++k;
  h = lrelu(lora(k, h, rrdb->conv_hr(h), mean_token));
  return rrdb->conv_last(h);
}

}  // namespace face2scene
