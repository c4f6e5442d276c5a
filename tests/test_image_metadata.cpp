// EXIF orientation, ICC profiles and the fuzz corpus replay (image.hpp's ImageReadOptions rules).
// Test JPEG/PNG files are made here: encoded by face2scene, then EXIF (APP1 / eXIf) and ICC
// (APP2 / iCCP) segments written in by hand, byte by byte as the specifications lay them out.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#if __has_include(<lcms2.h>)
#include <lcms2.h>
#define F2S_TEST_LCMS2 1
#endif

#include "face2scene/core.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/image.hpp"
#include "face2scene/ncnn.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/safetensors.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
std::string u16be(unsigned v) { return {char(v >> 8), char(v & 255)}; }
std::string u32be(uint32_t v) { return u16be(v >> 16) + u16be(v & 0xFFFF); }
std::string u16le(unsigned v) { return {char(v & 255), char(v >> 8)}; }
std::string u32le(uint32_t v) { return u16le(v & 0xFFFF) + u16le(v >> 16); }

// A TIFF block with IFD0 holding `entries` (tag, type, count, value) in the given byte order.
struct Entry {
  unsigned tag, type;
  uint32_t count, value;
};
std::string tiff(bool big, const std::vector<Entry>& entries) {
  auto s16 = big ? u16be : u16le;
  auto s32 = big ? u32be : u32le;
  std::string t = big ? "MM" : "II";
  t += s16(42) + s32(8) + s16(static_cast<unsigned>(entries.size()));
  for (const auto& e : entries) {
    t += s16(e.tag) + s16(e.type) + s32(e.count);
    t += e.type == 3 ? s16(e.value) + s16(0) : s32(e.value);  // a SHORT sits left-justified
  }
  return t + s32(0);
}
std::string orientation_tiff(int o, bool big = true) { return tiff(big, {{0x0112, 3, 1, uint32_t(o)}}); }

// A JPEG segment right after SOI (FFD8).
std::string with_segment(const std::string& jpeg, int marker, const std::string& payload) {
  return jpeg.substr(0, 2) + char(0xFF) + char(marker) + u16be(static_cast<unsigned>(payload.size() + 2)) + payload +
         jpeg.substr(2);
}
// A PNG chunk right after IHDR (8-byte signature + 25-byte IHDR chunk).
std::string with_chunk(const std::string& png, const std::string& type, const std::string& data) {
  std::string c = type + data;
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(c.data()), static_cast<uInt>(c.size()));
  const std::string chunk = u32be(static_cast<uint32_t>(data.size())) + c + u32be(static_cast<uint32_t>(crc));
  return png.substr(0, 33) + chunk + png.substr(33);
}
std::string without_chunk(std::string png, const std::string& type) {
  const auto at = png.find(type);
  if (at == std::string::npos) return png;
  const auto len = (uint32_t(uint8_t(png[at - 4])) << 24) | (uint32_t(uint8_t(png[at - 3])) << 16) |
                   (uint32_t(uint8_t(png[at - 2])) << 8) | uint8_t(png[at - 1]);
  return png.erase(at - 4, len + 12);
}

// 16×8: left half red, right half blue, and a green 2×2 block at the stored top-left corner.
Image marked() {
  Image img(16, 8, 3, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 16; ++x) {
      const bool corner = x < 2 && y < 2;
      img.at(x, y, 0) = corner ? 0 : x < 8 ? 230 : 20;
      img.at(x, y, 1) = corner ? 230 : 20;
      img.at(x, y, 2) = corner ? 0 : x < 8 ? 20 : 230;
    }
  return img;
}
}  // namespace

TEST(Exif, OrientationTagInBothByteOrders) {
  for (int o = 1; o <= 8; ++o) {
    EXPECT_EQ(exif_orientation(orientation_tiff(o, true)), o);
    EXPECT_EQ(exif_orientation(orientation_tiff(o, false)), o);
  }
  // Found among other tags (ImageWidth LONG, then Make ASCII by offset).
  EXPECT_EQ(exif_orientation(tiff(false, {{0x0100, 4, 1, 4000}, {0x010F, 2, 6, 50}, {0x0112, 3, 1, 6}})), 6);
}

