// libFuzzer target: the JPEG decoder (libjpeg through our guarded calls, APP2 ICC assembly and
// conversion, APP1 EXIF orientation), and the EXIF parser on the raw input as well, so that it
// sees TIFF blocks directly and not only those that survive inside a decodable JPEG.
#include <cstddef>
#include <cstdint>
#include <string>

#include "face2scene/core.hpp"
#include "fuzz_image.hpp"
#include "io/codecs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace face2scene;
  face2scene::set_log_level(LogLevel::kSilent);
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const int o = exif_orientation(bytes);
  if (o < 1 || o > 8) std::abort();
  try {
    detail::DecodedMetadata meta;
    Image img = detail::decode_jpeg(bytes, "fuzz.jpg", f2s_fuzz::kMaxPixels, meta);
    detail::convert_icc_to_srgb(img, meta.icc, "fuzz.jpg");
    Image shown = apply_orientation(img, exif_orientation(meta.exif));
    f2s_fuzz::check_image(shown);
    if (shown.pixel_count() != img.pixel_count()) std::abort();
  } catch (const face2scene::Error&) {
  }
  return 0;
}
