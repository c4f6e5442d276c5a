#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
Image gradient(int w, int h, int c, int depth, bool alpha) {
  Image img(w, h, c, depth);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(x, y, k) = static_cast<uint16_t>((x * 7 + y * 13 + k * 101) * (depth == 16 ? 257 : 1) % (img.max_value() + 1));
  if (alpha) {
    img.alpha.resize(img.pixel_count());
    for (size_t i = 0; i < img.alpha.size(); ++i) img.alpha[i] = static_cast<uint16_t>(i * 31 % (img.max_value() + 1));
  }
  return img;
}
}  // namespace

class PngRoundTrip : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(PngRoundTrip, IsLossless) {
  auto [channels, depth, alpha] = GetParam();
  Image img = gradient(37, 23, channels, depth, alpha);
  Image back = decode_image(encode_png(img));
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.channels, channels);
  EXPECT_EQ(back.bit_depth, depth);
  EXPECT_EQ(back.data, img.data);
  EXPECT_EQ(back.alpha, img.alpha);
}
INSTANTIATE_TEST_SUITE_P(AllLayouts, PngRoundTrip,
                         ::testing::Combine(::testing::Values(1, 3), ::testing::Values(8, 16), ::testing::Bool()));

// ---- parallel PNG encoder (WriteOptions::threads > 1) ----------------------------------------
namespace {
// Smooth structure plus noise whose strength changes along the rows, so that rows pick different
// filters and strips differ; deterministic (xorshift), every sample value reachable.
Image noisy(int w, int h, int c, int depth, bool alpha, uint32_t seed) {
  Image img(w, h, c, depth);
  uint32_t s = seed * 2654435761u + 1;
  auto next = [&s]() {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    return s;
  };
  const int max = img.max_value();
  auto sample = [&](int x, int y, int k) {
    const int amp = (y / 5) % 4 == 0 ? 0 : 1 << (y % 9);  // some rows clean, some very noisy
    const int smooth = (x * 3 + y * 2 + k * 50) * max / (3 * w + 2 * h + 150);
    const int noise = amp ? static_cast<int>(next() % (2 * amp + 1)) - amp : 0;
    return static_cast<uint16_t>(std::clamp(smooth + noise * (depth == 16 ? 131 : 1), 0, max));
  };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(x, y, k) = sample(x, y, k);
  if (alpha) {
    img.alpha.resize(img.pixel_count());
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) img.alpha[static_cast<size_t>(y) * w + x] = sample(x, y, 3);
  }
  return img;
}

uint32_t be32(const std::string& b, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(b[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8 |
         static_cast<unsigned char>(b[at + 3]);
}

struct Chunks {
  std::vector<std::string> names;
  std::string ihdr;  // the IHDR chunk's data
  std::string srgb;  // the sRGB chunk's data
  std::string idat;  // all IDAT data, concatenated
};

// Walks the chunks with our own reader (not libpng), checking every CRC.
Chunks parse_chunks(const std::string& png) {
  Chunks c;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t n = be32(png, at);
    const std::string name = png.substr(at + 4, 4);
    const std::string data = png.substr(at + 8, n);
    const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(png.data() + at + 4), 4 + n);
    EXPECT_EQ(be32(png, at + 8 + n), static_cast<uint32_t>(crc)) << "CRC of " << name;
    c.names.push_back(name);
    if (name == "IHDR") c.ihdr = data;
    if (name == "sRGB") c.srgb = data;
    if (name == "IDAT") c.idat += data;
    at += 12 + n;
  }
  EXPECT_EQ(at, png.size());
  return c;
}

// zlib's inflate with the zlib wrapper: checks the header and the adler32 independently of libpng.
std::string inflate_all(const std::string& z) {
  z_stream zs{};
  EXPECT_EQ(inflateInit(&zs), Z_OK);
  std::string out(1 << 16, '\0');
  size_t used = 0;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  zs.avail_in = static_cast<uInt>(z.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (used == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<Bytef*>(&out[used]);
    zs.avail_out = static_cast<uInt>(out.size() - used);
    rc = inflate(&zs, Z_NO_FLUSH);
    used = out.size() - zs.avail_out;
  }
  EXPECT_EQ(rc, Z_STREAM_END) << (zs.msg ? zs.msg : "");
  EXPECT_EQ(zs.avail_in, 0u) << "bytes after the zlib stream";
  inflateEnd(&zs);
  out.resize(used);
  return out;
}
}  // namespace