TEST(Exif, MalformedBlocksReadAsUpright) {
  EXPECT_EQ(exif_orientation(""), 1);
  EXPECT_EQ(exif_orientation("MM"), 1);
  EXPECT_EQ(exif_orientation(orientation_tiff(9)), 1);   // out of range
  EXPECT_EQ(exif_orientation(orientation_tiff(0)), 1);
  EXPECT_EQ(exif_orientation(tiff(true, {{0x0112, 4, 1, 6}})), 1);  // LONG, not SHORT
  std::string t = orientation_tiff(6);
  EXPECT_EQ(exif_orientation(t.substr(0, t.size() - 8)), 1);  // entry cut short
  std::string far = t;
  far[7] = char(200);  // IFD0 offset beyond the block
  EXPECT_EQ(exif_orientation(far), 1);
  std::string many = t;
  many[8] = char(0xFF), many[9] = char(0xFF);  // 65535 entries claimed, 1 present: tag found first
  EXPECT_EQ(exif_orientation(many), 6);
  std::string bad_magic = t;
  bad_magic[3] = 43;
  EXPECT_EQ(exif_orientation(bad_magic), 1);
}

TEST(Exif, OrientationMovesCornersAsTheSpecSays) {
  // TIFF 6.0 / EXIF 2.32 Orientation: where the stored top-left and top-right pixels are shown.
  // (For 6, "row 0 is the visual right side, column 0 the visual top".)
  enum Corner { TL, TR, BL, BR };
  const Corner top_left_to[9] = {TL, TL, TR, BR, BL, TL, TR, BR, BL};
  const Corner top_right_to[9] = {TL, TR, TL, BL, BR, BL, BR, TR, TL};
  Image img(3, 2, 1, 8);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint16_t>(10 + i);
  img.alpha = {1, 2, 3, 4, 5, 6};
  for (int o = 1; o <= 8; ++o) {
    const Image d = apply_orientation(img, o);
    ASSERT_EQ(d.width, o >= 5 ? 2 : 3) << o;
    ASSERT_EQ(d.height, o >= 5 ? 3 : 2) << o;
    auto at = [&](Corner c) {
      return d.at(c == TR || c == BR ? d.width - 1 : 0, c == BL || c == BR ? d.height - 1 : 0, 0);
    };
    EXPECT_EQ(at(top_left_to[o]), 10) << "orientation " << o;
    EXPECT_EQ(at(top_right_to[o]), 12) << "orientation " << o;
    std::vector<uint16_t> v = d.data;
    std::sort(v.begin(), v.end());
    EXPECT_EQ(v, (std::vector<uint16_t>{10, 11, 12, 13, 14, 15})) << o;
    // Alpha travels with its pixel.
    for (size_t i = 0; i < d.data.size(); ++i) EXPECT_EQ(d.alpha[i], d.data[i] - 9) << o;
  }
}

TEST(Exif, JpegApp1OrientationIsAppliedOnReadAndCanBeKept) {
  const std::string plain = encode_jpeg(marked(), 95);
  for (int o : {1, 3, 6, 8}) {
    const std::string jpeg = with_segment(plain, 0xE1, std::string("Exif\0\0", 6) + orientation_tiff(o, o != 6));
    const Image shown = decode_image(jpeg, "o.jpg");
    const bool swap = o >= 5;
    ASSERT_EQ(shown.width, swap ? 8 : 16) << o;
    ASSERT_EQ(shown.height, swap ? 16 : 8) << o;
    // The green corner: stored top-left goes to TL (1), BR (3), TR (6), BL (8).
    const int gx = (o == 3 || o == 6) ? shown.width - 1 : 0, gy = (o == 3 || o == 8) ? shown.height - 1 : 0;
    EXPECT_GT(shown.at(gx, gy, 1), 180) << o;
    // The red (stored left) half: displayed top half for 6 (column 0 is the visual top), bottom for 8.
    if (o == 6 || o == 8) {
      const int red_y = o == 6 ? 4 : 12, blue_y = o == 6 ? 12 : 4;
      EXPECT_GT(shown.at(4, red_y, 0), 180) << o;
      EXPECT_GT(shown.at(4, blue_y, 2), 180) << o;
    }
    ImageReadOptions keep;
    keep.apply_orientation = false;
    const Image raw = decode_image(jpeg, "o.jpg", keep);
    EXPECT_EQ(raw.width, 16);
    EXPECT_GT(raw.at(0, 0, 1), 180);
  }
  // An XMP APP1 (not EXIF) changes nothing.
  const Image xmp = decode_image(with_segment(plain, 0xE1, std::string("http://ns.adobe.com/xap/1.0/\0<x/>", 33)));
  EXPECT_EQ(xmp.width, 16);
}

