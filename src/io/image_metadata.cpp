// EXIF orientation and ICC profiles on read (the rules are in image_metadata.hpp).
// The EXIF reader is hand-written and small: only IFD0's orientation tag is needed, and every
// offset in the block is untrusted (fuzzed by tests/fuzz/fuzz_jpeg.cpp).
#include <algorithm>
#include <cmath>
#include <vector>

#ifdef F2S_HAVE_LCMS2
#include <lcms2.h>
#endif

#include "face2scene/core.hpp"
#include "face2scene/image_metadata.hpp"
#include "io/codecs.hpp"

namespace face2scene {

int exif_orientation(const std::string& tiff) {
  const auto* p = reinterpret_cast<const unsigned char*>(tiff.data());
  const size_t n = tiff.size();
  if (n < 8) return 1;
  bool big;  // TIFF byte order: "MM" big-endian (Motorola), "II" little-endian (Intel)
  if (p[0] == 'M' && p[1] == 'M') {
    big = true;
  } else if (p[0] == 'I' && p[1] == 'I') {
    big = false;
  } else {
    return 1;
  }
  auto u16 = [&](size_t at) -> uint32_t { return big ? (p[at] << 8) | p[at + 1] : p[at] | (p[at + 1] << 8); };
  auto u32 = [&](size_t at) -> uint32_t {
    return big ? (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) | p[at + 3]
               : p[at] | (uint32_t{p[at + 1]} << 8) | (uint32_t{p[at + 2]} << 16) | (uint32_t{p[at + 3]} << 24);
  };
  if (u16(2) != 42) return 1;
  const uint64_t ifd = u32(4);
  if (ifd + 2 > n) return 1;
  const uint64_t count = u16(static_cast<size_t>(ifd));
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + 2 + 12 * i;  // tag u16, type u16, count u32, value/offset u32
    if (e + 12 > n) return 1;
    if (u16(static_cast<size_t>(e)) != 0x0112) continue;
    // SHORT (type 3), one value, stored in the first two bytes of the value field.
    if (u16(static_cast<size_t>(e + 2)) != 3 || u32(static_cast<size_t>(e + 4)) < 1) return 1;
    const uint32_t v = u16(static_cast<size_t>(e + 8));
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

Image apply_orientation(const Image& src, int o) {
  if (o < 2 || o > 8 || src.empty()) return src;
  const int w = src.width, h = src.height, c = src.channels;
  const bool swap = o >= 5;
  Image out(swap ? h : w, swap ? w : h, c, src.bit_depth);
  if (src.has_alpha()) out.alpha.resize(out.pixel_count());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the stored pixel shown at (x, y)
      switch (o) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y, sy = x; break;
        case 6: sx = y, sy = h - 1 - x; break;
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;
        case 8: sx = w - 1 - y, sy = x; break;
      }
      const size_t d = static_cast<size_t>(y) * out.width + x, s = static_cast<size_t>(sy) * w + sx;
      std::copy_n(src.data.begin() + s * c, c, out.data.begin() + d * c);
      if (src.has_alpha()) out.alpha[d] = src.alpha[s];
    }
  }
  return out;
}

