// Private: the SSIM core shared by SSIM and MS-SSIM.
#pragma once

#include <array>

namespace face2scene::metrics::detail {

struct SsimMeans {
  double ssim = 0;  // mean of l*cs over the valid region
  double cs = 0;    // mean of the contrast-structure term alone
};
// One channel, values on the [0,255] scale, 'valid' 11x11 Gaussian (sigma 1.5) window.
SsimMeans ssim_plane(const float* a, const float* b, int width, int height);
const std::array<float, 11>& gaussian11();

}  // namespace face2scene::metrics::detail