TEST(Exif, PngExifChunkOrientationIsApplied) {
  const std::string png = with_chunk(encode_png(marked()), "eXIf", orientation_tiff(6));
  const Image shown = decode_image(png, "o.png");
  ASSERT_EQ(shown.width, 8);
  ASSERT_EQ(shown.height, 16);
  EXPECT_EQ(shown.at(7, 0, 1), 230);
  ImageReadOptions keep;
  keep.apply_orientation = false;
  EXPECT_EQ(decode_image(png, "o.png", keep).data, marked().data);
}

TEST(ImageIo, PixelLimitRefusesBeforeAllocating) {
  ImageReadOptions o;
  o.max_pixels = 100;
  EXPECT_THROW(decode_image(encode_png(marked()), "big.png", o), FormatError);
  EXPECT_THROW(decode_image(encode_jpeg(marked(), 90), "big.jpg", o), FormatError);
  o.max_pixels = 128;
  EXPECT_NO_THROW(decode_image(encode_png(marked()), "ok.png", o));
}

#ifdef F2S_TEST_LCMS2
namespace {
std::string save_profile(cmsHPROFILE p) {
  cmsUInt32Number n = 0;
  cmsSaveProfileToMem(p, nullptr, &n);
  std::string s(n, '\0');
  cmsSaveProfileToMem(p, s.data(), &n);
  cmsCloseProfile(p);
  return s;
}
// sRGB primaries and white point with a linear (gamma 1) tone curve: a value v means light v,
// so its sRGB encoding is the sRGB transfer function of v.
std::string linear_srgb_profile() {
  cmsCIExyY white = {0.3127, 0.3290, 1.0};
  cmsCIExyYTRIPLE prim = {{0.64, 0.33, 1.0}, {0.30, 0.60, 1.0}, {0.15, 0.06, 1.0}};
  cmsToneCurve* lin = cmsBuildGamma(nullptr, 1.0);
  cmsToneCurve* curves[3] = {lin, lin, lin};
  cmsHPROFILE p = cmsCreateRGBProfile(&white, &prim, curves);
  cmsFreeToneCurve(lin);
  return save_profile(p);
}
double srgb_encode(double v) { return v <= 0.0031308 ? 12.92 * v : 1.055 * std::pow(v, 1 / 2.4) - 0.055; }
Image flat(int r, int g, int b) {
  Image img(16, 16, 3, 8);
  for (size_t i = 0; i < img.pixel_count(); ++i) img.data[3 * i] = r, img.data[3 * i + 1] = g, img.data[3 * i + 2] = b;
  return img;
}
std::string iccp(const std::string& profile) {
  uLongf n = compressBound(static_cast<uLong>(profile.size()));
  std::string z(n, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(profile.data()),
           static_cast<uLong>(profile.size()));
  z.resize(n);
  return std::string("test\0\0", 6) + z;  // name, NUL, compression method 0
}
std::string app2(const std::string& part, int seq, int count) {
  return std::string("ICC_PROFILE\0", 12) + char(seq) + char(count) + part;
}
struct WarningLog {
  std::vector<std::string> lines;
  WarningLog() {
    set_log_sink([this](LogLevel l, const std::string& m) {
      if (l == LogLevel::kWarn) lines.push_back(m);
    });
  }
  ~WarningLog() { set_log_sink(nullptr); }
};
}  // namespace

TEST(Icc, NonSrgbProfileIsConvertedToSrgb) {
  const std::string lin = linear_srgb_profile();
  const std::string png = with_chunk(without_chunk(encode_png(flat(128, 64, 200)), "sRGB"), "iCCP", iccp(lin));
  const Image img = decode_image(png, "lin.png");
  const int want[3] = {128, 64, 200};
  for (int c = 0; c < 3; ++c) {
    const double expect = 255 * srgb_encode(want[c] / 255.0);  // 128 -> 188, 64 -> 137, 200 -> 231
    EXPECT_NEAR(img.at(5, 5, c), expect, 1.0) << c;
  }
  // JPEG, the profile split over two APP2 markers given out of order.
  const std::string jpeg0 = encode_jpeg(flat(128, 64, 200), 98);
  const size_t half = lin.size() / 2;
  const std::string jpeg =
      with_segment(with_segment(jpeg0, 0xE2, app2(lin.substr(0, half), 1, 2)), 0xE2, app2(lin.substr(half), 2, 2));
  const Image j = decode_image(jpeg, "lin.jpg");
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(j.at(8, 8, c), 255 * srgb_encode(want[c] / 255.0), 2.5) << c;
  // Sixteen-bit data keeps 16-bit precision through the conversion.
  Image deep = flat(0, 0, 0).with_bit_depth(16);
  for (size_t i = 0; i < deep.data.size(); ++i) deep.data[i] = 1000;
  const Image d = decode_image(with_chunk(encode_png(deep), "iCCP", iccp(lin)), "deep.png");
  EXPECT_NEAR(d.data[0], 65535 * srgb_encode(1000 / 65535.0), 40);
}