class PngParallel : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(PngParallel, DecodesExactlyAtEveryThreadCountAndSize) {
  auto [channels, depth, alpha] = GetParam();
  const std::pair<int, int> sizes[] = {{1, 1}, {7, 300}, {300, 7}, {513, 257}, {1000, 700}};
  uint32_t seed = 1;
  for (auto [w, h] : sizes) {
    const Image img = noisy(w, h, channels, depth, alpha, seed++);
    const std::string reference = encode_png(img, 0, 2, 1);  // libpng
    for (int threads : {1, 4, 8}) {
      SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + " threads " +
                   std::to_string(threads));
      const std::string png = encode_png(img, 0, 2, threads);
      const Image back = decode_image(png);  // libpng: the independent check
      ASSERT_EQ(back.width, w);
      ASSERT_EQ(back.height, h);
      EXPECT_EQ(back.channels, channels);
      EXPECT_EQ(back.bit_depth, depth);
      EXPECT_TRUE(back.data == img.data);  // not EXPECT_EQ: a mismatch would print megabytes
      EXPECT_TRUE(back.alpha == img.alpha);
      const Chunks c = parse_chunks(png);
      const Chunks ref = parse_chunks(reference);
      // Same metadata as the libpng path: IHDR, sRGB (perceptual), IDAT..., IEND.
      auto without_idat = [](std::vector<std::string> names) {
        names.erase(std::remove(names.begin(), names.end(), "IDAT"), names.end());
        return names;
      };
      EXPECT_EQ(without_idat(c.names), (std::vector<std::string>{"IHDR", "sRGB", "IEND"}));
      EXPECT_EQ(without_idat(ref.names), without_idat(c.names));
      EXPECT_EQ(c.srgb, std::string(1, '\0'));
      EXPECT_EQ(c.srgb, ref.srgb);
      EXPECT_EQ(c.ihdr, ref.ihdr);
      const size_t row_bytes = static_cast<size_t>(w) * (channels + alpha) * depth / 8;
      const std::string filtered = inflate_all(c.idat);
      ASSERT_EQ(filtered.size(), static_cast<size_t>(h) * (row_bytes + 1));
      for (int y = 0; y < h; ++y) {
        ASSERT_LE(static_cast<unsigned char>(filtered[y * (row_bytes + 1)]), 4) << "row " << y;
      }
      // With two or more strips of >= 64 rows the strip encoder must have run: its stream (reset
      // window, sync-flush markers) cannot equal libpng's single stream byte for byte.
      if (threads > 1 && h / 64 >= 2) {
        EXPECT_TRUE(png != reference) << "the parallel encoder did not run";
        EXPECT_TRUE(png == encode_png(img, 0, 2, threads)) << "output must be deterministic";
      } else {
        EXPECT_TRUE(png == reference) << "small images fall back to libpng";
      }
    }
  }
}
INSTANTIATE_TEST_SUITE_P(AllLayouts, PngParallel,
                         ::testing::Combine(::testing::Values(1, 3), ::testing::Values(8, 16),
                                            ::testing::Bool()));

TEST(PngParallel, EveryLevelAndDepthConversion) {
  const Image img = noisy(211, 333, 3, 16, true, 42);
  for (int level : {0, 1, 6, 9}) {
    SCOPED_TRACE("level " + std::to_string(level));
    const std::string png = encode_png(img, 0, level, 3);
    const Image back = decode_image(png);
    EXPECT_TRUE(back.data == img.data);
    EXPECT_TRUE(back.alpha == img.alpha);
    // zlib header: deflate with a 32 KiB window, FCHECK valid (inflate_all checks it too).
    const std::string z = parse_chunks(png).idat;
    EXPECT_EQ(static_cast<unsigned char>(z[0]), 0x78);
    EXPECT_EQ((static_cast<unsigned char>(z[0]) * 256 + static_cast<unsigned char>(z[1])) % 31, 0);
  }
  // 16 -> 8 bits on the way out, as the libpng path does it.
  const Image back8 = decode_image(encode_png(img, 8, 2, 4));
  const Image want8 = img.with_bit_depth(8);
  EXPECT_EQ(back8.bit_depth, 8);
  EXPECT_TRUE(back8.data == want8.data);
  EXPECT_TRUE(back8.alpha == want8.alpha);
}

// A strip's first row must be filtered against the last row of the strip above, not against
// zeros. Identical rows in which each pixel is half its left neighbour make the Avg filter exact
// against a zero row, so an encoder that forgot the row above would pick Avg there and the
// decoder, averaging with the real row above, would get other pixels.
TEST(PngParallel, StripsFilterAgainstTheRowAbove) {
  for (int depth : {8, 16}) {
    Image img(96, 512, 3, depth);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        for (int k = 0; k < 3; ++k)
          img.at(x, y, k) = static_cast<uint16_t>(img.max_value() >> (x % 8));
    for (int threads : {2, 3, 8}) {
      const Image back = decode_image(encode_png(img, 0, 2, threads));
      EXPECT_TRUE(back.data == img.data) << depth << "-bit, threads " << threads;
    }
  }
}

