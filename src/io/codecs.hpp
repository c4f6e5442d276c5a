// Private codec entry points behind decode_image/encode_* (image.cpp).
#pragma once
#include <cstdint>
#include <string>

#include "face2scene/image.hpp"
#include "face2scene/image_metadata.hpp"

namespace face2scene::detail {
// What a decoder found besides the pixels; applied by decode_image (image_metadata.cpp).
struct DecodedMetadata {
  std::string exif;  // EXIF TIFF block (after JPEG APP1's "Exif\0\0"), or empty
  std::string icc;   // the whole ICC profile, or empty
};
Image decode_png(const std::string& bytes, const std::string& name, uint64_t max_pixels, DecodedMetadata& meta);
Image decode_jpeg(const std::string& bytes, const std::string& name, uint64_t max_pixels, DecodedMetadata& meta);
std::string encode_png(const Image& image, int bit_depth, int level = 6, int threads = 1);
std::string encode_jpeg(const Image& image, int quality);
// Converts the pixels from `icc` to sRGB in place (see ImageReadOptions); warns naming `name` and
// leaves them alone when the profile is unusable.
void convert_icc_to_srgb(Image& image, const std::string& icc, const std::string& name);
}  // namespace face2scene::detail
