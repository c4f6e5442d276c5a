// Overlapping-tile inference for image-to-image networks (super-resolution now, the scene
// restorer later): the image is cut into tiles that overlap, each tile runs through the network,
// and the outputs are blended with a smooth window so that no seam shows.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace face2scene {

struct TileOptions {
  int tile = 0;       // tile side in input pixels; 0 or >= the image: run the whole image at once
  int overlap = 48;   // input pixels shared by neighbouring tiles
  // Of the overlap, this many input pixels at each tile's inner edge get weight 0: a network's
  // output near a tile edge sees zero padding instead of the neighbouring pixels. The rest of the
  // overlap is a raised-cosine crossfade.
  int margin = 20;  // measured: 20 keeps general-x4v3 within 1/255 of untiled
};

using TileFunction = std::function<torch::Tensor(const torch::Tensor&)>;

// x: [N,C,H,W] (any device). fn maps a [N,C,h,w] tile to [N,C',h*scale,w*scale]. Returns
// [N,C',H*scale,W*scale] float32 on fn's output device. `on_tile(done, total)` reports progress.
torch::Tensor run_tiled(const torch::Tensor& x, int scale, const TileOptions& options, const TileFunction& fn,
                        const std::function<void(int, int)>& on_tile = nullptr);

// How one axis of `size` pixels is cut: `starts` in increasing order, every tile `length` long.
// Rules (tests/test_tiling.cpp): the tiles cover [0, size), length <= tile (unless tile <= 0 or
// tile >= size: one tile of the whole side), neighbours share at least `overlap` pixels.
struct TileAxis {
  std::vector<int> starts;
  int length = 0;
};
TileAxis tile_axis(int size, int tile, int overlap);
std::vector<int> tile_starts(int size, int tile, int overlap);  // tile_axis(...).starts

// The sum of every tile's blending weight at each output pixel, [sH,sW] (before run_tiled
// normalises by it): 1 everywhere when the windows are built right (exposed for tests).
torch::Tensor tile_weight_sum(int height, int width, int scale, const TileOptions& options);

}  // namespace face2scene
