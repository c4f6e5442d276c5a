// The adversarial critic of the scene restorer's GAN fine-tuning: Real-ESRGAN's U-Net
// discriminator with spectral normalisation (UNetDiscriminatorSN, Wang et al. 2021). It scores
// every pixel (a per-pixel real/fake logit map of the input's size), so it judges local texture
// and global structure at once, which a PatchGAN's coarse grid does not.
//
// Optional projection on a condition vector (Miyato & Koyama 2018): logit(x, y) = f(x) +
// <φ(x), E·y> per pixel. The scene trainer passes FaDeX's (frozen) global degradation code, so
// "how degraded was the input" can shape "what counts as real for this output".
// Training-only: never shipped, never used at inference.
#pragma once

#include <torch/torch.h>

#include "face2scene/ref_fr.hpp"  // SNConv2d (spectrally normalised convolution)

namespace face2scene {

struct UNetDiscriminatorOptions {
  int64_t num_feat = 64;       // Real-ESRGAN: 64 (4.4 M parameters); 32 costs a quarter
  bool skip_connection = true;  // Real-ESRGAN: true
  int64_t cond_dim = 0;        // > 0: projection on a [B, cond_dim] condition
};

struct UNetDiscriminatorImpl : torch::nn::Module {
  explicit UNetDiscriminatorImpl(const UNetDiscriminatorOptions& options = {});
  // x: [B,3,H,W] (H, W multiples of 8), [0,1] range as the restorer outputs (not clamped);
  // cond: [B, cond_dim] when the options ask for it, else undefined. Returns logits [B,1,H,W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cond = {});
  UNetDiscriminatorOptions options;
  torch::nn::Conv2d conv0{nullptr}, conv9{nullptr};    // plain, as in Real-ESRGAN
  std::vector<SNConv2d> sn;                             // conv1 .. conv8, spectrally normalised
  torch::nn::Linear embed{nullptr};                     // projection: condition -> num_feat
};
TORCH_MODULE(UNetDiscriminator);

// Non-saturating GAN losses on per-pixel logits (BCE-with-logits, as Real-ESRGAN's "vanilla").
// The generator's: softplus(−D(fake)); the critic's: softplus(−D(real)) + softplus(D(fake)).
torch::Tensor gan_generator_loss(const torch::Tensor& fake_logits);
torch::Tensor gan_critic_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits);

}  // namespace face2scene
