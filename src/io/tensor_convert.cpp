#include <algorithm>
#include "face2scene/tensor.hpp"
#include "face2scene/image_metadata.hpp"

namespace face2scene {

torch::Tensor image_to_tensor(const Image& image, const torch::Device& device, torch::Dtype dtype,
                              bool rgb) {
  if (image.empty()) throw ArgumentError("image_to_tensor: empty image");
  // uint16 storage -> int32 (torch 1.13 has no uint16), then scale to [0,1]. The raw samples cross
  // to the device first (2 bytes each) and are converted there: on a GPU host the CPU is busy
  // encoding earlier outputs, and the thread feeding the GPU should do as little as possible.
  auto hwc = torch::from_blob(const_cast<uint16_t*>(image.data.data()),
                              {image.height, image.width, image.channels}, torch::kInt16)
                 .to(device)
                 .to(torch::kInt32)
                 .bitwise_and(0xFFFF);
  auto t = hwc.permute({2, 0, 1}).to(torch::kFloat32).div_(static_cast<float>(image.max_value()));
  if (rgb && image.channels == 1) t = t.expand({3, image.height, image.width});
  return t.contiguous().to(dtype);
}

Image tensor_to_image(const torch::Tensor& tensor, int bit_depth) {
  torch::Tensor t = tensor.detach();
  if (t.dim() == 4) {
    if (t.size(0) != 1) throw ArgumentError("tensor_to_image: batch of " + std::to_string(t.size(0)) + ", expected 1");
    t = t[0];
  }
  if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3 || (t.size(0) != 1 && t.size(0) != 3)) {
    throw ArgumentError("tensor_to_image: expected [C,H,W] with C=1 or 3");
  }
  if (bit_depth != 8 && bit_depth != 16) throw ArgumentError("tensor_to_image: bit depth must be 8 or 16");
  const int c = static_cast<int>(t.size(0)), h = static_cast<int>(t.size(1)), w = static_cast<int>(t.size(2));
  const double maxv = bit_depth == 16 ? 65535.0 : 255.0;
  // Quantise and lay out as the Image's uint16 samples where the tensor lives, then copy once,
  // straight into the Image (a CUDA result crosses as 2-byte samples; no per-sample loop on the
  // host). The same IEEE ops give the same values anywhere. int32 -> int16 keeps the low 16 bits,
  // which are the uint16 sample (torch 1.13 has no uint16).
  auto q = t.to(torch::kFloat32)
               .clamp(0.0, 1.0)
               .mul(maxv)
               .round()
               .to(torch::kInt32)
               .to(torch::kInt16)
               .permute({1, 2, 0})
               .contiguous();
  Image img(w, h, c, bit_depth);
  torch::from_blob(img.data.data(), {h, w, c}, torch::kInt16).copy_(q);
  return img;
}

torch::Tensor alpha_to_tensor(const Image& image, const torch::Device& device) {
  if (!image.has_alpha()) return {};
  auto t = torch::from_blob(const_cast<uint16_t*>(image.alpha.data()), {1, image.height, image.width},
                            torch::kInt16)
               .to(torch::kInt32)
               .bitwise_and(0xFFFF)
               .to(torch::kFloat32)
               .div_(static_cast<float>(image.max_value()));
  return t.to(device);
}

void set_alpha_from_tensor(Image& image, const torch::Tensor& alpha) {
  if (!alpha.defined()) {
    image.alpha.clear();
    return;
  }
  Image a = tensor_to_image(alpha.reshape({1, alpha.size(-2), alpha.size(-1)}), image.bit_depth);
  if (a.width != image.width || a.height != image.height) {
    throw ArgumentError("alpha is " + std::to_string(a.width) + "x" + std::to_string(a.height) +
                        " but the image is " + std::to_string(image.width) + "x" + std::to_string(image.height));
  }
  image.alpha = std::move(a.data);
}

void carry_alpha(const Image& from, Image& to) {
  if (!from.has_alpha()) return;
  auto a = alpha_to_tensor(from).unsqueeze(0);  // [1,1,H,W]
  torch::Tensor up;
  const float lo = a.min().item<float>(), hi = a.max().item<float>();
  if (lo == hi) {
    up = torch::full({1, to.height, to.width}, lo);
  } else {
    namespace F = torch::nn::functional;
    const bool down = to.height < from.height || to.width < from.width;
    up = F::interpolate(a, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{to.height, to.width})
                               .mode(torch::kBicubic)
                               .align_corners(false)
                               .antialias(down))
             .clamp_(0.0, 1.0)
             .squeeze(0);
  }
  set_alpha_from_tensor(to, up);
}

torch::Tensor srgb_to_linear(const torch::Tensor& x) {
  return torch::where(x <= 0.04045, x / 12.92, torch::pow((x.clamp_min(0.04045) + 0.055) / 1.055, 2.4));
}

torch::Tensor linear_to_srgb(const torch::Tensor& x) {
  return torch::where(x <= 0.0031308, x * 12.92, 1.055 * torch::pow(x.clamp_min(0.0031308), 1.0 / 2.4) - 0.055);
}

torch::Tensor rgb_to_y_bt601(const torch::Tensor& rgb) {
  // BasicSR / MATLAB rgb2ycbcr: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R,G,B in [0,1]), / 255.
  const int64_t cdim = rgb.dim() - 3;
  auto r = rgb.select(cdim, 0), g = rgb.select(cdim, 1), b = rgb.select(cdim, 2);
  return ((r * 65.481 + g * 128.553 + b * 24.966 + 16.0) / 255.0).unsqueeze(cdim);
}

}  // namespace face2scene
