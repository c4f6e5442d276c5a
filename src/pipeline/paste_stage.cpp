// The paste stage's pieces (see paste_stage.hpp): where a face's square lies in the output, cutting
// it out and pasting it back on its footprint only, the tone correction of the paste band, and the
// output's conversion to an Image.
#include "paste_stage.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "face2scene/core.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace F = torch::nn::functional;

PasteOptions paste_core_options() {
  PasteOptions o;
  const double dd = std::clamp(o.feather / std::max(o.radius_x, o.radius_y), 1e-3, 1.0);
  const double r98 = 1 - dd + dd * std::acos(2 * 0.98 - 1) / M_PI;  // ellipse_mask's 0.98 level
  o.radius_x *= r98, o.radius_y *= r98;
  o.feather = 0.12 * std::max(o.radius_x, o.radius_y);
  return o;
}

torch::Tensor seamless_paste_face(const torch::Tensor& face, const torch::Tensor& scene) {
  if (face.dim() != 3 || face.sizes() != scene.sizes() || face.size(1) != face.size(2))
    throw ArgumentError("seamless_paste_face: face and scene must be the same [C,N,N] square");
  return face + pipeline_detail::paste_tone(scene - face);
}

namespace {
// The bounding box (x0, y0, x1, y1), in output pixels, of an aligned square of `side` pixels
// mapped back by `back` (aligned -> output), pixel edges included.
std::array<double, 4> footprint_bounds(const Similarity& back, double side) {
  double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
  for (double u : {-0.5, side - 0.5})
    for (double v : {-0.5, side - 0.5}) {
      const Point2f p = back.apply({static_cast<float>(u), static_cast<float>(v)});
      x0 = std::min<double>(x0, p.x), x1 = std::max<double>(x1, p.x);
      y0 = std::min<double>(y0, p.y), y1 = std::max<double>(y1, p.y);
    }
  return {x0, y0, x1, y1};
}

// `m` (output -> aligned) for a region of the output whose pixel (0, 0) is output pixel (x0, y0).
Similarity from_region_origin(const Similarity& m, int64_t x0, int64_t y0) {
  return {m.a, m.b, m.tx + m.a * x0 - m.b * y0, m.ty + m.b * x0 + m.a * y0};
}
}  // namespace

namespace pipeline_detail {

torch::Tensor resize(const torch::Tensor& x, int64_t h, int64_t w) {
  auto b = x.dim() == 3 ? x.unsqueeze(0) : x;
  if (b.size(2) == h && b.size(3) == w) return x;
  torch::Tensor y;
  if (h <= b.size(2) && w <= b.size(3)) {
    y = F::interpolate(b, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kArea));
  } else {
    y = F::interpolate(b, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{h, w})
                              .mode(torch::kBicubic)
                              .align_corners(false))
            .clamp(0, 1);
  }
  return x.dim() == 3 ? y[0] : y;
}

// paste_face on the face's footprint only: paste_face returns a whole new image, and at ×4 a
// 3200x2120 output copied once per face cost more than everything else of the paste stage.
void paste_in_place(torch::Tensor& y, const torch::Tensor& face, const Similarity& photo_to_aligned, double scale) {
  const Similarity out_to_aligned = on_scaled_image(photo_to_aligned, scale);
  const Similarity back = out_to_aligned.inverse();
  const double side = static_cast<double>(face.size(-1));
  const auto [x0, y0, x1, y1] = footprint_bounds(back, static_cast<double>(side));
  const int64_t H = y.size(1), W = y.size(2);
  const int64_t rx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0)) - 2, 0, W);
  const int64_t ry0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y0)) - 2, 0, H);
  const int64_t rx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x1)) + 3, 0, W);
  const int64_t ry1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(y1)) + 3, 0, H);
  if (rx1 <= rx0 || ry1 <= ry0) return;
  auto region = y.slice(1, ry0, ry1).slice(2, rx0, rx1);
  region.copy_(paste_face(region, face, from_region_origin(out_to_aligned, rx0, ry0), PasteOptions{}, 1.0));
}