TEST(Icc, SrgbProfileLeavesPixelsBitExact) {
  Image img = marked();
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint16_t>(i * 37 % 256);
  const std::string png = with_chunk(without_chunk(encode_png(img), "sRGB"), "iCCP", iccp(save_profile(cmsCreate_sRGBProfile())));
  EXPECT_EQ(decode_image(png, "srgb.png").data, img.data);
}

TEST(Icc, UnusableProfilesWarnNamingTheFile) {
  const Image img = flat(10, 20, 30);
  const std::string base = without_chunk(encode_png(img), "sRGB");
  {
    WarningLog log;  // libpng itself drops this iCCP chunk (bad header): still said aloud
    const Image out = decode_image(with_chunk(base, "iCCP", iccp("not a profile at all, just bytes")), "junk.png");
    EXPECT_EQ(out.data, img.data);
    ASSERT_EQ(log.lines.size(), 1u);
    EXPECT_NE(log.lines[0].find("junk.png"), std::string::npos) << log.lines[0];
  }
  {
    WarningLog log;  // JPEG APP2 is not checked by libjpeg: lcms2 refuses it
    const std::string jpeg = with_segment(encode_jpeg(img, 95), 0xE2, app2(std::string(200, 'x'), 1, 1));
    decode_image(jpeg, "junk.jpg");
    ASSERT_EQ(log.lines.size(), 1u);
    EXPECT_NE(log.lines[0].find("junk.jpg: ICC profile is unreadable"), std::string::npos) << log.lines[0];
  }
  {
    WarningLog log;  // a Lab profile on RGB pixels: libpng refuses it in PNG, lcms2 reads it from JPEG
    const std::string lab = save_profile(cmsCreateLab4Profile(nullptr));
    const Image out = decode_image(with_chunk(base, "iCCP", iccp(lab)), "lab.png");
    EXPECT_EQ(out.data, img.data);
    decode_image(with_segment(encode_jpeg(img, 95), 0xE2, app2(lab, 1, 1)), "lab.jpg");
    ASSERT_EQ(log.lines.size(), 2u);
    EXPECT_NE(log.lines[0].find("lab.png"), std::string::npos) << log.lines[0];
    EXPECT_NE(log.lines[1].find("lab.jpg: ICC profile is not an RGB profile"), std::string::npos) << log.lines[1];
  }
  {
    WarningLog log;  // an incomplete multi-marker JPEG profile is ignored (not assembled wrongly)
    const std::string lin = linear_srgb_profile();
    const std::string jpeg = with_segment(encode_jpeg(img, 95), 0xE2, app2(lin.substr(0, 100), 1, 2));
    EXPECT_NO_THROW(decode_image(jpeg, "part.jpg"));
  }
}
#endif

// Every seed and every crash input found by fuzzing (tests/fuzz/) decodes to a valid image or
// fails with a face2scene error; nothing else (a crash, another exception type) is allowed.
TEST(FuzzCorpus, EveryInputGivesAnImageOrACleanError) {
  set_log_level(LogLevel::kSilent);
  const fs::path root = fs::path(F2S_SOURCE_DIR) / "tests" / "fuzz";
  int files = 0, ok = 0;
  for (const char* sub : {"corpus", "crashes"}) {
    if (!fs::is_directory(root / sub)) continue;
    for (const auto& target : fs::directory_iterator(root / sub)) {
      if (!target.is_directory()) continue;
      const std::string t = target.path().filename().string();
      for (const auto& f : fs::directory_iterator(target.path())) {
        const std::string bytes = read_file(f.path().string()), name = f.path().string();
        ++files;
        try {
          if (t == "png" || t == "jpeg") {
            ImageReadOptions o;
            o.max_pixels = uint64_t{1} << 16;  // as the fuzz targets (fuzz_image.hpp)
            const Image img = decode_image(bytes, name, o);
            ASSERT_EQ(img.data.size(), img.pixel_count() * img.channels) << name;
            for (auto v : img.data) ASSERT_LE(v, img.max_value()) << name;
          } else if (t == "safetensors") {
            parse_safetensors(bytes, name);
          } else if (t == "ncnn") {
            ASSERT_GE(bytes.size(), 2u) << name;
            size_t len = uint8_t(bytes[0]) | (size_t(uint8_t(bytes[1])) << 8);
            len = std::min(len, bytes.size() - 2);
            auto m = ncnn::parse_param(bytes.substr(2, len), name);
            ncnn::read_weights(m, bytes.substr(2 + len), name);
            for (const auto& l : m.layers) {  // as fuzz_ncnn does
              if (l.type == "Convolution" || l.type == "ConvolutionDepthWise" || l.type == "Deconvolution") {
                ncnn::conv_weight(l);
              }
            }
          } else {
            ADD_FAILURE() << "unknown fuzz target folder " << t;
          }
          ++ok;
        } catch (const face2scene::Error&) {
        }
      }
    }
  }
  set_log_level(LogLevel::kWarn);
  std::printf("fuzz corpus: %d files, %d decoded, %d clean errors\n", files, ok, files - ok);
  EXPECT_GE(files, 20);
  EXPECT_GE(ok, 20);  // the seeds are valid files
}

