// SRVGGNetCompact (Real-ESRGAN realesrgan/archs/srvgg_arch.py), the realesr-general-x4v3 design:
// a plain stack of 3×3 convolutions with PReLU, a pixel shuffle, plus the nearest-upsampled input.
#include "face2scene/realesrgan.hpp"

namespace face2scene {

SRVGGNetCompactImpl::SRVGGNetCompactImpl(const SRVGGNetCompactOptions& o) : options(o) {
  auto conv = [](int in, int out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)); };
  auto prelu = [&]() { return torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(o.num_feat)); };
  body = torch::nn::ModuleList();
  body->push_back(conv(o.num_in_ch, o.num_feat));
  body->push_back(prelu());
  for (int i = 0; i < o.num_conv; ++i) {
    body->push_back(conv(o.num_feat, o.num_feat));
    body->push_back(prelu());
  }
  body->push_back(conv(o.num_feat, o.num_out_ch * o.upscale * o.upscale));
  register_module("body", body);
}

torch::Tensor SRVGGNetCompactImpl::forward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  auto out = x;
  for (const auto& m : *body) {
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) {
      out = c->forward(out);
    } else {
      out = m->as<torch::nn::PReLUImpl>()->forward(out);
    }
  }
  out = torch::pixel_shuffle(out, options.upscale);
  const double s = options.upscale;
  auto base = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{s, s}).mode(torch::kNearest));
  return out.add_(base);
}

}  // namespace face2scene
