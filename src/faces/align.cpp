// Alignment to the FFHQ 5-point template and seamless paste-back, in torch (any device).
//
// Geometry convention everywhere: pixel (i, j) has its centre at (i, j); a tensor of width W spans
// [-0.5, W-0.5]. grid_sample with align_corners=false maps pixel x to (2x+1)/W - 1.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "face2scene/faces.hpp"

namespace face2scene {

namespace F = torch::nn::functional;

Point2f Similarity::apply(Point2f p) const {
  return {static_cast<float>(a * p.x - b * p.y + tx), static_cast<float>(b * p.x + a * p.y + ty)};
}

Similarity Similarity::inverse() const {
  const double d = a * a + b * b;
  if (d <= 0) throw ArgumentError("Similarity::inverse: degenerate (zero-scale) transform");
  Similarity r;
  r.a = a / d;
  r.b = -b / d;
  r.tx = -(r.a * tx - r.b * ty);
  r.ty = -(r.b * tx + r.a * ty);
  return r;
}

double Similarity::scale() const { return std::sqrt(a * a + b * b); }

namespace {
Similarity fit_weighted(const std::vector<Point2f>& src, const std::vector<Point2f>& dst,
                        const std::vector<double>& w) {
  double sw = 0, mpx = 0, mpy = 0, mqx = 0, mqy = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    sw += w[i];
    mpx += w[i] * src[i].x;
    mpy += w[i] * src[i].y;
    mqx += w[i] * dst[i].x;
    mqy += w[i] * dst[i].y;
  }
  mpx /= sw, mpy /= sw, mqx /= sw, mqy /= sw;
  double num_a = 0, num_b = 0, den = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const double px = src[i].x - mpx, py = src[i].y - mpy;
    const double qx = dst[i].x - mqx, qy = dst[i].y - mqy;
    num_a += w[i] * (px * qx + py * qy);
    num_b += w[i] * (px * qy - py * qx);
    den += w[i] * (px * px + py * py);
  }
  if (den <= 1e-12) throw ArgumentError("fit_similarity: the source points coincide");
  Similarity s;
  s.a = num_a / den;
  s.b = num_b / den;
  s.tx = mqx - (s.a * mpx - s.b * mpy);
  s.ty = mqy - (s.b * mpx + s.a * mpy);
  return s;
}
}  // namespace

Similarity fit_similarity(const std::vector<Point2f>& src, const std::vector<Point2f>& dst,
                          bool robust) {
  if (src.size() != dst.size() || src.size() < 2)
    throw ArgumentError("fit_similarity: need >= 2 matching point pairs, got " +
                        std::to_string(src.size()) + " and " + std::to_string(dst.size()));
  std::vector<double> w(src.size(), 1.0);
  Similarity s = fit_weighted(src, dst, w);
  if (!robust || src.size() < 4) return s;
  // One grossly misplaced point (a mouth corner under a hand, an eye behind hair) is rejected
  // by leave-one-out: if dropping one point shrinks the others' RMS residual a lot and that point
  // lies far off the refit, it gets no weight. The thresholds are strict (8% of the template's
  // extent) so ordinary pose variation keeps all five points, as GFPGAN/facexlib use them.
  double minx = 1e30, maxx = -1e30, miny = 1e30, maxy = -1e30;
  for (const auto& q : dst) {
    minx = std::min<double>(minx, q.x), maxx = std::max<double>(maxx, q.x);
    miny = std::min<double>(miny, q.y), maxy = std::max<double>(maxy, q.y);
  }
  const double floor = 0.08 * std::max(maxx - minx, maxy - miny);
  auto rms = [&](const Similarity& t, size_t skip) {
    double e = 0;
    int n = 0;
    for (size_t i = 0; i < src.size(); ++i) {
      if (i == skip) continue;
      const Point2f p = t.apply(src[i]);
      e += (p.x - dst[i].x) * (p.x - dst[i].x) + (p.y - dst[i].y) * (p.y - dst[i].y);
      ++n;
    }
    return std::sqrt(e / std::max(n, 1));
  };
  const double full = rms(s, src.size());
  double best_rms = full;
  size_t best = src.size();
  Similarity best_fit = s;
  for (size_t k = 0; k < src.size(); ++k) {
    std::vector<double> wk(src.size(), 1.0);
    wk[k] = 0.0;
    const Similarity t = fit_weighted(src, dst, wk);
    const double r = rms(t, k);
    const Point2f p = t.apply(src[k]);
    const double off = std::hypot(p.x - dst[k].x, p.y - dst[k].y);
    if (r < best_rms && r < 0.4 * full && off > std::max(3.0 * r, floor)) {
      best_rms = r;
      best = k;
      best_fit = t;
    }
  }
  return best < src.size() ? best_fit : s;
}