TEST(PngParallel, TinyImagesAndThreadCountsFallBack) {
  for (auto [w, h] : {std::pair<int, int>{1, 1}, {16, 16}, {200, 127}}) {
    const Image img = noisy(w, h, 3, 8, false, 7);
    for (int threads : {0, 8, 64}) {  // 0: all cores
      const Image back = decode_image(encode_png(img, 0, 2, threads));
      EXPECT_TRUE(back.data == img.data) << w << "x" << h << " threads " << threads;
    }
  }
  EXPECT_THROW(encode_png(noisy(4, 4, 3, 8, false, 1), 0, 2, -1), ArgumentError);
}

TEST(PngParallel, WriteImageUsesTheThreadsOption) {
  const std::string dir = f2s_test::temp_dir("io_parallel");
  const Image img = noisy(640, 480, 3, 8, false, 3);
  WriteOptions wo;
  wo.png_level = 2;
  wo.threads = 4;
  write_image(dir + "/p.png", img, wo);
  EXPECT_TRUE(read_image(dir + "/p.png").data == img.data);
  EXPECT_TRUE(read_file(dir + "/p.png") == encode_png(img, 0, 2, 4))
      << "written bytes differ from encode_png's";
}

TEST(Jpeg, RoundTripIsCloseAndGreyStaysGrey) {
  Image img(64, 48, 3, 8);  // smooth content: JPEG's chroma subsampling keeps it
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      for (int k = 0; k < 3; ++k) img.at(x, y, k) = static_cast<uint16_t>(x * 2 + y + k * 20);
  Image back = decode_image(encode_jpeg(img, 95));
  ASSERT_EQ(back.channels, 3);
  double err = 0;
  for (size_t i = 0; i < img.data.size(); ++i) err += std::abs(int(img.data[i]) - int(back.data[i]));
  EXPECT_LT(err / img.data.size(), 2.0);
  Image grey = decode_image(encode_jpeg(gradient(16, 16, 1, 8, false), 90));
  EXPECT_EQ(grey.channels, 1);
}

TEST(Jpeg, SixteenBitIsRoundedToEight) {
  Image img = gradient(16, 16, 3, 16, true);
  Image back = decode_image(encode_jpeg(img, 100));
  EXPECT_EQ(back.bit_depth, 8);
  EXPECT_FALSE(back.has_alpha());
}

TEST(ImageIo, BadInputsGiveNamedErrors) {
  const std::string dir = f2s_test::temp_dir("io");
  EXPECT_THROW(read_image(dir + "/missing.png"), IoError);
  EXPECT_THROW(read_image(dir), IoError);
  std::ofstream(dir + "/empty.png").close();
  EXPECT_THROW(read_image(dir + "/empty.png"), FormatError);
  std::ofstream(dir + "/text.png") << "hello, not an image";
  try {
    read_image(dir + "/text.png");
    FAIL() << "no throw";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("text.png"), std::string::npos);
  }
  // Truncated PNG and JPEG.
  for (auto [name, bytes] : {std::pair<std::string, std::string>{"t.png", encode_png(gradient(64, 64, 3, 8, false))},
                             {"t.jpg", encode_jpeg(gradient(64, 64, 3, 8, false), 90)}}) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    EXPECT_THROW(read_image(dir + "/" + name), FormatError) << name;
  }
  EXPECT_THROW(write_image(dir + "/x.bmp", gradient(4, 4, 3, 8, false)), ArgumentError);
  EXPECT_THROW(write_image(dir + "/empty_out.png", Image()), ArgumentError);
  EXPECT_FALSE(fs::exists(dir + "/empty_out.png"));
  EXPECT_THROW(write_image(dir + "/no/such/dir/x.png", gradient(4, 4, 3, 8, false)), IoError);
}

TEST(ImageIo, WriteLeavesNoTemporaryFiles) {
  const std::string dir = f2s_test::temp_dir("io_atomic");
  write_image(dir + "/a.png", gradient(8, 8, 3, 8, false));
  write_image(dir + "/a.jpg", gradient(8, 8, 3, 8, false));
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    ++n;
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos);
  }
  EXPECT_EQ(n, 2);
}

TEST(ImageIo, ReadsSharedDataJpegAndGreyPng) {
  F2S_REQUIRE_DATA("natural/Set14/bridge.png");
  Image bridge = read_image(f2s_test::data_path("natural/Set14/bridge.png"));
  EXPECT_EQ(bridge.channels, 1);
  Image rgb = bridge.to_rgb();
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.at(10, 10, 0), rgb.at(10, 10, 2));
  Image solvay = read_image(f2s_test::data_path("scenes/solvay1927.jpg"));
  EXPECT_EQ(solvay.width, 2000);
  EXPECT_EQ(solvay.height, 1333);
}

