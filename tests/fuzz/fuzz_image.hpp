// Shared by fuzz_png and fuzz_jpeg: the checks a decoded image must pass.
#pragma once
#include <cstdlib>

#include "face2scene/image.hpp"
#include "face2scene/image_metadata.hpp"

namespace f2s_fuzz {
// Small enough that a fuzzed header cannot make one input take gigabytes.
constexpr uint64_t kMaxPixels = uint64_t{1} << 16;

inline void check_image(const face2scene::Image& img) {
  const size_t n = img.pixel_count();
  if (img.width <= 0 || img.height <= 0 || (img.channels != 1 && img.channels != 3) ||
      img.data.size() != n * img.channels || (img.has_alpha() && img.alpha.size() != n)) {
    std::abort();
  }
  for (auto v : img.data) {
    if (v > img.max_value()) std::abort();
  }
}
}  // namespace f2s_fuzz
