// dlib's HOG face scan as torch ops (see hog_torch.hpp). Each step names the dlib function it
// follows (dlib 19.24: image_transforms/fhog.h, image_processing/scan_fhog_pyramid.h,
// object_detector.h, image_pyramid.h); the arithmetic is re-derived, not copied.
#include "hog_torch.hpp"

#include <algorithm>
#include <cmath>

#include "face2scene/core.hpp"

namespace face2scene::detail {

namespace {
constexpr int kOrient = 18;  // signed orientations, 20 degrees apart

// The bilinear split of each pixel row (or column) between its two nearest cells, as
// impl_extract_fhog_features does it: position p = (i + 0.5) / cell - 0.5 votes (1 - frac) into
// padded cell floor(p) + 1 and frac into floor(p) + 2. Pixels 1 .. visible-1 vote.
struct CellSplit {
  torch::Tensor first;              // int64 [n]: padded cell index of the first share
  torch::Tensor w_first, w_second;  // float [n]
};
CellSplit cell_split(int64_t visible, int cell, const torch::TensorOptions& opts) {
  auto i = torch::arange(1, visible, torch::TensorOptions().dtype(torch::kFloat32)).to(opts.device());
  auto p = (i + 0.5) / static_cast<double>(cell) - 0.5;
  auto fl = p.floor();
  auto frac = p - fl;
  return {(fl + 1).to(torch::kLong), 1 - frac, frac};
}
}  // namespace

torch::Tensor fhog_features(const torch::Tensor& grey, int cell) {
  TORCH_CHECK(grey.dim() == 2, "fhog_features: expected a [H, W] image");
  const auto opts = grey.options().dtype(torch::kFloat32);
  const auto I = grey.to(torch::kFloat32);
  const int64_t H = I.size(0), W = I.size(1);
  const int64_t cr = static_cast<int64_t>(static_cast<float>(H) / cell + 0.5f);
  const int64_t cc = static_cast<int64_t>(static_cast<float>(W) / cell + 0.5f);
  const int64_t hr = std::max<int64_t>(cr - 2, 0), hc = std::max<int64_t>(cc - 2, 0);
  if (hr == 0 || hc == 0) return torch::zeros({31, 0, 0}, opts);
  const int64_t vr = std::min(cr * cell, H) - 1, vc = std::min(cc * cell, W) - 1;
  const int64_t R2 = cr + 2, C2 = cc + 2;

  // Orientation histograms of the cells (padded by one cell all round, as dlib's `hist`).
  auto hist2 = torch::zeros({R2, kOrient * C2}, opts);
  if (vr >= 2 && vc >= 2) {
    // Central differences at pixels 1 .. visible-1 (dlib's get_gradient for grey images).
    auto gx = I.slice(0, 1, vr).slice(1, 2, vc + 1) - I.slice(0, 1, vr).slice(1, 0, vc - 1);
    auto gy = I.slice(0, 2, vr + 1).slice(1, 1, vc) - I.slice(0, 0, vr - 1).slice(1, 1, vc);
    auto mag = (gx * gx + gy * gy).sqrt();
    // dlib snaps the gradient to the one of 18 directions 20 degrees apart with the largest dot
    // product: the nearest one by angle. (A zero gradient lands in bin 0 with weight 0.) On its
    // ties dlib keeps the first direction it tried: a vertical gradient, exactly between 80 and
    // 100 degrees, goes to 80 (bin 4) pointing down and to 260 (bin 13) pointing up, where the
    // round-half-to-even of the angle would give 14.
    auto bin = torch::round(torch::atan2(gy, gx) * (9.0 / M_PI)).to(torch::kLong).remainder(kOrient);
    bin = torch::where(gx.eq(0) & gy.lt(0), torch::full_like(bin, 13), bin);
    const auto xs = cell_split(vc, cell, opts), ys = cell_split(vr, cell, opts);
    // Columns first, into [rows of pixels, bin * C2 + cell column] ...
    auto by_col = torch::zeros({vr - 1, kOrient * C2}, opts);
    auto idx = bin * C2 + xs.first.view({1, -1});
    by_col.scatter_add_(1, idx, mag * xs.w_first.view({1, -1}));
    by_col.scatter_add_(1, idx + 1, mag * xs.w_second.view({1, -1}));
    // ... then rows, into the cells.
    hist2.index_add_(0, ys.first, by_col * ys.w_first.view({-1, 1}));
    hist2.index_add_(0, ys.first + 1, by_col * ys.w_second.view({-1, 1}));
  }
  auto hist = hist2.view({R2, kOrient, C2}).permute({1, 0, 2});  // [18, R2, C2]

  // Energy of each cell (unsigned orientations), then the four 2x2 blocks around each cell.
  auto inner = hist.slice(1, 1, cr + 1).slice(2, 1, cc + 1);
  auto norm = (inner.slice(0, 0, 9) + inner.slice(0, 9, 18)).pow(2).sum(0);  // [cr, cc]
  auto S = norm.slice(0, 0, cr - 1).slice(1, 0, cc - 1) + norm.slice(0, 1, cr).slice(1, 0, cc - 1) +
           norm.slice(0, 0, cr - 1).slice(1, 1, cc) + norm.slice(0, 1, cr).slice(1, 1, cc);
  // The feature at (y, x) describes cell (y+1, x+1); its blocks in dlib's lane order.
  auto N = torch::stack({S.slice(0, 1, hr + 1).slice(1, 1, hc + 1), S.slice(0, 0, hr).slice(1, 1, hc + 1),
                         S.slice(0, 1, hr + 1).slice(1, 0, hc), S.slice(0, 0, hr).slice(1, 0, hc)});
  auto nn = 0.2 * (N + 1e-4).sqrt();  // [4, hr, hc]: min(h, nn) * n = min(h / |block|, 0.2) / 2
  auto n = 0.1 / nn;
  auto Hc = hist.slice(1, 2, 2 + hr).slice(2, 2, 2 + hc);  // [18, hr, hc]
  auto sens = torch::minimum(Hc.unsqueeze(1), nn.unsqueeze(0)) * n.unsqueeze(0);  // [18, 4, hr, hc]
  auto Hu = Hc.slice(0, 0, 9) + Hc.slice(0, 9, 18);
  auto unsens = (torch::minimum(Hu.unsqueeze(1), nn.unsqueeze(0)) * n.unsqueeze(0)).sum(1);
  auto texture = sens.sum(0) * (2 * 0.2357);
  return torch::cat({sens.sum(1), unsens, texture}, 0);
}

TorchHogScanner::TorchHogScanner(const HogModel& model, torch::Device device) : model_(model), device_(device) {
  const auto f = torch::TensorOptions().dtype(torch::kFloat32);
  // [filter, plane, row, col] -> [(filter, row), (plane, col)]: the correlation is one matrix
  // product with the feature map unfolded along x (see correlate()).
  filters_ = torch::from_blob(model_.weights.data(), {model_.filters, model_.planes, model_.rows, model_.cols}, f)
                 .permute({0, 2, 1, 3})
                 .reshape({model_.filters * model_.rows, model_.planes * model_.cols})
                 .clone()
                 .to(device);
  bias_ = torch::from_blob(model_.bias.data(), {model_.filters, 1, 1}, f).clone().to(device);
}

// The filters' valid correlation with the padded fHOG map [planes, Hp, Wp] -> [filters, Hp - rows
// + 1, Wp - cols + 1], as a matrix product: U[(plane, dx), y, x] = feats[plane, y, x + dx]; then
// V[(filter, dy), y, x] = W · U, and out[filter, y, x] = sum over dy of V[(filter, dy), y + dy, x].
// cuDNN's convolution on this shape (31 planes, 5 outputs, 10x10) picked SIMT kernels that took
// ~60 ms a photo on an H100 in fp16 and ~120 ms in fp32 (docs/pipeline.md, "GPU speed"); a GEMM of
// [50 x 310] by [310 x Hp*W] is what cuBLAS does well: ~19 GFLOP a 512² photo scanned for 12-px
// faces, in fp32, so it scores as on the CPU. Timed on the H100 (session 15): the whole detection
// stage ~9 ms of GPU time a photo instead of ~60. On the CPU it is as fast as conv2d.
torch::Tensor TorchHogScanner::correlate(const torch::Tensor& padded) const {
  const int64_t P = padded.size(0), Hp = padded.size(1), W = padded.size(2) - model_.cols + 1;
  const int64_t H = Hp - model_.rows + 1;
  std::vector<torch::Tensor> cols;
  for (int dx = 0; dx < model_.cols; ++dx) cols.push_back(padded.slice(2, dx, dx + W));
  const auto U = torch::stack(cols, 1).reshape({P * model_.cols, Hp * W});
  const auto V = torch::mm(filters_, U).view({model_.filters, model_.rows, Hp, W});
  auto out = V.select(1, 0).slice(1, 0, H).clone();
  for (int dy = 1; dy < model_.rows; ++dy) out += V.select(1, dy).slice(1, dy, dy + H);
  return out;
}

namespace {
struct Rect {  // dlib's rectangle: inclusive pixel bounds
  long l, t, r, b;
  double area() const { return (r < l || b < t) ? 0.0 : double(r - l + 1) * double(b - t + 1); }
};
long round_half_up(double v) { return static_cast<long>(std::floor(v + 0.5)); }

// dlib's test_box_overlap: IoU against the bounding box of both, or either box mostly covered.
bool overlaps(const Rect& a, const Rect& b, double iou, double covered) {
  const Rect in{std::max(a.l, b.l), std::max(a.t, b.t), std::min(a.r, b.r), std::min(a.b, b.b)};
  const double inner = in.area();
  if (inner == 0) return false;
  const Rect outer{std::min(a.l, b.l), std::min(a.t, b.t), std::max(a.r, b.r), std::max(a.b, b.b)};
  return inner / outer.area() > iou || inner / a.area() > covered || inner / b.area() > covered;
}
}  // namespace

std::vector<RawDetection> TorchHogScanner::detect(const torch::Tensor& grey_in, float threshold) const {
  TORCH_CHECK(grey_in.dim() == 2, "TorchHogScanner::detect: expected a [H, W] image");
  namespace F = torch::nn::functional;
  const int cell = model_.cell_size;
  // Pyramid depth as create_fhog_pyramid counts it: 5/6 steps of the image rectangle (rounded to
  // whole pixels each step) until a side drops under min_layer.
  int levels = 0;
  {
    long l = 0, t = 0, r = grey_in.size(1) - 1, b = grey_in.size(0) - 1;
    do {
      auto down = [](long p) { return round_half_up((p - 0.3) * 5.0 / 6.0); };
      l = down(l), t = down(t), r = down(r), b = down(b);
      ++levels;
    } while (r - l + 1 >= model_.min_layer && b - t + 1 >= model_.min_layer && levels < 1000);
  }
  struct Level {
    int level;
    int64_t rows, cols, offset;
  };
  std::vector<Level> info;
  std::vector<torch::Tensor> scores;
  int64_t offset = 0;
  auto img = grey_in.to(device_, torch::kFloat32);
  for (int lv = 0; lv < levels; ++lv) {
    if (lv > 0) {
      // pyramid_down<6>: bilinear resize to floor(5/6) of each side, corners aligned, rounded.
      const int64_t h = (5 * img.size(0)) / 6, w = (5 * img.size(1)) / 6;
      if (h < 1 || w < 1) break;
      img = F::interpolate(img.view({1, 1, img.size(0), img.size(1)}),
                           F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(true))
                .view({h, w});
      img = (img + 0.5).floor();
    }
    auto feats = fhog_features(img, cell);
    if (feats.size(1) == 0) continue;
    // Zero padding so that a window may hang over the border as in dlib's padded fHOG image:
    // (rows-1)/2 before, rows/2 after; the valid correlation then covers every padded position.
    const int pr0 = (model_.rows - 1) / 2, pr1 = model_.rows / 2, pc0 = (model_.cols - 1) / 2, pc1 = model_.cols / 2;
    auto s = correlate(torch::constant_pad_nd(feats, {pc0, pc1, pr0, pr1})) - bias_;  // [filters, rows, cols]: the margin
    info.push_back({lv, s.size(1), s.size(2), offset});
    offset += s.numel();
    scores.push_back(s.flatten());
  }
  std::vector<RawDetection> out;
  if (scores.empty()) return out;
  // One transfer for all levels: the positions and margins of windows above the threshold.
  auto all = torch::cat(scores);
  auto hit = torch::nonzero(all >= threshold).flatten();
  auto idx = hit.to(torch::kCPU);
  auto val = all.index_select(0, hit).to(torch::kCPU);
  const auto* ip = idx.data_ptr<int64_t>();
  const auto* vp = val.data_ptr<float>();
  struct Cand {
    Rect rect;
    float score;
    int filter;
  };
  std::vector<Cand> cands;
  cands.reserve(static_cast<size_t>(idx.numel()));
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const int64_t g = ip[i];
    const auto it = std::upper_bound(info.begin(), info.end(), g, [](int64_t v, const Level& L) { return v < L.offset; }) - 1;
    int64_t rem = g - it->offset;
    const int64_t per = it->rows * it->cols;
    const int k = static_cast<int>(rem / per);
    rem %= per;
    const long oy = static_cast<long>(rem / it->cols), ox = static_cast<long>(rem % it->cols);
    // The window's cells in the padded fHOG image, then fhog_to_image: cell -> pixel centre of
    // the cell (the image's 1-pixel border and the feature map's 1-cell border added back).
    auto to_image = [&](long p, int filter_side) {
      const long q = (p + 1 - (filter_side - 1) / 2) * cell + 1;
      return q + (q >= 0 ? cell / 2 : -(cell / 2));
    };
    double x0 = to_image(ox, model_.cols), y0 = to_image(oy, model_.rows);
    double x1 = to_image(ox + model_.cols - 1, model_.cols), y1 = to_image(oy + model_.rows - 1, model_.rows);
    // pyramid_down<6>::rect_up, level times: p -> p * 6/5 + 0.3.
    for (int u = 0; u < it->level; ++u) {
      x0 = x0 * 1.2 + 0.3, y0 = y0 * 1.2 + 0.3, x1 = x1 * 1.2 + 0.3, y1 = y1 * 1.2 + 0.3;
    }
    cands.push_back({{round_half_up(x0), round_half_up(y0), round_half_up(x1), round_half_up(y1)}, vp[i], k});
  }
  // object_detector's non-max suppression: strongest first, drop what overlaps a kept box.
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.score > b.score; });
  std::vector<Cand> kept;
  for (const auto& c : cands) {
    bool hidden = false;
    for (const auto& k : kept)
      if (overlaps(k.rect, c.rect, model_.nms_iou, model_.nms_covered)) {
        hidden = true;
        break;
      }
    if (hidden) continue;
    kept.push_back(c);
    RawDetection r;
    r.box = {static_cast<float>(c.rect.l), static_cast<float>(c.rect.t), static_cast<float>(c.rect.r + 1),
             static_cast<float>(c.rect.b + 1)};
    r.score = c.score;
    r.pose = c.filter;
    out.push_back(r);
  }
  return out;
}

}  // namespace face2scene::detail
