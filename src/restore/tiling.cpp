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

TileAxis tile_axis(int size, int tile, int overlap) {
  if (tile <= 0 || tile >= size) return {{0}, size};
  // As few tiles as the maximum side allows, all of one length and evenly spread, so that no
  // tile is mostly overlap (a 256-pixel side with tile 200 gives two 144-pixel tiles, not 200+200).
  // n tiles of `tile` pixels sharing `overlap` cover n*tile - (n-1)*overlap pixels: the least n
  // that covers `size`. The shortest common length that still keeps every shared band >= overlap
  // is ceil((size + (n-1)*overlap) / n) (<= tile by the choice of n): with starts rounded down
  // from an even spread, each step is <= ceil((size-len)/(n-1)) <= len - overlap.
  const int n = (size - overlap + (tile - overlap) - 1) / (tile - overlap);
  const int len = std::min(tile, (size + (n - 1) * overlap + n - 1) / n);
  TileAxis a;
  a.length = len;
  for (int i = 0; i < n; ++i) a.starts.push_back(n == 1 ? 0 : static_cast<int>(int64_t(i) * (size - len) / (n - 1)));
  return a;
}

std::vector<int> tile_starts(int size, int tile, int overlap) { return tile_axis(size, tile, overlap).starts; }

namespace {

void check_tile_options(const TileOptions& o) {
  if (o.overlap < 0 || o.margin < 0 || 2 * o.margin >= o.overlap || o.tile <= 2 * o.overlap) {
    throw ArgumentError("tiling: need 0 <= 2*margin < overlap < tile/2 (tile " + std::to_string(o.tile) + ", overlap " +
                        std::to_string(o.overlap) + ", margin " + std::to_string(o.margin) + ")");
  }
}

// Calls visit(y0, x0, th, tw, weight [1,1,th*scale,tw*scale]) for every tile of an H x W input.
template <typename Visit>
void for_each_tile(int H, int W, int scale, const TileOptions& o, Visit&& visit) {
  const auto ay = tile_axis(H, o.tile, o.overlap), ax = tile_axis(W, o.tile, o.overlap);
  const int th = ay.length, tw = ax.length;
  const int64_t zero = static_cast<int64_t>(o.margin) * scale;
  // Actual overlap with the previous / next tile along an axis, in output pixels.
  auto shared = [&](const std::vector<int>& st, size_t i, int len, bool next) -> int64_t {
    if (next) return i + 1 < st.size() ? int64_t(st[i] + len - st[i + 1]) * scale : 0;
    return i > 0 ? int64_t(st[i - 1] + len - st[i]) * scale : 0;
  };
  for (size_t iy = 0; iy < ay.starts.size(); ++iy) {
    auto wy = window_1d(int64_t(th) * scale, shared(ay.starts, iy, th, false), shared(ay.starts, iy, th, true), zero);
    for (size_t ix = 0; ix < ax.starts.size(); ++ix) {
      auto wx = window_1d(int64_t(tw) * scale, shared(ax.starts, ix, tw, false), shared(ax.starts, ix, tw, true), zero);
      auto w = (wy.unsqueeze(1) * wx.unsqueeze(0)).view({1, 1, wy.size(0), wx.size(0)});
      visit(ay.starts[iy], ax.starts[ix], th, tw, w);
    }
  }
}

}  // namespace

torch::Tensor tile_weight_sum(int H, int W, int scale, const TileOptions& o) {
  auto sum = torch::zeros({1, 1, int64_t(H) * scale, int64_t(W) * scale});
  if (o.tile <= 0 || (o.tile >= H && o.tile >= W)) return sum.fill_(1).view({sum.size(2), sum.size(3)});
  check_tile_options(o);
  for_each_tile(H, W, scale, o, [&](int y0, int x0, int, int, const torch::Tensor& w) {
    sum.slice(2, int64_t(y0) * scale, int64_t(y0) * scale + w.size(2))
        .slice(3, int64_t(x0) * scale, int64_t(x0) * scale + w.size(3))
        .add_(w);
  });
  return sum.view({sum.size(2), sum.size(3)});
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
  check_tile_options(o);
  torch::Tensor out, wsum;
  const int total = static_cast<int>(tile_starts(H, o.tile, o.overlap).size() * tile_starts(W, o.tile, o.overlap).size());
  int done = 0;
  for_each_tile(H, W, scale, o, [&](int y0, int x0, int th, int tw, const torch::Tensor& w_cpu) {
    auto tile = x.slice(2, y0, y0 + th).slice(3, x0, x0 + tw);
    auto y = fn(tile).to(torch::kFloat32);
    if (y.size(2) != int64_t(th) * scale || y.size(3) != int64_t(tw) * scale) {
      throw Error("run_tiled: the network returned a tile of the wrong size");
    }
    if (!out.defined()) {
      out = torch::zeros({y.size(0), y.size(1), int64_t(H) * scale, int64_t(W) * scale}, y.options());
      wsum = torch::zeros({1, 1, int64_t(H) * scale, int64_t(W) * scale}, y.options());
    }
    auto w = w_cpu.to(y.device());
    const int64_t oy = int64_t(y0) * scale, ox = int64_t(x0) * scale;
    out.slice(2, oy, oy + y.size(2)).slice(3, ox, ox + y.size(3)).add_(y * w);
    wsum.slice(2, oy, oy + y.size(2)).slice(3, ox, ox + y.size(3)).add_(w);
    if (on_tile) on_tile(++done, total);
  });
  // The windows sum to 1 (tile_weight_sum); dividing only absorbs float rounding.
  return out.div_(wsum);
}

}  // namespace face2scene
