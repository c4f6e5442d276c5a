#include "face2scene/tiling.hpp"

#include <algorithm>
#include <cmath>

#include "face2scene/core.hpp"

namespace face2scene {
namespace {

// 1-D blending weights for a tile of `len` output pixels. An inner edge (one shared with a
// neighbour) starts with `zero` pixels of weight 0, then a raised-cosine ramp of `ramp` pixels;
// the neighbour's mirrored ramp covers the same pixels, so the two weights sum to 1 there.
torch::Tensor window_1d(int64_t len, int64_t overlap_start, int64_t overlap_end, int64_t zero) {
  auto w = torch::ones({len}, torch::kFloat32);
  auto* p = w.data_ptr<float>();
  // One side: `zero` pixels of weight 0, then a raised cosine across the rest of the shared band
  // minus the neighbour's zero band, so the two tiles' weights are mirror images summing to 1.
  auto side = [&](int64_t overlap, bool at_end) {
    if (overlap <= 0) return;
    const int64_t ramp = std::max<int64_t>(1, overlap - 2 * zero);
    for (int64_t j = 0; j < std::min(zero + ramp, len); ++j) {
      const float v = j < zero ? 0.f
                               : 0.5f - 0.5f * std::cos(static_cast<float>(M_PI) * (static_cast<float>(j - zero) + 0.5f) /
                                                        static_cast<float>(ramp));
      p[at_end ? len - 1 - j : j] *= v;
    }
  };
  side(overlap_start, false);
  side(overlap_end, true);
  return w;
}

}  // namespace

std::vector<int> tile_starts(int size, int tile, int overlap) {
  if (tile <= 0 || tile >= size) return {0};
  // As few tiles as the maximum side allows, all of one length and evenly spread, so that no
  // tile is mostly overlap (a 256-pixel side with tile 200 gives two 145-pixel tiles, not 200+200).
  const int n = (size - overlap + (tile - overlap) - 1) / (tile - overlap);
  const int len = std::min(size, (size + (n - 1) * overlap + n - 1) / n + 1);
  std::vector<int> starts;
  for (int i = 0; i < n; ++i) starts.push_back(n == 1 ? 0 : static_cast<int>(int64_t(i) * (size - len) / (n - 1)));
  return starts;
}

// Tile length along an axis for the starts above.
int tile_length(int size, int tile, int overlap) {
  const auto s = tile_starts(size, tile, overlap);
  if (s.size() == 1) return size;
  const int n = static_cast<int>(s.size());
  return std::min(size, (size + (n - 1) * overlap + n - 1) / n + 1);
}

torch::Tensor run_tiled(const torch::Tensor& x, int scale, const TileOptions& o, const TileFunction& fn,
                        const std::function<void(int, int)>& on_tile) {
  if (x.dim() != 4) throw ArgumentError("run_tiled: expected an [N,C,H,W] tensor");
  if (scale < 1) throw ArgumentError("run_tiled: scale must be >= 1");
  const int H = static_cast<int>(x.size(2)), W = static_cast<int>(x.size(3));
  const bool whole = o.tile <= 0 || (o.tile >= H && o.tile >= W);
  if (whole) {
    auto y = fn(x).to(torch::kFloat32);
    if (on_tile) on_tile(1, 1);
    return y;
  }
  if (o.overlap < 0 || o.margin < 0 || 2 * o.margin >= o.overlap || o.tile <= 2 * o.overlap) {
    throw ArgumentError("tiling: need 0 <= 2*margin < overlap < tile/2 (tile " + std::to_string(o.tile) + ", overlap " +
                        std::to_string(o.overlap) + ", margin " + std::to_string(o.margin) + ")");
  }
  const auto ys = tile_starts(H, o.tile, o.overlap);
  const auto xs = tile_starts(W, o.tile, o.overlap);
  const int th = tile_length(H, o.tile, o.overlap), tw = tile_length(W, o.tile, o.overlap);
  const int64_t zero = static_cast<int64_t>(o.margin) * scale;
  // Actual overlap with the previous / next tile along an axis, in output pixels.
  auto shared = [&](const std::vector<int>& st, size_t i, int len, bool next) -> int64_t {
    if (next) return i + 1 < st.size() ? int64_t(st[i] + len - st[i + 1]) * scale : 0;
    return i > 0 ? int64_t(st[i - 1] + len - st[i]) * scale : 0;
  };
  torch::Tensor out, wsum;
  const int total = static_cast<int>(ys.size() * xs.size());
  int done = 0;
  for (size_t iy = 0; iy < ys.size(); ++iy) {
    const int y0 = ys[iy];
    for (size_t ix = 0; ix < xs.size(); ++ix) {
      const int x0 = xs[ix];
      auto tile = x.slice(2, y0, y0 + th).slice(3, x0, x0 + tw);
      auto y = fn(tile).to(torch::kFloat32);
      if (y.size(2) != int64_t(th) * scale || y.size(3) != int64_t(tw) * scale) {
        throw Error("run_tiled: the network returned a tile of the wrong size");
      }
      if (!out.defined()) {
        out = torch::zeros({y.size(0), y.size(1), int64_t(H) * scale, int64_t(W) * scale}, y.options());
        wsum = torch::zeros({1, 1, int64_t(H) * scale, int64_t(W) * scale}, y.options());
      }
      auto wy = window_1d(int64_t(th) * scale, shared(ys, iy, th, false), shared(ys, iy, th, true), zero);
      auto wx = window_1d(int64_t(tw) * scale, shared(xs, ix, tw, false), shared(xs, ix, tw, true), zero);
      auto w = (wy.unsqueeze(1) * wx.unsqueeze(0)).to(y.device()).view({1, 1, wy.size(0), wx.size(0)});
      const int64_t oy = int64_t(y0) * scale, ox = int64_t(x0) * scale;
      out.slice(2, oy, oy + y.size(2)).slice(3, ox, ox + y.size(3)).add_(y * w);
      wsum.slice(2, oy, oy + y.size(2)).slice(3, ox, ox + y.size(3)).add_(w);
      if (on_tile) on_tile(++done, total);
    }
  }
  return out.div_(wsum);
}

}  // namespace face2scene