namespace detail {

#ifdef F2S_HAVE_LCMS2
namespace {
// Owns an lcms2 handle (profiles and transforms are freed by different functions).
template <typename H, cmsBool (*Free)(H)>
struct Handle {
  H h;
  explicit Handle(H x) : h(x) {}
  ~Handle() {
    if (h) Free(h);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};
cmsBool free_transform(cmsHTRANSFORM t) {
  cmsDeleteTransform(t);
  return TRUE;
}
using Profile = Handle<cmsHPROFILE, cmsCloseProfile>;
using Transform = Handle<cmsHTRANSFORM, free_transform>;

// A grey profile with sRGB's tone curve (IEC 61966-2-1) and white point, for grey images.
cmsHPROFILE srgb_grey_profile() {
  const cmsFloat64Number params[5] = {2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045};
  cmsToneCurve* curve = cmsBuildParametricToneCurve(nullptr, 4, params);
  if (!curve) return nullptr;
  cmsHPROFILE p = cmsCreateGrayProfile(cmsD50_xyY(), curve);
  cmsFreeToneCurve(curve);
  return p;
}
}  // namespace

void convert_icc_to_srgb(Image& img, const std::string& icc, const std::string& name) {
  if (icc.empty() || img.empty()) return;
  auto ignore = [&](const std::string& why) {
    log_warn(name + ": ICC profile " + why + "; its pixels are taken as sRGB");
  };
  Profile in(cmsOpenProfileFromMem(icc.data(), static_cast<cmsUInt32Number>(icc.size())));
  if (!in.h) return ignore("is unreadable");
  const bool grey = img.channels == 1;
  const cmsColorSpaceSignature want = grey ? cmsSigGrayData : cmsSigRgbData;
  if (cmsGetColorSpace(in.h) != want) return ignore(grey ? "is not a grey profile" : "is not an RGB profile");
  Profile out(grey ? srgb_grey_profile() : cmsCreate_sRGBProfile());
  const cmsUInt32Number fmt = grey ? TYPE_GRAY_16 : TYPE_RGB_16;
  Transform t(out.h ? cmsCreateTransform(in.h, fmt, out.h, fmt, INTENT_PERCEPTUAL, 0) : nullptr);
  if (!t.h) return ignore("cannot be converted to sRGB");
  const int c = img.channels;
  // sRGB already? A 9³ (grey: 257-step) grid that maps within half an 8-bit step leaves the pixels alone.
  std::vector<uint16_t> grid, mapped;
  for (int r = 0; r <= 8; ++r)
    for (int g = 0; g <= (grey ? 0 : 8); ++g)
      for (int b = 0; b <= (grey ? 0 : 8); ++b) {
        grid.push_back(static_cast<uint16_t>(std::min(65535, r * 8192)));
        if (!grey) {
          grid.push_back(static_cast<uint16_t>(std::min(65535, g * 8192)));
          grid.push_back(static_cast<uint16_t>(std::min(65535, b * 8192)));
        }
      }
  mapped.resize(grid.size());
  cmsDoTransform(t.h, grid.data(), mapped.data(), static_cast<cmsUInt32Number>(grid.size() / c));
  int worst = 0;
  for (size_t i = 0; i < grid.size(); ++i) worst = std::max(worst, std::abs(int(grid[i]) - int(mapped[i])));
  if (worst <= 128) return;  // 128/65535 = half of 1/255
  // lcms2 has no "8-bit values in 16-bit words" layout: widen 8-bit samples to 16 and back.
  const bool eight = img.bit_depth == 8;
  const size_t pixels = img.pixel_count();
  constexpr size_t kChunk = 1 << 16;
  std::vector<uint16_t> buf(std::min(pixels, kChunk) * c);
  for (size_t p0 = 0; p0 < pixels; p0 += kChunk) {
    const size_t np = std::min(kChunk, pixels - p0);
    uint16_t* px = img.data.data() + p0 * c;
    for (size_t i = 0; i < np * c; ++i) buf[i] = eight ? static_cast<uint16_t>(px[i] * 257) : px[i];
    cmsDoTransform(t.h, buf.data(), buf.data(), static_cast<cmsUInt32Number>(np));
    for (size_t i = 0; i < np * c; ++i) px[i] = eight ? static_cast<uint16_t>((buf[i] + 128) / 257) : buf[i];
  }
}
#else
void convert_icc_to_srgb(Image& img, const std::string& icc, const std::string& name) {
  if (!icc.empty()) log_warn(name + ": ICC profile ignored (built without lcms2); its pixels are taken as sRGB");
}
#endif

}  // namespace detail
}  // namespace face2scene
