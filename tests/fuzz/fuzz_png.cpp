// libFuzzer target: the PNG decoder (libpng through our guarded calls, iCCP to sRGB, eXIf
// orientation). A face2scene::Error is a clean rejection; anything else is a finding.
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
  try {
    detail::DecodedMetadata meta;
    Image img = detail::decode_png(bytes, "fuzz.png", f2s_fuzz::kMaxPixels, meta);
    detail::convert_icc_to_srgb(img, meta.icc, "fuzz.png");
    f2s_fuzz::check_image(apply_orientation(img, exif_orientation(meta.exif)));
  } catch (const face2scene::Error&) {
  }
  return 0;
}
