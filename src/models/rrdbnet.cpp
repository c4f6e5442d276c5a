// RRDBNet, the ESRGAN / Real-ESRGAN x4plus generator (BasicSR basicsr/archs/rrdbnet_arch.py),
// with the reference parameter names so that weights map one to one.
#include "face2scene/realesrgan.hpp"

namespace face2scene {
namespace {
torch::nn::Conv2d conv3x3(int in, int out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(1).padding(1).bias(true));
}
torch::Tensor lrelu(torch::Tensor x) { return torch::leaky_relu_(x, 0.2); }
}  // namespace

ResidualDenseBlockImpl::ResidualDenseBlockImpl(int nf, int gc) {
  conv1 = register_module("conv1", conv3x3(nf, gc));
  conv2 = register_module("conv2", conv3x3(nf + gc, gc));
  conv3 = register_module("conv3", conv3x3(nf + 2 * gc, gc));
  conv4 = register_module("conv4", conv3x3(nf + 3 * gc, gc));
  conv5 = register_module("conv5", conv3x3(nf + 4 * gc, nf));
}

torch::Tensor ResidualDenseBlockImpl::forward(const torch::Tensor& x) {
  auto x1 = lrelu(conv1(x));
  auto x2 = lrelu(conv2(torch::cat({x, x1}, 1)));
  auto x3 = lrelu(conv3(torch::cat({x, x1, x2}, 1)));
  auto x4 = lrelu(conv4(torch::cat({x, x1, x2, x3}, 1)));
  auto x5 = conv5(torch::cat({x, x1, x2, x3, x4}, 1));
  // Residual scaling 0.2 (ESRGAN) — the ncnn graph's Eltwise coefficients 0.2, 1.0.
  return x5.mul_(0.2).add_(x);
}

RRDBImpl::RRDBImpl(int nf, int gc) {
  rdb1 = register_module("rdb1", ResidualDenseBlock(nf, gc));
  rdb2 = register_module("rdb2", ResidualDenseBlock(nf, gc));
  rdb3 = register_module("rdb3", ResidualDenseBlock(nf, gc));
}

torch::Tensor RRDBImpl::forward(const torch::Tensor& x) {
  auto out = rdb3(rdb2(rdb1(x)));
  return out.mul_(0.2).add_(x);
}

RRDBNetImpl::RRDBNetImpl(const RRDBNetOptions& o) : options(o) {
  if (o.scale != 4) throw ArgumentError("RRDBNet: only scale 4 is implemented (got " + std::to_string(o.scale) + ")");
  conv_first = register_module("conv_first", conv3x3(o.num_in_ch, o.num_feat));
  body = torch::nn::Sequential();
  for (int i = 0; i < o.num_block; ++i) body->push_back(RRDB(o.num_feat, o.num_grow_ch));
  register_module("body", body);
  conv_body = register_module("conv_body", conv3x3(o.num_feat, o.num_feat));
  conv_up1 = register_module("conv_up1", conv3x3(o.num_feat, o.num_feat));
  conv_up2 = register_module("conv_up2", conv3x3(o.num_feat, o.num_feat));
  conv_hr = register_module("conv_hr", conv3x3(o.num_feat, o.num_feat));
  conv_last = register_module("conv_last", conv3x3(o.num_feat, o.num_out_ch));
}

torch::Tensor RRDBNetImpl::forward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  auto up2 = [](const torch::Tensor& t) {
    return F::interpolate(t, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                 .mode(torch::kNearest));
  };
  auto feat = conv_first(x);
  auto body_feat = conv_body(body->forward(feat));
  feat = feat + body_feat;
  feat = lrelu(conv_up1(up2(feat)));
  feat = lrelu(conv_up2(up2(feat)));
  return conv_last(lrelu(conv_hr(feat)));
}

}  // namespace face2scene