FivePoints ffhq_template(int size) {
  static const float t[5][2] = {{192.98138f, 239.94708f}, {318.90277f, 240.19360f},
                                {256.63416f, 314.01935f}, {201.26117f, 371.41043f},
                                {313.08905f, 371.15118f}};
  // The template is in 512-pixel units with pixel-centre coordinates; scaling to another size
  // keeps the same relative position: (x + 0.5) * size / 512 - 0.5.
  const double k = size / 512.0;
  FivePoints p;
  for (int i = 0; i < 5; ++i)
    p[i] = {static_cast<float>((t[i][0] + 0.5) * k - 0.5), static_cast<float>((t[i][1] + 0.5) * k - 0.5)};
  return p;
}

namespace {
// General 2-D affine (x' = m00 x + m01 y + m02, y' = m10 x + m11 y + m12).
struct Affine {
  double m00, m01, m02, m10, m11, m12;
};
Affine to_affine(const Similarity& s) { return {s.a, -s.b, s.tx, s.b, s.a, s.ty}; }
// Per-axis rescale of a pixel grid: pixel x of the old grid is (x + 0.5) * f - 0.5 in the new one.
Affine rescale(double fx, double fy) { return {fx, 0, 0.5 * fx - 0.5, 0, fy, 0.5 * fy - 0.5}; }
Affine translate(double dx, double dy) { return {1, 0, dx, 0, 1, dy}; }
// (p ∘ q)(x) = p(q(x))
Affine compose(const Affine& p, const Affine& q) {
  return {p.m00 * q.m00 + p.m01 * q.m10, p.m00 * q.m01 + p.m01 * q.m11,
          p.m00 * q.m02 + p.m01 * q.m12 + p.m02, p.m10 * q.m00 + p.m11 * q.m10,
          p.m10 * q.m01 + p.m11 * q.m11, p.m10 * q.m02 + p.m11 * q.m12 + p.m12};
}

// A sampling grid [1, oh, ow, 2] for grid_sample: output pixel (x, y) (offset by ox, oy) reads
// input pixel out_to_in(x + ox, y + oy) of an input of size in_w x in_h.
torch::Tensor make_grid(const Affine& out_to_in, int64_t ow, int64_t oh, double ox, double oy,
                        int64_t in_w, int64_t in_h, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto xs = torch::arange(ow, opts) + ox;
  auto ys = torch::arange(oh, opts) + oy;
  auto gy = ys.view({oh, 1}).expand({oh, ow});
  auto gx = xs.view({1, ow}).expand({oh, ow});
  auto ix = gx * out_to_in.m00 + gy * out_to_in.m01 + out_to_in.m02;
  auto iy = gx * out_to_in.m10 + gy * out_to_in.m11 + out_to_in.m12;
  auto nx = (ix * 2.0 + 1.0) / static_cast<double>(in_w) - 1.0;
  auto ny = (iy * 2.0 + 1.0) / static_cast<double>(in_h) - 1.0;
  return torch::stack({nx, ny}, -1).unsqueeze(0).to(torch::kFloat32);
}

torch::Tensor sample(const torch::Tensor& img4, const torch::Tensor& grid, bool reflect) {
  auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(false);
  if (reflect)
    opts.padding_mode(torch::kReflection);
  else
    opts.padding_mode(torch::kZeros);
  return F::grid_sample(img4, grid.to(img4.dtype()), opts);
}

// The raised-cosine ellipse evaluated at aligned coordinates given as fractions of the crop.
torch::Tensor ellipse_mask(const torch::Tensor& u, const torch::Tensor& v, const PasteOptions& o) {
  auto r = torch::sqrt(torch::square((u - o.center_x) / o.radius_x) +
                       torch::square((v - o.center_y) / o.radius_y));
  const double d = std::clamp(o.feather / std::max(o.radius_x, o.radius_y), 1e-3, 1.0);
  auto t = ((r - (1.0 - d)) / d).clamp(0.0, 1.0);
  return 0.5 * (1.0 + torch::cos(t * M_PI));
}

torch::Tensor as_chw(const torch::Tensor& t, const char* what) {
  if (t.dim() == 4 && t.size(0) == 1) return t[0];
  if (t.dim() != 3)
    throw ArgumentError(std::string(what) + ": expected a [C,H,W] tensor, got " +
                        std::to_string(t.dim()) + " dims");
  return t;
}
}  // namespace

