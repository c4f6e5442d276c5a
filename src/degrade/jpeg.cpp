// JPEG degradation: the real codec (libjpeg via face2scene's encoder/decoder) and a batched
// emulation of libjpeg's baseline path that runs on any device. The emulation follows libjpeg step
// by step so it matches the codec (tests/test_degrade.cpp checks PSNR >= 38 dB over q 30-95):
// 8-bit input, RGB->YCbCr (JFIF), 4:2:0 by 2x2 averaging with libjpeg's alternating bias, 8x8
// DCT, IJG tables scaled by quality, rounding, inverse DCT, "fancy" (triangular) chroma
// upsampling, YCbCr->RGB. Every rounding is straight-through so gradients pass.
#include <algorithm>
#include <cmath>

#include "face2scene/degrade.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace {
constexpr int kLuma[64] = {16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
                           14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
                           18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
                           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
constexpr int kChroma[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                             24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                             99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                             99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

// Straight-through: the forward value is `rounded`, the gradient that of x. Without autograd the
// extra ops are skipped (they cost more than the codec itself on CPU).
torch::Tensor ste(const torch::Tensor& x, const torch::Tensor& rounded) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return rounded;
  return x + (rounded - x).detach();
}
torch::Tensor ste_round(const torch::Tensor& x) { return ste(x, torch::round(x)); }

// 64 orthonormal 8x8 DCT-II basis images [64 (u,v), 64 (y,x)] (JPEG's F(u,v) definition).
torch::Tensor dct_basis(const torch::Device& device, torch::Dtype dtype) {
  auto w = torch::empty({64, 8, 8}, torch::kFloat64);
  auto a = w.accessor<double, 3>();
  const double pi = 3.14159265358979323846;
  for (int u = 0; u < 8; ++u)
    for (int v = 0; v < 8; ++v)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) {
          const double cu = u == 0 ? std::sqrt(0.5) : 1.0, cv = v == 0 ? std::sqrt(0.5) : 1.0;
          a[u * 8 + v][y][x] = cu * cv / 4 * std::cos((2 * y + 1) * u * pi / 16) * std::cos((2 * x + 1) * v * pi / 16);
        }
  return w.view({64, 64}).to(device, dtype);
}

// Level shift, DCT, quantise, dequantise, IDCT, range limit of one plane [N,1,H,W] (H,W % 8 == 0)
// with per-item tables [N,1,64].
torch::Tensor code_plane(const torch::Tensor& plane, const torch::Tensor& table, const torch::Tensor& basis) {
  // Blocks as rows of 64 pixels; DCT and inverse are one matrix product each (basis orthonormal).
  const int64_t n = plane.size(0), hb = plane.size(2) / 8, wb = plane.size(3) / 8;
  auto blocks = (plane - 128.0).reshape({n, hb, 8, wb, 8}).permute({0, 1, 3, 2, 4}).reshape({n, hb * wb, 64});
  auto coef = torch::matmul(blocks, basis.t());
  auto q = ste_round(coef / table) * table;  // table [N,1,64]
  auto back = torch::matmul(q, basis).reshape({n, hb, wb, 8, 8}).permute({0, 1, 3, 2, 4}).reshape({n, 1, hb * 8, wb * 8});
  return ste_round(back + 128.0).clamp(0.0, 255.0);
}

// libjpeg's h2v2_downsample: (sum of 2x2 + bias) >> 2, bias 1,2,1,2... along each row.
torch::Tensor downsample_420(const torch::Tensor& c) {
  auto s = c.view({c.size(0), 1, c.size(2) / 2, 2, c.size(3) / 2, 2}).sum({3, 5});
  auto bias = torch::arange(s.size(3), c.options()).remainder(2).add(1.0);
  return ste(s / 4.0, torch::floor((s + bias) / 4.0));
}

