// Overlapping-tile inference (src/restore/tiling.cpp), checked against rules rather than against
// the implementation's own numbers: every pixel covered, no tile longer than asked, neighbours
// sharing at least the requested overlap, blending windows summing to 1, and a network whose
// receptive field fits inside the zero-weight margin reproduced exactly.
#include <gtest/gtest.h>

#include <algorithm>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/tiling.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace F = torch::nn::functional;

namespace {
// Every rule of one axis; returns an empty string when they all hold, else what broke.
std::string axis_violation(int size, int tile, int overlap) {
  const auto a = tile_axis(size, tile, overlap);
  const auto& s = a.starts;
  auto at = [&](const std::string& what) {
    return what + " (size " + std::to_string(size) + ", tile " + std::to_string(tile) + ", overlap " +
           std::to_string(overlap) + ", length " + std::to_string(a.length) + ", " + std::to_string(s.size()) + " tiles)";
  };
  if (s.empty()) return at("no tile");
  if (tile_starts(size, tile, overlap) != s) return at("tile_starts differs from tile_axis");
  if (tile <= 0 || tile >= size) return s.size() == 1 && a.length == size ? "" : at("one whole-side tile expected");
  if (a.length > tile) return at("tile longer than the tile size");
  if (a.length <= overlap) return at("tile not longer than the overlap");
  if (s.front() != 0) return at("first tile does not start at 0");
  if (s.back() + a.length != size) return at("last tile does not end at the border");
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] <= s[i - 1]) return at("starts not increasing");
    // Covered and overlapping: the previous tile reaches at least `overlap` pixels past this start.
    if (s[i - 1] + a.length - s[i] < overlap) return at("neighbours share fewer pixels than the overlap");
  }
  return "";
}
}  // namespace

TEST(Tiling, AxesFollowTheRules) {
  // The case that once gave 41-pixel tiles for a 40-pixel tile size.
  EXPECT_LE(tile_axis(200, 40, 8).length, 40);
  EXPECT_EQ(axis_violation(200, 40, 8), "");
  int checked = 0;
  for (int size = 1; size <= 260; ++size) {
    for (int overlap : {0, 1, 3, 8, 16, 32}) {
      for (int tile : {0, 2 * overlap + 1, 2 * overlap + 2, 33, 40, 64, 65, 100, 128, 200, 256, 300}) {
        if (tile != 0 && tile <= 2 * overlap) continue;  // run_tiled refuses these
        const auto v = axis_violation(size, tile, overlap);
        ASSERT_EQ(v, "");
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(Tiling, BlendWeightsSumToOne) {
  int checked = 0;
  for (int scale : {1, 2, 4}) {
    for (auto [h, w] : {std::pair{37, 53}, {64, 64}, {100, 61}, {130, 97}}) {
      for (auto [tile, overlap, margin] : {std::tuple{20, 8, 2}, {24, 10, 4}, {33, 16, 7}, {40, 12, 0}, {64, 24, 8}}) {
        TileOptions o;
        o.tile = tile, o.overlap = overlap, o.margin = margin;
        const auto sum = tile_weight_sum(h, w, scale, o);
        ASSERT_EQ(sum.sizes(), (std::vector<int64_t>{int64_t(h) * scale, int64_t(w) * scale}));
        EXPECT_LT((sum - 1).abs().max().item<float>(), 1e-5f)
            << h << "x" << w << " scale " << scale << " tile " << tile << " overlap " << overlap << " margin " << margin;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 60);
}

TEST(Tiling, ReceptiveFieldInsideTheMarginIsExact) {
  // A network that sees `r` input pixels around each output pixel (zero padding at the tile edge,
  // as a real network): its outputs within r of an inner tile edge are wrong, so the blend must
  // give exactly those zero weight. margin == r: tiled equals untiled everywhere.
  torch::manual_seed(1);
  for (int r : {2, 5}) {
    for (int scale : {1, 2}) {
      const auto kernel = torch::rand({3, 3, 2 * r + 1, 2 * r + 1});
      auto fn = [&](const torch::Tensor& t) {
        auto y = F::conv2d(t, kernel, F::Conv2dFuncOptions().padding(r));
        return scale == 1 ? y : F::interpolate(y, F::InterpolateFuncOptions().scale_factor(std::vector<double>{double(scale), double(scale)}).mode(torch::kNearest));
      };
      auto x = torch::rand({2, 3, 71, 90});
      TileOptions o;
      o.tile = 32, o.overlap = 2 * r + 3, o.margin = r;
      const auto whole = fn(x);
      const auto tiled = run_tiled(x, scale, o, fn);
      ASSERT_EQ(tiled.sizes(), whole.sizes());
      const float rel = ((tiled - whole).abs().max() / whole.abs().max()).item<float>();
      EXPECT_LT(rel, 1e-5f) << "r " << r << " scale " << scale;
    }
  }
}

TEST(Tiling, PointwiseModelIsExactAcrossTiles) {
  // A model without spatial context: tiling must reproduce it everywhere.
  auto x = torch::rand({1, 3, 37, 53});
  auto fn = [](const torch::Tensor& t) {
    return F::interpolate(t * 0.5 + 0.25, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
  };
  TileOptions o;
  o.tile = 20;
  o.overlap = 8;
  o.margin = 2;
  int tiles = 0;
  auto tiled = run_tiled(x, 2, o, fn, [&](int, int total) { tiles = total; });
  EXPECT_GT(tiles, 4);  // it did tile
  EXPECT_LT((tiled - fn(x)).abs().max().item<float>(), 1e-6f);
}

TEST(Tiling, RefusesMarginsThatLeaveNoCrossfade) {
  auto x = torch::rand({1, 3, 50, 50});
  auto fn = [](const torch::Tensor& t) { return t; };
  TileOptions o;
  o.tile = 20, o.overlap = 8, o.margin = 4;  // 2*margin == overlap: no band left to blend in
  EXPECT_THROW(run_tiled(x, 1, o, fn), ArgumentError);
  o.margin = 2, o.tile = 16;  // tile == 2*overlap
  EXPECT_THROW(run_tiled(x, 1, o, fn), ArgumentError);
}

TEST(Tiling, RealModelTiledMatchesUntiled) {
  // Tiled and untiled differ by < 1/255 away from the image borders, with upscale's default
  // overlap and margin (48, (48-8)/2: an 8-pixel crossfade).
  if (!file_exists(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3))) {
    GTEST_SKIP() << "no " << realesrgan_weights_path(RealEsrganModel::kGeneralX4V3) << ": run scripts/install_models.sh";
  }
  UpscaleOptions o;
  o.model = RealEsrganModel::kGeneralX4V3;
  Upscaler whole(o);
  o.tiles.tile = 100;
  o.tiles.overlap = 48;
  o.tiles.margin = 20;
  Upscaler tiled(o);
  F2S_REQUIRE_DATA("natural/Kodak24/kodim15.png");
  auto img = image_to_tensor(read_image(f2s_test::data_path("natural/Kodak24/kodim15.png")), torch::kCPU,
                             torch::kFloat32, true)
                 .slice(1, 150, 278)
                 .slice(2, 280, 408)
                 .unsqueeze(0);
  auto a = whole.upscale_x4(img), b = tiled.upscale_x4(img);
  const int border = 16;  // output pixels
  auto d = (a - b).abs().slice(2, border, a.size(2) - border).slice(3, border, a.size(3) - border);
  EXPECT_LT(d.max().item<float>(), 1.0f / 255.0f);
}
