// The Image type: what comes out of a decoder and goes into an encoder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "face2scene/core.hpp"

namespace face2scene {

// Pixels are interleaved HWC, each sample stored in a uint16_t whatever the bit depth (8 or 16),
// so one code path serves both. Values are sRGB-encoded, as decoders deliver them: every model and
// degradation in face2scene works on sRGB-encoded values (as Real-ESRGAN and the SR literature do);
// srgb_to_linear/linear_to_srgb in torch_utils.hpp exist for operations that need light.
// Alpha is kept aside (same width/height, same bit depth) so colour work never sees it, and is
// re-attached on output.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;   // 1 (grey) or 3 (RGB), alpha excluded
  int bit_depth = 8;  // 8 or 16
  std::vector<uint16_t> data;   // width*height*channels
  std::vector<uint16_t> alpha;  // empty, or width*height

  Image() = default;
  Image(int w, int h, int c, int depth = 8);

  bool empty() const { return width == 0 || height == 0; }
  bool has_alpha() const { return !alpha.empty(); }
  int max_value() const { return bit_depth == 16 ? 65535 : 255; }
  size_t pixel_count() const { return static_cast<size_t>(width) * height; }
  uint16_t& at(int x, int y, int c) { return data[(static_cast<size_t>(y) * width + x) * channels + c]; }
  uint16_t at(int x, int y, int c) const {
    return data[(static_cast<size_t>(y) * width + x) * channels + c];
  }
  // Same content at another bit depth (rounded).
  Image with_bit_depth(int depth) const;
  // Grey replicated to RGB (no-op for RGB).
  Image to_rgb() const;
};

enum class ImageFormat { kPng, kJpeg };

struct WriteOptions {
  int jpeg_quality = 95;
  // For PNG: 0 keeps the image's own bit depth; 8 or 16 forces one.
  int bit_depth = 0;
  // zlib level for PNG (0-9). 6 is libpng's default; 1-3 encode several times faster for files
  // ~10% larger (large outputs such as ×4 upscales).
  int png_level = 6;
  // PNG encoder threads: 1 encodes with libpng on the calling thread; N > 1 filters and deflates
  // up to N horizontal strips (of at least 64 rows) in parallel into one zlib stream, and images
  // too small for two strips still go through libpng; 0 means std::thread::hardware_concurrency().
  // Single-threaded zlib is the bottleneck of writing large outputs (~0.3 s for a 2048² RGB image
  // at level 2 on the H100 machine's CPU, far more than the GPU ×4 pass).
  int threads = 1;
};

// Reads PNG (8/16 bit, grey, grey+alpha, RGB, RGBA, palette) or JPEG (grey, RGB, CMYK-free),
// chosen by content, not by extension. Throws IoError / FormatError naming the file.
Image read_image(const std::string& path);
Image decode_image(const std::string& bytes, const std::string& name_for_errors = "<memory>");
// Format from the extension (.png, .jpg, .jpeg); writes atomically.
void write_image(const std::string& path, const Image& image, const WriteOptions& options = {});
// threads as in WriteOptions::threads; small images are always encoded on one thread.
std::string encode_png(const Image& image, int bit_depth = 0, int level = 6, int threads = 1);
// JPEG is 8-bit; a 16-bit image is rounded to 8. Alpha is dropped (JPEG has none).
std::string encode_jpeg(const Image& image, int quality);
ImageFormat format_from_extension(const std::string& path);
bool is_image_path(const std::string& path);

}  // namespace face2scene
