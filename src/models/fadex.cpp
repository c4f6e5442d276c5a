#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"

namespace face2scene {
namespace nn = torch::nn;

namespace {
// Residual block without normalisation layers: statistics of degraded inputs (noise level,
// contrast) are exactly what the code must keep, and batch/instance norm would wash them out.
struct ResBlockImpl : nn::Module {
  explicit ResBlockImpl(int64_t ch) {
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(ch, ch, 3).padding(1)));
    conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(ch, ch, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return x + conv2(torch::leaky_relu(conv1(x), 0.2));
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResBlock);
}  // namespace

FaDeXImpl::FaDeXImpl(const FaDeXOptions& o) : options(o) {
  if (o.in_size % o.code_grid != 0) throw ArgumentError("FaDeX: in_size must be a multiple of code_grid");
  // 9 input channels: LQ, HQ and LQ - HQ.
  stem = register_module("stem", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(9, o.width, 3).padding(1)),
                                                nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2))));
  body = nn::Sequential();
  int64_t ch = o.width;
  int64_t size = o.in_size;
  // Stride-2 stages down to the code grid; each followed by a residual block.
  while (size > o.code_grid) {
    const int64_t next = std::min(ch * 2, std::min(o.max_width, o.code_dim));
    body->push_back(nn::Conv2d(nn::Conv2dOptions(ch, next, 4).stride(2).padding(1)));
    body->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
    body->push_back(ResBlock(next));
    ch = next;
    size /= 2;
  }
  register_module("body", body);
  to_code = register_module("to_code", nn::Conv2d(nn::Conv2dOptions(ch, o.code_dim, 1)));
  param_head = register_module(
      "param_head", nn::Sequential(nn::Linear(o.code_dim, o.code_dim), nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)),
                                   nn::Linear(o.code_dim, o.param_dim)));
  param_mean = register_buffer("param_mean", torch::zeros({o.param_dim}));
  param_std = register_buffer("param_std", torch::ones({o.param_dim}));
}

torch::Tensor FaDeXImpl::denormalize_params(const torch::Tensor& normalised) const {
  return normalised * param_std.to(normalised.device()) + param_mean.to(normalised.device());
}

FaDeXOutput FaDeXImpl::forward(const torch::Tensor& lq_in, const torch::Tensor& hq) {
  namespace F = torch::nn::functional;
  torch::Tensor lq = lq_in;
  if (lq.size(-1) != options.in_size || lq.size(-2) != options.in_size) {
    lq = F::interpolate(lq, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{options.in_size, options.in_size})
                                .mode(torch::kBicubic)
                                .align_corners(false));
  }
  if (hq.size(-1) != options.in_size || hq.size(-2) != options.in_size) {
    throw ArgumentError("FaDeX: the HQ face must be " + std::to_string(options.in_size) + "x" +
                        std::to_string(options.in_size));
  }
  auto x = torch::cat({lq, hq, lq - hq}, 1);
  auto feat = body->forward(stem->forward(x));
  FaDeXOutput out;
  out.code_map = to_code(feat);
  auto pooled = out.code_map.mean({2, 3});
  out.code = F::normalize(pooled, F::NormalizeFuncOptions().dim(1));
  out.params = param_head->forward(pooled);
  return out;
}

}  // namespace face2scene