// align_face on the face's footprint only: align_face reflects the border of whatever it is given,
// so it is given the footprint plus a margin (the reflection then differs only where the square
// leaves the photo, as on the whole image when the footprint touches the photo's edge).
torch::Tensor align_face_region(const torch::Tensor& y, const Similarity& out_to_aligned, int64_t side) {
  const Similarity back = out_to_aligned.inverse();
  const auto [x0, y0, x1, y1] = footprint_bounds(back, static_cast<double>(side));
  const int64_t H = y.size(1), W = y.size(2);
  const int64_t rx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0)) - 4, 0, W - 1);
  const int64_t ry0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y0)) - 4, 0, H - 1);
  const int64_t rx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x1)) + 5, rx0 + 1, W);
  const int64_t ry1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(y1)) + 5, ry0 + 1, H);
  // Footprint inside the photo: the crop is the same as on the whole image. Otherwise (the square
  // leaves the photo) the whole image, so the reflection is the photo's own.
  if (rx0 > 0 && ry0 > 0 && rx1 < W && ry1 < H) {
    return align_face(y.slice(1, ry0, ry1).slice(2, rx0, rx1), from_region_origin(out_to_aligned, rx0, ry0),
                      static_cast<int>(side))
        .image;
  }
  return align_face(y, out_to_aligned, static_cast<int>(side)).image;
}

// The input face as the output's scale shows it: the photo's pixels around the face's footprint,
// bicubic ×`scale` (the output's grid), aligned there. Aligning at the output's scale keeps the
// resampling's blur at a quarter of an input pixel (×4): aligned at the face's own size, a 12–19 px
// face lost what little detail it has to one bilinear warp.
torch::Tensor input_face_at_scale(const torch::Tensor& x, const Similarity& photo_to_aligned, int64_t side, double scale,
                                  const torch::Device& device) {
  const auto [x0, y0, x1, y1] = footprint_bounds(photo_to_aligned.inverse(), static_cast<double>(side));
  const int64_t H = x.size(1), W = x.size(2);
  const int64_t rx0 = static_cast<int64_t>(std::floor(x0)) - 3, ry0 = static_cast<int64_t>(std::floor(y0)) - 3;
  const int64_t rx1 = static_cast<int64_t>(std::ceil(x1)) + 4, ry1 = static_cast<int64_t>(std::ceil(y1)) + 4;
  const Similarity out_to_aligned = on_scaled_image(photo_to_aligned, scale);
  const auto k = static_cast<int64_t>(std::lround(scale));
  // Footprint leaving the photo (or a fractional scale): aligned from the photo itself.
  if (rx0 < 0 || ry0 < 0 || rx1 > W || ry1 > H || std::abs(scale - double(k)) > 1e-9)
    return align_face(x, photo_to_aligned, static_cast<int>(side)).image.to(device);
  // Only the footprint travels to the device (the photo stays on the CPU).
  const auto region = resize(x.slice(1, ry0, ry1).slice(2, rx0, rx1).to(device), (ry1 - ry0) * k, (rx1 - rx0) * k);
  return align_face(region, from_region_origin(out_to_aligned, rx0 * k, ry0 * k), static_cast<int>(side)).image;
}

