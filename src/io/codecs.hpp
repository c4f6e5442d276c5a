// Private codec entry points behind decode_image/encode_* (image.cpp).
#pragma once
#include <string>

#include "face2scene/image.hpp"

namespace face2scene::detail {
Image decode_png(const std::string& bytes, const std::string& name);
Image decode_jpeg(const std::string& bytes, const std::string& name);
std::string encode_png(const Image& image, int bit_depth, int level = 6, int threads = 1);
std::string encode_jpeg(const Image& image, int quality);
}  // namespace face2scene::detail