// ---- alpha through restore-scene -------------------------------------------------------------

namespace {
// Left half transparent, right half opaque, over a colour gradient.
Image rgba_half(int w, int h) {
  Image img(w, h, 3, 8);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint16_t>(40 + i * 7 % 150);
  img.alpha.resize(img.pixel_count());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) img.alpha[static_cast<size_t>(y) * w + x] = x < w / 2 ? 0 : 255;
  return img;
}
}  // namespace

TEST(Alpha, CarryAlphaResizesAndKeepsUniformAlphaExact) {
  Image from = rgba_half(12, 8), to(48, 32, 3, 16);
  carry_alpha(from, to);
  ASSERT_EQ(to.alpha.size(), to.pixel_count());
  EXPECT_EQ(to.alpha[5 * 48 + 3], 0);        // deep inside the transparent half
  EXPECT_EQ(to.alpha[5 * 48 + 44], 65535);   // opaque half, at to's 16-bit depth
  Image uni = from;
  std::fill(uni.alpha.begin(), uni.alpha.end(), 77);
  Image t2(30, 20, 3, 8);
  carry_alpha(uni, t2);
  for (auto v : t2.alpha) ASSERT_EQ(v, 77);
  Image none(4, 4, 3, 8), t3(8, 8, 3, 8);
  carry_alpha(none, t3);
  EXPECT_FALSE(t3.has_alpha());
}

TEST(Alpha, RestoreSceneCliKeepsAlpha) {
  // ctest runs in build/tests, where ./weights does not exist: point the CLI at the source tree's.
  const std::string models = std::string(F2S_SOURCE_DIR) + "/weights";
  setenv("F2S_MODELS", models.c_str(), 1);
  try {
    OracleModelPaths::locate(models);
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  const std::string dir = f2s_test::temp_dir("alpha_cli");
  write_image(dir + "/in.png", rgba_half(24, 16));
  for (int scale : {4, 1}) {
    const std::string out = dir + "/out" + std::to_string(scale) + ".png";
    auto r = f2s_test::run_cli("restore-scene " + dir + "/in.png -o " + out + " --blind --device cpu --tile 0 --scale " +
                               std::to_string(scale));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const Image img = read_image(out);
    ASSERT_EQ(img.width, 24 * scale);
    ASSERT_TRUE(img.has_alpha()) << "restore-scene dropped the alpha channel";
    EXPECT_EQ(img.alpha[static_cast<size_t>(2 * scale) * img.width + 2 * scale], 0);
    EXPECT_EQ(img.alpha[static_cast<size_t>(2 * scale) * img.width + 21 * scale], 255);
  }
}

TEST(Exif, CliTurnsPhotosUnlessKeepOrientation) {
  const std::string dir = f2s_test::temp_dir("exif_cli");
  Image img(64, 32, 3, 8);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint16_t>(i * 13 % 256);
  const std::string jpeg =
      with_segment(encode_jpeg(img, 90), 0xE1, std::string("Exif\0\0", 6) + orientation_tiff(6));
  write_file_atomically(dir + "/in.jpg", jpeg);
  const std::string base = "degrade " + dir + "/in.jpg --preset mild --seed 1 --keep-size -o ";
  auto r = f2s_test::run_cli(base + dir + "/turned.png");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Image turned = read_image(dir + "/turned.png");
  EXPECT_EQ(turned.width, 32);
  EXPECT_EQ(turned.height, 64);
  r = f2s_test::run_cli(base + dir + "/raw.png --keep-orientation");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Image raw = read_image(dir + "/raw.png");
  EXPECT_EQ(raw.width, 64);
  EXPECT_EQ(raw.height, 32);
}