TEST(Tensor, ImageTensorRoundTripBothDepths) {
  for (int depth : {8, 16}) {
    Image img = gradient(19, 11, 3, depth, true);
    auto t = image_to_tensor(img);
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 11, 19}));
    EXPECT_LE(t.max().item<float>(), 1.0f);
    Image back = tensor_to_image(t, depth);
    EXPECT_EQ(back.data, img.data);
    set_alpha_from_tensor(back, alpha_to_tensor(img));
    EXPECT_EQ(back.alpha, img.alpha);
  }
  Image grey = gradient(5, 4, 1, 8, false);
  EXPECT_EQ(image_to_tensor(grey, torch::kCPU, torch::kFloat32, true).size(0), 3);
}

TEST(Tensor, SrgbTransferInvertsAndHitsKnownPoints) {
  auto x = torch::linspace(0, 1, 1001);
  EXPECT_LT((linear_to_srgb(srgb_to_linear(x)) - x).abs().max().item<float>(), 1e-5);
  // sRGB 0.5 is 0.21404 in linear light (IEC 61966-2-1).
  EXPECT_NEAR(srgb_to_linear(torch::tensor({0.5f})).item<float>(), 0.214041, 1e-5);
}

TEST(SafeTensors, RoundTripAllDtypesAndMetadata) {
  TensorMap m;
  m["a.f32"] = torch::randn({3, 4});
  m["b.f16"] = torch::randn({5}).to(torch::kHalf);
  m["c.bf16"] = torch::randn({2, 2}).to(torch::kBFloat16);
  m["d.i64"] = torch::arange(7);
  m["e.u8"] = torch::arange(9).to(torch::kUInt8).reshape({3, 3});
  const std::string dir = f2s_test::temp_dir("st");
  save_safetensors(dir + "/w.safetensors", m, {{"arch", "test"}, {"version", "1"}});
  SafeTensors st = load_safetensors(dir + "/w.safetensors");
  ASSERT_EQ(st.tensors.size(), m.size());
  for (auto& [k, v] : m) {
    ASSERT_EQ(st.tensors[k].scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(st.tensors[k], v)) << k;
  }
  EXPECT_EQ(st.metadata["arch"], "test");
  EXPECT_NO_THROW(check_arch(st, "test", "w"));
  EXPECT_THROW(check_arch(st, "other", "w"), FormatError);
  // Converting to fp16 on save.
  save_safetensors(dir + "/h.safetensors", m, {}, torch::kHalf);
  auto h = load_safetensors(dir + "/h.safetensors");
  EXPECT_EQ(h.tensors["a.f32"].scalar_type(), torch::kHalf);
  EXPECT_EQ(h.tensors["d.i64"].scalar_type(), torch::kInt64);
}

TEST(SafeTensors, HeaderLayoutMatchesTheSpec) {
  // A hand-built file: 8-byte LE header length, JSON, raw data.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header;
  float v[2] = {1.5f, -2.0f};
  bytes.append(reinterpret_cast<char*>(v), 8);
  auto st = parse_safetensors(bytes, "hand");
  EXPECT_FLOAT_EQ(st.tensors["x"][0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(st.tensors["x"][1].item<float>(), -2.0f);
  EXPECT_THROW(parse_safetensors(bytes.substr(0, bytes.size() - 2), "cut"), FormatError);
  EXPECT_THROW(parse_safetensors("abc", "tiny"), FormatError);
}

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)));
    bn = register_module("bn", torch::nn::BatchNorm2d(4));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Tiny);

TEST(SafeTensors, StrictLoadNamesEveryProblem) {
  Tiny a, b;
  TensorMap sd = state_dict(*a);
  EXPECT_NO_THROW(load_state_dict_strict(*b, sd, "ok"));
  EXPECT_TRUE(torch::equal(a->conv->weight, b->conv->weight));
  TensorMap bad = sd;
  bad.erase("conv.bias");
  bad["extra.weight"] = torch::zeros({1});
  bad["bn.weight"] = torch::zeros({5});
  try {
    load_state_dict_strict(*b, bad, "bad.safetensors");
    FAIL() << "no throw";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos);
    EXPECT_NE(msg.find("conv.bias"), std::string::npos);
    EXPECT_NE(msg.find("extra.weight"), std::string::npos);
    EXPECT_NE(msg.find("bn.weight"), std::string::npos);
  }
}

TEST(Cli, InfoAndUsageErrors) {
  auto r = f2s_test::run_cli("info");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LibTorch"), std::string::npos);
  EXPECT_NE(f2s_test::run_cli("no-such-command").exit_code, 0);
}