AlignedFace align_face(const torch::Tensor& image, const FivePoints& points, int size) {
  const FivePoints tmpl = ffhq_template(size);
  std::vector<Point2f> src(points.begin(), points.end()), dst(tmpl.begin(), tmpl.end());
  return align_face(image, fit_similarity(src, dst, true), size);
}

AlignedFace align_face(const torch::Tensor& image_in, const Similarity& m, int size) {
  if (size < 16) throw ArgumentError("align_face: size must be >= 16");
  torch::Tensor image = as_chw(image_in, "align_face").to(torch::kFloat32);
  const int64_t H = image.size(1), W = image.size(2);
  const Similarity inv = m.inverse();
  Affine out_to_in = to_affine(inv);  // aligned pixel -> image pixel
  torch::Tensor src = image;
  int64_t in_w = W, in_h = H;
  const double s = m.scale();  // aligned pixels per image pixel
  if (s < 0.5) {
    // The face is more than twice larger than the crop: bilinear would alias, so area-downscale the face's
    // region first to about the crop's resolution.
    double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
    for (auto c : {Point2f{-0.5f, -0.5f}, Point2f{size - 0.5f, -0.5f}, Point2f{-0.5f, size - 0.5f},
                   Point2f{size - 0.5f, size - 0.5f}}) {
      const Point2f p = inv.apply(c);
      x0 = std::min<double>(x0, p.x), x1 = std::max<double>(x1, p.x);
      y0 = std::min<double>(y0, p.y), y1 = std::max<double>(y1, p.y);
    }
    const int64_t cx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0)) - 2, 0, W - 1);
    const int64_t cy0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y0)) - 2, 0, H - 1);
    const int64_t cx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x1)) + 3, cx0 + 1, W);
    const int64_t cy1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(y1)) + 3, cy0 + 1, H);
    auto crop = image.slice(1, cy0, cy1).slice(2, cx0, cx1);
    const int64_t cw = cx1 - cx0, ch = cy1 - cy0;
    const int64_t rw = std::max<int64_t>(1, std::llround(cw * s)), rh = std::max<int64_t>(1, std::llround(ch * s));
    src = F::adaptive_avg_pool2d(crop.unsqueeze(0), F::AdaptiveAvgPool2dFuncOptions({rh, rw}))[0];
    out_to_in = compose(rescale(static_cast<double>(rw) / cw, static_cast<double>(rh) / ch),
                        compose(translate(-static_cast<double>(cx0), -static_cast<double>(cy0)), out_to_in));
    in_w = rw, in_h = rh;
  }
  auto grid = make_grid(out_to_in, size, size, 0, 0, in_w, in_h, image.device());
  AlignedFace out;
  out.image = sample(src.unsqueeze(0), grid, true)[0];
  out.transform = m;
  out.size = size;
  return out;
}

torch::Tensor face_blend_mask(int size, const torch::Device& device, const PasteOptions& o) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto c = (torch::arange(size, opts) + 0.5) / static_cast<double>(size);
  auto v = c.view({size, 1}).expand({size, size});
  auto u = c.view({1, size}).expand({size, size});
  return ellipse_mask(u, v, o).unsqueeze(0);
}

