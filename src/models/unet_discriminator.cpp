// Real-ESRGAN's U-Net discriminator with spectral norm (see discriminator.hpp). Layer for layer
// as basicsr's UNetDiscriminatorSN: conv0 plain 3×3; three SN 4×4 stride-2 downsamplings; three
// SN 3×3 convolutions after ×2 bilinear upsampling, each adding the encoder feature of its size;
// two SN 3×3 refinements; conv9 plain 3×3 to one logit per pixel. One difference: our SNConv2d
// (shared with Ref-FR's critic) keeps a bias where basicsr uses bias=False; the bias is a constant
// shift per channel and does not change the Lipschitz bound that spectral norm is for.
#include "face2scene/discriminator.hpp"

#include "face2scene/core.hpp"

namespace face2scene {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {
torch::Tensor lrelu(const torch::Tensor& x) { return torch::leaky_relu(x, 0.2); }
torch::Tensor up2(const torch::Tensor& x) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .scale_factor(std::vector<double>{2.0, 2.0})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}
}  // namespace

UNetDiscriminatorImpl::UNetDiscriminatorImpl(const UNetDiscriminatorOptions& o) : options(o) {
  const int64_t nf = o.num_feat;
  conv0 = register_module("conv0", nn::Conv2d(nn::Conv2dOptions(3, nf, 3).padding(1)));
  // in, out, kernel, stride, padding of conv1 .. conv8
  const int64_t spec[8][5] = {{nf, nf * 2, 4, 2, 1},     {nf * 2, nf * 4, 4, 2, 1}, {nf * 4, nf * 8, 4, 2, 1},
                              {nf * 8, nf * 4, 3, 1, 1}, {nf * 4, nf * 2, 3, 1, 1}, {nf * 2, nf, 3, 1, 1},
                              {nf, nf, 3, 1, 1},         {nf, nf, 3, 1, 1}};
  for (int i = 0; i < 8; ++i) {
    sn.push_back(register_module("conv" + std::to_string(i + 1),
                                 SNConv2d(spec[i][0], spec[i][1], spec[i][2], spec[i][3], spec[i][4])));
  }
  conv9 = register_module("conv9", nn::Conv2d(nn::Conv2dOptions(nf, 1, 3).padding(1)));
  if (o.cond_dim > 0) {
    // Zero-initialised: a projection discriminator starts as the unconditional one.
    embed = register_module("embed", nn::Linear(nn::LinearOptions(o.cond_dim, nf).bias(false)));
    nn::init::zeros_(embed->weight);
  }
}

torch::Tensor UNetDiscriminatorImpl::forward(const torch::Tensor& x, const torch::Tensor& cond) {
  if (x.dim() != 4 || x.size(1) != 3 || x.size(2) % 8 != 0 || x.size(3) % 8 != 0) {
    throw ArgumentError("U-Net discriminator: input must be [B,3,H,W] with H and W multiples of 8");
  }
  if ((options.cond_dim > 0) != cond.defined()) {
    throw ArgumentError(options.cond_dim > 0 ? "U-Net discriminator: this projection discriminator needs a condition"
                                             : "U-Net discriminator: a condition was given to an unconditional one");
  }
  auto x0 = lrelu(conv0(x));
  auto x1 = lrelu(sn[0](x0));
  auto x2 = lrelu(sn[1](x1));
  auto x3 = lrelu(sn[2](x2));
  auto x4 = lrelu(sn[3](up2(x3)));
  if (options.skip_connection) x4 = x4 + x2;
  auto x5 = lrelu(sn[4](up2(x4)));
  if (options.skip_connection) x5 = x5 + x1;
  auto x6 = lrelu(sn[5](up2(x5)));
  if (options.skip_connection) x6 = x6 + x0;
  auto h = lrelu(sn[7](lrelu(sn[6](x6))));
  auto out = conv9(h);
  if (options.cond_dim > 0) {
    if (cond.dim() != 2 || cond.size(0) != x.size(0) || cond.size(1) != options.cond_dim) {
      throw ArgumentError("U-Net discriminator: condition must be [B," + std::to_string(options.cond_dim) + "]");
    }
    auto e = embed(cond.to(h.scalar_type())).unsqueeze(-1).unsqueeze(-1);  // [B,nf,1,1]
    out = out + (h * e).sum(1, /*keepdim=*/true);
  }
  return out;
}

torch::Tensor gan_generator_loss(const torch::Tensor& fake_logits) {
  return F::softplus(-fake_logits.to(torch::kFloat32)).mean();
}

torch::Tensor gan_critic_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits) {
  return F::softplus(-real_logits.to(torch::kFloat32)).mean() + F::softplus(fake_logits.to(torch::kFloat32)).mean();
}

}  // namespace face2scene
