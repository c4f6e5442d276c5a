#include <algorithm>
#include <cctype>
#include <cmath>

#include "face2scene/image.hpp"
#include "face2scene/image_metadata.hpp"
#include "io/codecs.hpp"

namespace face2scene {

Image::Image(int w, int h, int c, int depth) : width(w), height(h), channels(c), bit_depth(depth) {
  if (w < 0 || h < 0) throw ArgumentError("image size " + std::to_string(w) + "x" + std::to_string(h) + " is negative");
  if (c != 1 && c != 3) throw ArgumentError("image channels must be 1 or 3, got " + std::to_string(c));
  if (depth != 8 && depth != 16) throw ArgumentError("bit depth must be 8 or 16, got " + std::to_string(depth));
  data.assign(static_cast<size_t>(w) * h * c, 0);
}

namespace {
std::vector<uint16_t> rescale(const std::vector<uint16_t>& v, int from, int to) {
  if (from == to) return v;
  std::vector<uint16_t> out(v.size());
  const double f = (to == 16 ? 65535.0 : 255.0) / (from == 16 ? 65535.0 : 255.0);
  std::transform(v.begin(), v.end(), out.begin(),
                 [f](uint16_t x) { return static_cast<uint16_t>(std::lround(x * f)); });
  return out;
}
std::string lower_ext(const std::string& path) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos) return "";
  std::string e = path.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}
}  // namespace

Image Image::with_bit_depth(int depth) const {
  if (depth != 8 && depth != 16) throw ArgumentError("bit depth must be 8 or 16, got " + std::to_string(depth));
  Image out = *this;
  out.bit_depth = depth;
  out.data = rescale(data, bit_depth, depth);
  out.alpha = rescale(alpha, bit_depth, depth);
  return out;
}

Image Image::to_rgb() const {
  if (channels == 3) return *this;
  Image out(width, height, 3, bit_depth);
  for (size_t i = 0; i < pixel_count(); ++i) {
    out.data[3 * i] = out.data[3 * i + 1] = out.data[3 * i + 2] = data[i];
  }
  out.alpha = alpha;
  return out;
}

ImageFormat format_from_extension(const std::string& path) {
  const std::string e = lower_ext(path);
  if (e == "png") return ImageFormat::kPng;
  if (e == "jpg" || e == "jpeg") return ImageFormat::kJpeg;
  throw ArgumentError(path + ": unknown image extension '." + e + "' (use .png, .jpg or .jpeg)");
}

bool is_image_path(const std::string& path) {
  const std::string e = lower_ext(path);
  return e == "png" || e == "jpg" || e == "jpeg";
}

Image decode_image(const std::string& bytes, const std::string& name, const ImageReadOptions& options) {
  if (bytes.empty()) throw FormatError(name + ": file is empty");
  detail::DecodedMetadata meta;
  Image img;
  if (bytes.size() >= 8 && static_cast<unsigned char>(bytes[0]) == 0x89 && bytes.compare(1, 3, "PNG") == 0) {
    img = detail::decode_png(bytes, name, options.max_pixels, meta);
  } else if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
             static_cast<unsigned char>(bytes[1]) == 0xD8) {
    img = detail::decode_jpeg(bytes, name, options.max_pixels, meta);
  } else {
    throw FormatError(name + ": not a PNG or JPEG image");
  }
  detail::convert_icc_to_srgb(img, meta.icc, name);
  if (options.apply_orientation && !meta.exif.empty()) img = apply_orientation(img, exif_orientation(meta.exif));
  return img;
}

Image read_image(const std::string& path, const ImageReadOptions& options) {
  return decode_image(read_file(path), path, options);
}
Image read_image(const std::string& path) { return read_image(path, ImageReadOptions{}); }
Image decode_image(const std::string& bytes, const std::string& name) {
  return decode_image(bytes, name, ImageReadOptions{});
}

static void check_writable(const Image& image, const std::string& what) {
  if (image.empty()) throw ArgumentError(what + ": cannot write an empty (0-size) image");
  if (image.data.size() != image.pixel_count() * image.channels) {
    throw ArgumentError(what + ": image buffer size does not match its dimensions");
  }
}

std::string encode_png(const Image& image, int bit_depth, int level, int threads) {
  check_writable(image, "PNG");
  if (level < 0 || level > 9) throw ArgumentError("PNG compression level must be 0-9, got " + std::to_string(level));
  if (threads < 0)
    throw ArgumentError("PNG encoder threads must be >= 0, got " + std::to_string(threads));
  return detail::encode_png(image, bit_depth == 0 ? image.bit_depth : bit_depth, level, threads);
}

std::string encode_jpeg(const Image& image, int quality) {
  check_writable(image, "JPEG");
  if (quality < 1 || quality > 100) throw ArgumentError("JPEG quality " + std::to_string(quality) + " is outside 1..100");
  return detail::encode_jpeg(image, quality);
}

void write_image(const std::string& path, const Image& image, const WriteOptions& options) {
  const ImageFormat fmt = format_from_extension(path);
  check_writable(image, path);
  const std::string bytes =
      fmt == ImageFormat::kPng
          ? encode_png(image, options.bit_depth, options.png_level, options.threads)
          : encode_jpeg(image, options.jpeg_quality);
  write_file_atomically(path, bytes);
}

}  // namespace face2scene