// libjpeg's h2v2_fancy_upsample on a plane of (ceil(H/2), ceil(W/2)) real samples: each output
// takes 3/4 of the nearer and 1/4 of the farther sample per axis, edges replicated.
torch::Tensor upsample_fancy(const torch::Tensor& c) {
  namespace F = torch::nn::functional;
  const int64_t h = c.size(2), w = c.size(3);
  auto p = F::pad(c, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
  auto mid = p.slice(2, 1, h + 1);
  auto above = mid * 3 + p.slice(2, 0, h), below = mid * 3 + p.slice(2, 2, h + 2);
  auto colsum = torch::stack({above, below}, 3).view({c.size(0), 1, 2 * h, w + 2});  // rows interleaved
  auto cm = colsum.slice(3, 1, w + 1);
  auto left = cm * 3 + colsum.slice(3, 0, w) + 8.0, right = cm * 3 + colsum.slice(3, 2, w + 2) + 7.0;
  auto out = torch::stack({left, right}, 4).view({c.size(0), 1, 2 * h, 2 * w});
  return ste(out / 16.0 - 0.5, torch::floor(out / 16.0));
}

torch::Tensor tables_for(const std::vector<int>& q, bool chroma, const torch::Device& device, torch::Dtype dtype) {
  auto t = torch::empty({int64_t(q.size()), 1, 64}, torch::kFloat64);
  auto a = t.accessor<double, 3>();
  for (size_t i = 0; i < q.size(); ++i) {
    auto tab = jpeg_quant_table(q[i], chroma);
    for (int k = 0; k < 64; ++k) a[i][0][k] = tab[k];
  }
  return t.to(device, dtype);
}

torch::Tensor emulate(const torch::Tensor& x, const std::vector<int>& q) {
  namespace F = torch::nn::functional;
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t m = c == 3 ? 16 : 8;  // MCU: 16x16 with 4:2:0 chroma, 8x8 for grey
  const int64_t ph = (h + m - 1) / m * m, pw = (w + m - 1) / m * m;
  auto v = ste_round(x.clamp(0.0, 1.0) * 255.0);
  // libjpeg pads partial MCUs by replicating the last row/column.
  if (ph != h || pw != w) v = F::pad(v, F::PadFuncOptions({0, pw - w, 0, ph - h}).mode(torch::kReplicate));
  const auto basis = dct_basis(x.device(), x.scalar_type());
  const auto luma = tables_for(q, false, x.device(), x.scalar_type());
  if (c == 1) return code_plane(v, luma, basis).slice(2, 0, h).slice(3, 0, w) / 255.0;
  auto r = v.slice(1, 0, 1), g = v.slice(1, 1, 2), b = v.slice(1, 2, 3);
  auto y = ste_round(0.299 * r + 0.587 * g + 0.114 * b);
  auto cb = ste_round(-0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0);
  auto cr = ste_round(0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0);
  const auto chroma = tables_for(q, true, x.device(), x.scalar_type());
  y = code_plane(y, luma, basis).slice(2, 0, h).slice(3, 0, w);
  const int64_t ch = (h + 1) / 2, cw = (w + 1) / 2;  // the decoder upsamples only real samples
  cb = upsample_fancy(code_plane(downsample_420(cb), chroma, basis).slice(2, 0, ch).slice(3, 0, cw)).slice(2, 0, h).slice(3, 0, w);
  cr = upsample_fancy(code_plane(downsample_420(cr), chroma, basis).slice(2, 0, ch).slice(3, 0, cw)).slice(2, 0, h).slice(3, 0, w);
  cb = cb - 128.0;
  cr = cr - 128.0;
  auto rr = ste_round(y + 1.402 * cr), gg = ste_round(y - 0.344136286 * cb - 0.714136286 * cr),
       bb = ste_round(y + 1.772 * cb);
  return torch::cat({rr, gg, bb}, 1).clamp(0.0, 255.0) / 255.0;
}

torch::Tensor codec(const torch::Tensor& x, int quality) {
  const auto device = x.device();
  Image img = tensor_to_image(x.detach().to(torch::kCPU), 8);
  Image back = decode_image(encode_jpeg(img, quality), "jpeg round trip");
  return image_to_tensor(back, device, x.scalar_type(), false);
}
}  // namespace

std::array<int, 64> jpeg_quant_table(int quality, bool chroma) {
  // jpeg_quality_scaling + jpeg_add_quant_table with force_baseline.
  quality = std::clamp(quality, 1, 100);
  const int scale = quality < 50 ? 5000 / quality : 200 - quality * 2;
  std::array<int, 64> t{};
  for (int i = 0; i < 64; ++i) t[i] = std::clamp(((chroma ? kChroma : kLuma)[i] * scale + 50) / 100, 1, 255);
  return t;
}

torch::Tensor jpeg_images(const torch::Tensor& x, const std::vector<int>& quality, JpegMode mode) {
  if (x.dim() != 4 || (x.size(1) != 1 && x.size(1) != 3)) throw ArgumentError("jpeg_images: need [B,C,H,W] with C = 1 or 3");
  if (int64_t(quality.size()) != x.size(0)) throw ArgumentError("jpeg_images: one quality per item");
  std::vector<int64_t> sel;
  std::vector<int> qs;
  for (size_t i = 0; i < quality.size(); ++i) {
    if (quality[i] < 0 || quality[i] > 100) throw ArgumentError("JPEG quality " + std::to_string(quality[i]) + " outside 0..100");
    if (quality[i] > 0) {
      sel.push_back(int64_t(i));
      qs.push_back(quality[i]);
    }
  }
  if (sel.empty()) return x;
  if (mode == JpegMode::kAuto) mode = x.device().is_cpu() ? JpegMode::kCodec : JpegMode::kEmulated;
  torch::Tensor out;
  if (mode == JpegMode::kCodec) {
    std::vector<torch::Tensor> items = x.unbind(0);
    for (size_t k = 0; k < sel.size(); ++k) items[sel[k]] = codec(items[sel[k]], qs[k]);
    return torch::stack(items, 0);
  }
  if (sel.size() == quality.size()) return emulate(x, qs);
  auto idx = torch::tensor(sel, torch::kInt64).to(x.device());
  return x.index_copy(0, idx, emulate(x.index_select(0, idx), qs));
}

}  // namespace face2scene