torch::Tensor paste_face(const torch::Tensor& image_in, const torch::Tensor& face_in,
                         const Similarity& transform, const PasteOptions& o, double image_scale) {
  torch::Tensor image = as_chw(image_in, "paste_face (image)");
  torch::Tensor face = as_chw(face_in, "paste_face (face)").to(image.device(), torch::kFloat32);
  if (face.size(1) != face.size(2)) throw ArgumentError("paste_face: the face must be square");
  if (face.size(0) != image.size(0))
    throw ArgumentError("paste_face: the face has " + std::to_string(face.size(0)) +
                        " channels, the image " + std::to_string(image.size(0)));
  if (!(image_scale > 0)) throw ArgumentError("paste_face: image_scale must be > 0");
  const int64_t H = image.size(1), W = image.size(2), S = face.size(1);
  // target (possibly upscaled) pixel -> photo pixel -> aligned pixel
  Affine t2a = compose(to_affine(transform), rescale(1.0 / image_scale, 1.0 / image_scale));
  // Where the aligned square lands in the target: only that region is touched.
  const Similarity a2p = transform.inverse();
  double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
  for (auto c : {Point2f{-0.5f, -0.5f}, Point2f{S - 0.5f, -0.5f}, Point2f{-0.5f, S - 0.5f},
                 Point2f{S - 0.5f, S - 0.5f}}) {
    const Point2f p = a2p.apply(c);
    const double px = (p.x + 0.5) * image_scale - 0.5, py = (p.y + 0.5) * image_scale - 0.5;
    x0 = std::min(x0, px), x1 = std::max(x1, px), y0 = std::min(y0, py), y1 = std::max(y1, py);
  }
  const int64_t rx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0)), 0, W);
  const int64_t ry0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y0)), 0, H);
  const int64_t rx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x1)) + 1, 0, W);
  const int64_t ry1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(y1)) + 1, 0, H);
  torch::Tensor out = image.to(torch::kFloat32).clone();
  if (rx1 <= rx0 || ry1 <= ry0) return out.to(image.dtype());  // the face is outside the image

  // Aligned pixels per target pixel. When the face shrinks on the way back (s > 1), each target
  // pixel averages k x k bilinear samples spread over `antialias` of its footprint: a box
  // prefilter aligned with the target grid (no second resampling), so a sharp restored face does
  // not alias, while an unmodified crop comes back nearly unchanged.
  const double s = transform.scale() / image_scale;
  const int k = std::clamp(static_cast<int>(std::ceil(s * o.antialias)), 1, 6);
  const int64_t ow = rx1 - rx0, oh = ry1 - ry0;
  torch::Tensor warped, grid;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const double dx = k == 1 ? 0.0 : ((j + 0.5) / k - 0.5) * o.antialias;
      const double dy = k == 1 ? 0.0 : ((i + 0.5) / k - 0.5) * o.antialias;
      auto g = make_grid(t2a, ow, oh, rx0 + dx, ry0 + dy, S, S, image.device());
      auto w = sample(face.unsqueeze(0), g, false)[0];
      warped = warped.defined() ? warped + w : w;
    }
  }
  warped = warped / static_cast<double>(k * k);
  grid = make_grid(t2a, ow, oh, static_cast<double>(rx0), static_cast<double>(ry0), S, S, image.device());
  // The mask is evaluated analytically at the exact aligned position of each target pixel (not
  // resampled from a texture), so it stays smooth at any scale. grid holds (2a+1)/S - 1, i.e.
  // (a + 0.5)/S = (g + 1)/2 is the position as a fraction of the crop.
  auto u = (grid[0].select(-1, 0) + 1.0) * 0.5;
  auto v = (grid[0].select(-1, 1) + 1.0) * 0.5;
  auto mask = ellipse_mask(u, v, o).unsqueeze(0);
  auto region = out.slice(1, ry0, ry1).slice(2, rx0, rx1);
  region.copy_(mask * warped + (1.0 - mask) * region);
  return out.to(image.dtype());
}

}  // namespace face2scene
