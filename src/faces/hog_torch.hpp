// Internal: dlib's HOG face detector computed with torch ops, so that it runs on a GPU.
//
// On a GPU machine the scene restorer takes ~70 ms a photo while dlib's scan at the pipeline's
// 12-px minimum face takes 1.4–1.7 s of one CPU core (docs/pipeline.md, "GPU speed"): detection,
// not the restorer, bounded the throughput. This is the same detector, not a new one: dlib's five
// trained filters (taken from dlib at load time), its fHOG features (Felzenszwalb et al. 2010 as
// dlib's extract_fhog_features computes them), its 5/6 image pyramid, its window geometry and its
// non-max suppression. Boxes and scores agree with dlib's up to float rounding (tests).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "dlib_backend.hpp"

namespace face2scene::detail {

// fHOG of a grey image: `grey` is [H, W] float holding 0..255 integer values (any device). Returns
// [31, cells_y - 2, cells_x - 2] (cells = round(side / cell_size)): 18 contrast-sensitive and 9
// contrast-insensitive orientation energies, then 4 texture energies, each cell normalised by its
// four 2x2 blocks and truncated at 0.2. Empty ([31, 0, 0]) for images under 3 cells.
torch::Tensor fhog_features(const torch::Tensor& grey, int cell_size = 8);

class TorchHogScanner {
 public:
  TorchHogScanner(const HogModel& model, torch::Device device);
  // dlib's object_detector::operator()(img, dets, threshold) for a [H, W] float image of 0..255
  // integer values on the scanner's device: detections with score >= threshold, in that image's
  // pixels, after dlib's non-max suppression. Thread-safe (no state changes).
  std::vector<RawDetection> detect(const torch::Tensor& grey, float threshold) const;
  torch::Device device() const { return device_; }

 private:
  HogModel model_;
  torch::Device device_;
  torch::Tensor correlate(const torch::Tensor& padded) const;
  torch::Tensor filters_;  // [(filter, row), (plane, col)]
  torch::Tensor bias_;     // [filters, 1, 1]
};

}  // namespace face2scene::detail