// The paste correction of a face square [3,N,N] from d = scene − face, in the manner of Poisson
// image editing: `face + paste_tone(d)` is the scene restorer's output in the paste's blend band
// (PasteOptions: where the mask fades, m < 0.98) and Ref-FR's face in the core, shifted there by the
// membrane (harmonic) fill of the band's values, the smoothest shift that meets them. So the band
// shows one picture, not two faces cross-faded (whose outlines, hairlines and tones differ when
// Ref-FR's face is not the scene's: the 0.07–0.15 steps of docs/pipeline.md, "The paste border"),
// and the core keeps Ref-FR's eyes, mouth and nose with no step where it meets the band. The fill is
// solved on a 48² copy (area down, bicubic up) so its cost does not grow with the square; the band's
// own detail is added back at full resolution, faded in over the core's edge.
torch::Tensor paste_tone(const torch::Tensor& d) {
  const int64_t N = d.size(-1), n = 48;
  // The 48² fill runs on the CPU whatever d's device: ~2,000 tiny kernels would cost more as launches.
  const auto a = resize(d, n, n).to(torch::kCPU, torch::kFloat32);
  const auto band = face_blend_mask(static_cast<int>(n), torch::kCPU) < 0.98;  // [1,n,n]
  auto c = torch::where(band, a, torch::zeros_like(a));
  // Jacobi sweeps of the 4-neighbour mean over the core with the band fixed, started from the
  // band's mean: the core is ~30 cells across, 500 sweeps settle it (~5 ms).
  const auto core = band.logical_not().expand_as(c);
  const auto bandf = band.to(torch::kFloat32);
  c = torch::where(core, ((a * bandf).sum({1, 2}, true) / bandf.sum().clamp_min(1)).expand_as(c), c).contiguous();
  // The sweeps in plain loops, not torch ops: 500 sweeps were 1,500 small ops whose thread-pool
  // hand-offs, beside a GPU run's 14 detection threads, took 100s of ms a face (docs/pipeline.md).
  {
    const int64_t C = c.size(0);
    const auto corec = band.logical_not()[0].contiguous();
    const bool* is_core = corec.data_ptr<bool>();
    float* cur = c.data_ptr<float>();
    std::vector<float> next(cur, cur + C * n * n);
    for (int it = 0; it < 500; ++it) {
      for (int64_t ch = 0; ch < C; ++ch) {
        const float* p = cur + ch * n * n;
        float* q = next.data() + ch * n * n;
        for (int64_t yy = 0; yy < n; ++yy)
          for (int64_t xx = 0; xx < n; ++xx) {
            if (!is_core[yy * n + xx]) continue;
            // 4-neighbour mean, the border replicated
            const float up = p[std::max<int64_t>(yy - 1, 0) * n + xx], dn = p[std::min<int64_t>(yy + 1, n - 1) * n + xx];
            const float lf = p[yy * n + std::max<int64_t>(xx - 1, 0)], rt = p[yy * n + std::min<int64_t>(xx + 1, n - 1)];
            q[yy * n + xx] = 0.25f * (up + lf + rt + dn);
          }
      }
      std::copy(next.begin(), next.end(), cur);
    }
  }
  const auto up = F::interpolate(c.unsqueeze(0), F::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{N, N})
                                                     .mode(torch::kBicubic)
                                                     .align_corners(false))[0]
                    .to(d.device(), d.scalar_type());
  // At full resolution: all of d in the band, its detail fading out over the core's outer edge: an
  // ellipse whose edge is the mask's 0.98 contour, fading over the last 12 % of its radius.
  const auto w = 1 - face_blend_mask(static_cast<int>(N), d.device(), paste_core_options()).to(d.scalar_type());
  return up + w * (d - up);
}

// The output tensor [3,H,W] → an Image with `channels` (1: BT.601 luma) and `bit_depth`, a band of
// rows at a time: tensor_to_image on the whole of a ×4 output of a 4 MP photo (64 MP) held four
// float copies at once (clamp, scale, round, int), 3 GB on top of the output itself.
Image to_image_in_bands(const torch::Tensor& y, int channels, int bit_depth) {
  const int64_t H = y.size(1), W = y.size(2);
  Image out(static_cast<int>(W), static_cast<int>(H), channels, bit_depth);
  const int64_t band = std::max<int64_t>(1, (1 << 22) / std::max<int64_t>(W, 1));  // ~4 M pixels
  for (int64_t r0 = 0; r0 < H; r0 += band) {
    const int64_t r1 = std::min(H, r0 + band);
    auto t = y.slice(1, r0, r1).clamp(0, 1);
    if (channels == 1) t = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0);
    const Image part = tensor_to_image(t, bit_depth);
    std::copy(part.data.begin(), part.data.end(), out.data.begin() + r0 * W * channels);
  }
  return out;
}

// The face [3,N,N] with the scene restorer's structure up to a k² copy: face + low(scene) − low(face),
// low = area down to k, bicubic up. Unchanged where k is under 4 px or not below `limit`.
torch::Tensor keep_input_structure(const torch::Tensor& face, const torch::Tensor& scene, int64_t k, int64_t limit) {
  if (k < 4 || k >= limit) return face;
  const int64_t N = face.size(-1);
  return (face + resize(resize(scene, k, k), N, N) - resize(resize(face, k, k), N, N)).clamp(0, 1);
}

}  // namespace pipeline_detail
}  // namespace face2scene
