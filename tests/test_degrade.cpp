// Degradation engine: kernels, resize, noise statistics, JPEG emulation vs libjpeg, params
// round trips, determinism and the CLI. Expected values come from definitions (moments of a
// Gaussian, a 2x2 mean, IJG tables, measured libjpeg output), never from the engine's own output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "face2scene/degrade.hpp"
#include "face2scene/tensor.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
constexpr double kPi = 3.14159265358979323846;

double psnr(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (a - b).pow(2).mean().item<double>();
  return mse == 0 ? 99.0 : 10 * std::log10(1.0 / mse);
}

// A deterministic test picture with edges, texture and smooth areas.
torch::Tensor synthetic(int c, int h, int w) {
  auto y = torch::arange(h, torch::kFloat32).view({1, h, 1}).expand({c, h, w});
  auto x = torch::arange(w, torch::kFloat32).view({1, 1, w}).expand({c, h, w});
  auto ch = torch::arange(c, torch::kFloat32).view({c, 1, 1});
  auto img = 0.5 + 0.25 * torch::sin(x * 0.21 + ch) * torch::cos(y * 0.13) + 0.2 * ((x + y).remainder(40) < 20).to(torch::kFloat32);
  return (img.clamp(0, 1) * 255).round() / 255;
}

torch::Tensor crop_of(const std::string& rel, int size, bool rgb) {
  auto t = image_to_tensor(read_image(f2s_test::data_path(rel)), torch::kCPU, torch::kFloat32, rgb);
  const int64_t y = (t.size(1) - size) / 2, x = (t.size(2) - size) / 2;
  return t.slice(1, y, y + size).slice(2, x, x + size).contiguous();
}

DegradationParams noise_only(NoiseType type, bool gray, float level, uint64_t seed) {
  DegradationParams p;
  p.stage1.noise = {type, gray, level};
  p.seed = seed;
  return p;
}
}  // namespace

TEST(DegradeKernels, EveryTypeIsNormalised) {
  std::vector<BlurParams> all = {
      {KernelType::kIsoGaussian, 21, 2.0f, 2.0f},
      {KernelType::kAnisoGaussian, 21, 3.0f, 1.0f, 0.7f},
      {KernelType::kGeneralizedIso, 21, 2.0f, 2.0f, 0, 0.5f},
      {KernelType::kGeneralizedAniso, 21, 2.0f, 1.0f, 1.0f, 4.0f},
      {KernelType::kPlateauIso, 21, 1.5f, 1.5f, 0, 1.0f},
      {KernelType::kPlateauAniso, 21, 1.5f, 0.5f, -1.0f, 2.0f},
      {KernelType::kSinc, 21, 0, 0, 0, 0, 1.0f},
      {KernelType::kMotion, 15, 0, 0, 0.5f, 0, 0, 11.0f},
      {KernelType::kDefocus, 11, 0, 0, 0, 0, 0, 0, 4.0f},
  };
  for (const auto& b : all) {
    auto k = make_blur_kernel(b).to(torch::kFloat64);
    EXPECT_NEAR(k.sum().item<double>(), 1.0, 1e-6) << int(b.type);
    EXPECT_EQ(k.size(0), b.size);
    // Point symmetric, so correlation and convolution agree.
    EXPECT_TRUE(torch::allclose(k, k.flip({0, 1}), 1e-6, 1e-7)) << int(b.type);
    if (b.type != KernelType::kSinc) EXPECT_GE(k.min().item<double>(), 0.0);
  }
  EXPECT_LT(make_blur_kernel(all[6]).min().item<float>(), 0.f) << "sinc must ring (negative lobes)";
}

TEST(DegradeKernels, GaussianMomentsMatchSigmaAndRotation) {
  // Second moments of a wide-enough Gaussian kernel equal the covariance R diag(sx^2, sy^2) R^T.
  const double sx = 3.0, sy = 1.2, th = 0.6;
  auto k = make_blur_kernel({KernelType::kAnisoGaussian, 41, float(sx), float(sy), float(th)}).to(torch::kFloat64);
  auto ax = torch::arange(-20, 21, torch::kFloat64);
  auto X = ax.view({1, 41}).expand({41, 41}), Y = ax.view({41, 1}).expand({41, 41});
  const double cxx = (k * X * X).sum().item<double>(), cyy = (k * Y * Y).sum().item<double>(), cxy = (k * X * Y).sum().item<double>();
  const double c = std::cos(th), s = std::sin(th);
  EXPECT_NEAR(cxx, c * c * sx * sx + s * s * sy * sy, 0.02);
  EXPECT_NEAR(cyy, s * s * sx * sx + c * c * sy * sy, 0.02);
  EXPECT_NEAR(cxy, c * s * (sx * sx - sy * sy), 0.02);
  auto iso = make_blur_kernel({KernelType::kIsoGaussian, 41, 2.5f, 2.5f}).to(torch::kFloat64);
  EXPECT_NEAR((iso * X * X).sum().item<double>(), 6.25, 0.01);
  // Motion: variance along the line L^2/12; defocus: disk second moment r^2/4 per axis.
  auto m = make_blur_kernel({KernelType::kMotion, 41, 0, 0, 0, 0, 0, 15.0f}).to(torch::kFloat64);
  EXPECT_NEAR((m * X * X).sum().item<double>(), 15.0 * 15.0 / 12, 1.0);
  EXPECT_LT((m * Y * Y).sum().item<double>(), 0.2);
  auto d = make_blur_kernel({KernelType::kDefocus, 41, 0, 0, 0, 0, 0, 0, 8.0f}).to(torch::kFloat64);
  EXPECT_NEAR((d * X * X).sum().item<double>(), 16.0, 0.5);
}

TEST(DegradeResize, AreaIsBlockMeanAndConstantsStayConstant) {
  auto x = torch::rand({2, 3, 16, 24}, make_generator(3, torch::kCPU));
  auto area = resize_images(x, 8, 12, ResizeMode::kArea);
  auto mean = torch::avg_pool2d(x, 2);
  EXPECT_TRUE(torch::allclose(area, mean, 1e-5, 1e-6));
  auto flat = torch::full({1, 1, 37, 29}, 0.3f);
  for (auto mode : {ResizeMode::kNearest, ResizeMode::kBilinear, ResizeMode::kBicubic, ResizeMode::kArea}) {
    for (auto [h, w] : {std::pair<int, int>{9, 7}, {80, 61}}) {
      auto y = resize_images(flat, h, w, mode);
      EXPECT_EQ(y.size(2), h);
      EXPECT_EQ(y.size(3), w);
      EXPECT_NEAR((y - 0.3).abs().max().item<float>(), 0.f, 1e-5) << int(mode);
    }
  }
  // Antialiased bilinear /4 of a pixel-level checkerboard is flat grey; plain decimation is not.
  auto checker = (torch::arange(64).view({1, 64}) + torch::arange(64).view({64, 1})).remainder(2).to(torch::kFloat32).view({1, 1, 64, 64});
  EXPECT_LT(resize_images(checker, 16, 16, ResizeMode::kBilinear).std().item<float>(), 0.02f);
  EXPECT_LT(resize_images(checker, 16, 16, ResizeMode::kBicubic).std().item<float>(), 0.02f);
}

TEST(DegradeNoise, MeasuredSigmaMatchesRequested) {
  auto flat = torch::full({1, 3, 128, 128}, 0.5f);
  for (float sigma : {5.f, 20.f}) {
    auto y = apply_degradation(flat, noise_only(NoiseType::kGaussian, false, sigma, 11));
    const double measured = (y - 0.5).std().item<double>() * 255;
    EXPECT_NEAR(measured, sigma, 0.05 * sigma + 0.3) << "gaussian colour";
    EXPECT_GT((y[0][0] - y[0][1]).abs().max().item<float>(), 0.f) << "colour noise differs per channel";
  }
  auto g = apply_degradation(flat, noise_only(NoiseType::kGaussian, true, 15.f, 12));
  EXPECT_NEAR((g - 0.5).std().item<double>() * 255, 15.0, 0.8);
  EXPECT_EQ((g[0][0] - g[0][2]).abs().max().item<float>(), 0.f) << "grey noise is shared by channels";
  // Poisson at level x with scale s: sigma = s * sqrt(x / 256) (Real-ESRGAN, 256 levels).
  const float scale = 2.f;
  auto p = apply_degradation(flat, noise_only(NoiseType::kPoisson, false, scale, 13));
  EXPECT_NEAR((p - 0.5).std().item<double>(), scale * std::sqrt(0.5 / 256), 0.1 * scale * std::sqrt(0.5 / 256));
}

TEST(DegradeJpeg, QuantTablesFollowIjg) {
  auto t50 = jpeg_quant_table(50, false);
  EXPECT_EQ(t50[0], 16);
  EXPECT_EQ(t50[63], 99);
  auto t100 = jpeg_quant_table(100, true);
  for (int v : t100) EXPECT_EQ(v, 1);
  EXPECT_EQ(jpeg_quant_table(10, false)[0], 80);   // 16 * 500% 
  EXPECT_EQ(jpeg_quant_table(90, true)[0], 3);     // (17*20+50)/100
}

// The issue's bar: the emulation agrees with libjpeg at PSNR >= 38 dB over q 30..95.
TEST(DegradeJpeg, EmulationMatchesLibjpeg) {
  std::vector<std::pair<std::string, torch::Tensor>> images = {{"synthetic rgb", synthetic(3, 96, 128)},
                                                               {"synthetic grey", synthetic(1, 80, 72)}};
  if (f2s_test::have_data("natural/Kodak24/kodim23.png")) images.push_back({"kodim23", crop_of("natural/Kodak24/kodim23.png", 128, true)});
  if (f2s_test::have_data("natural/Kodak24/kodim08.png")) images.push_back({"kodim08", crop_of("natural/Kodak24/kodim08.png", 120, true)});
  if (f2s_test::have_data("scenes/solvay1927.jpg")) images.push_back({"solvay grey", crop_of("scenes/solvay1927.jpg", 128, false)});
  double worst = 99;
  for (auto& [name, img] : images) {
    auto x = img.unsqueeze(0);
    for (int q : {30, 40, 50, 60, 70, 80, 90, 95}) {
      auto codec = jpeg_images(x, {q}, JpegMode::kCodec);
      auto emu = jpeg_images(x, {q}, JpegMode::kEmulated);
      const double agree = psnr(codec, emu);
      worst = std::min(worst, agree);
      EXPECT_GE(agree, 38.0) << name << " q=" << q;
      if (q == 30) EXPECT_LT(psnr(x, codec), agree - 3) << name << ": JPEG must actually degrade";
    }
  }
  std::printf("worst emulation-vs-libjpeg PSNR over q 30..95: %.2f dB\n", worst);
}

TEST(DegradeJpeg, EmulationIsBatchedAndDifferentiable) {
  auto x = synthetic(3, 64, 64).unsqueeze(0).repeat({3, 1, 1, 1}).requires_grad_(true);
  auto y = jpeg_images(x, {30, 0, 90}, JpegMode::kEmulated);
  EXPECT_TRUE(torch::equal(y[1], x[1])) << "quality 0 leaves the item untouched";
  auto single = jpeg_images(x.detach()[2].unsqueeze(0), {90}, JpegMode::kEmulated);
  EXPECT_TRUE(torch::allclose(y.detach()[2], single[0], 0, 1e-6));
  y.sum().backward();
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}

TEST(DegradeParams, VectorAndJsonRoundTrip) {
  EXPECT_EQ(int(DegradationParams::slot_names().size()), DegradationParams::kVectorSize);
  for (const auto& preset : preset_names()) {
    DegradationSampler s(preset, 5);
    for (int i = 0; i < 20; ++i) {
      const auto p = s.sample();
      const auto v = p.to_vector();
      ASSERT_EQ(int(v.size()), DegradationParams::kVectorSize);
      const auto back = DegradationParams::from_json(p.to_json());
      EXPECT_EQ(back.to_vector(), v);
      EXPECT_EQ(back.seed, p.seed);
      EXPECT_EQ(DegradationParams::from_vector(v, p.seed).to_vector(), v);
      EXPECT_EQ(back.preset, preset);
      EXPECT_FALSE(p.describe().empty());
    }
  }
}

TEST(DegradeParams, OutOfRangeIsRejectedByName) {
  DegradationParams p;
  p.stage1.blur = {KernelType::kIsoGaussian, 7, -1.f, -1.f};
  try {
    p.validate();
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("s1.blur.sigma_x"), std::string::npos) << e.what();
  }
  p = {};
  p.final_step.jpeg_quality = 140;
  EXPECT_THROW(p.validate(), ArgumentError);
  p = {};
  p.out_scale = 0.5f;
  EXPECT_THROW(apply_degradation(torch::zeros({3, 8, 8}), p), ArgumentError);
  EXPECT_THROW(DegradationSampler("unknown", 1), ArgumentError);
  EXPECT_THROW(DegradationParams::from_json("{not json"), FormatError);
  EXPECT_THROW(DegradationParams::from_vector(std::vector<float>(5, 0.f)), ArgumentError);
}

TEST(DegradeSampler, RealEsrganRangesAndRates) {
  DegradationSampler s("realesrgan", 99);
  int final_sinc = 0, second_blur = 0;
  const int n = 400;
  for (int i = 0; i < n; ++i) {
    const auto p = s.sample();
    EXPECT_EQ(p.order, 2);
    EXPECT_EQ(p.out_scale, 4.f);
    const auto& b = p.stage1.blur;
    if (b.type != KernelType::kSinc) {
      EXPECT_GE(b.sigma_x, 0.2f);
      EXPECT_LE(b.sigma_x, 3.f);
    }
    EXPECT_GE(b.size, 7);
    EXPECT_LE(b.size, 21);
    EXPECT_GE(p.stage1.resize.scale, 0.15f);
    EXPECT_LE(p.stage1.resize.scale, 1.5f);
    EXPECT_GE(p.stage2.resize.scale, 0.3f);
    EXPECT_LE(p.stage2.resize.scale, 1.2f);
    EXPECT_GE(p.stage1.jpeg_quality, 30);
    EXPECT_LE(p.final_step.jpeg_quality, 95);
    if (p.stage1.noise.type == NoiseType::kGaussian) EXPECT_LE(p.stage1.noise.level, 30.f);
    if (p.stage2.noise.type == NoiseType::kPoisson) EXPECT_LE(p.stage2.noise.level, 2.5f);
    final_sinc += p.final_step.sinc_size > 0;
    second_blur += p.stage2.blur.type != KernelType::kNone;
  }
  EXPECT_NEAR(final_sinc / double(n), 0.8, 0.06);
  EXPECT_NEAR(second_blur / double(n), 0.8, 0.06);
}

TEST(DegradeApply, SameSeedIsBitIdenticalDifferentSeedDiffers) {
  auto x = synthetic(3, 96, 96);
  for (const auto& preset : preset_names()) {
    const auto p = DegradationSampler(preset, 21).sample();
    auto a = apply_degradation(x, p), b = apply_degradation(x.clone(), p);
    EXPECT_TRUE(torch::equal(a, b)) << preset;
    const auto [h, w] = degraded_size(p, 96, 96);
    EXPECT_EQ(a.size(1), h);
    EXPECT_EQ(a.size(2), w);
    EXPECT_EQ(h, int64_t(96 / p.out_scale));
    auto c = apply_degradation(x, DegradationSampler(preset, 22).sample());
    EXPECT_FALSE(c.sizes() == a.sizes() && torch::equal(a, c)) << preset;
  }
  // Same params, new noise seed only: the output changes too.
  auto p = noise_only(NoiseType::kGaussian, false, 10, 1);
  auto q = p;
  q.seed = 2;
  EXPECT_FALSE(torch::equal(apply_degradation(x, p), apply_degradation(x, q)));
}

TEST(DegradeApply, BatchItemsAreIndependentAndKeepSizeWorks) {
  auto x = torch::stack({synthetic(3, 64, 64), synthetic(3, 64, 64).flip({2})});
  DegradationSampler s("realesrgan", 4);
  const auto ps = s.sample_batch(2);
  auto y = apply_degradation(x, ps, {JpegMode::kEmulated});
  ASSERT_EQ(y.size(2), 16);
  for (int i = 0; i < 2; ++i) {
    auto alone = apply_degradation(x[i], ps[size_t(i)], {JpegMode::kEmulated});
    EXPECT_LE((alone - y[i]).abs().max().item<float>(), 1.0f / 255 + 1e-6) << i;
  }
  // Different per-item resize steps still run (grouped).
  const std::vector<DegradationParams> mixed = {DegradationSampler("realesrgan", 1).sample(), DegradationSampler("realesrgan", 2).sample()};
  EXPECT_EQ(apply_degradation(x, mixed).size(3), 16);
  s.set_keep_size(true);
  EXPECT_EQ(apply_degradation(x, s.sample_batch(2)).size(3), 64);
}

TEST(DegradeCli, FilesFoldersParamsAndErrors) {
  const std::string dir = f2s_test::temp_dir("degrade");
  Image img(80, 64, 3, 8);
  auto t = synthetic(3, 64, 80);
  img = tensor_to_image(t, 8);
  write_image(dir + "/a.png", img);
  write_image(dir + "/b.png", img);
  auto r = f2s_test::run_cli("-q degrade " + dir + "/a.png -o " + dir + "/a_lq.png --preset severe --seed 3 --params " + dir + "/a.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Image lq = read_image(dir + "/a_lq.png");
  EXPECT_EQ(lq.width, 20);
  EXPECT_EQ(lq.height, 16);
  r = f2s_test::run_cli("-q degrade " + dir + "/a.png -o " + dir + "/a_lq2.png --preset severe --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir + "/a_lq.png"), read_file(dir + "/a_lq2.png"));
  r = f2s_test::run_cli("-q degrade " + dir + "/a.png -o " + dir + "/a_lq3.png --apply " + dir + "/a.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir + "/a_lq.png"), read_file(dir + "/a_lq3.png"));
  r = f2s_test::run_cli("-q degrade " + dir + "/a.png -o " + dir + "/a_lq4.png --preset severe --seed 4");
  EXPECT_NE(read_file(dir + "/a_lq.png"), read_file(dir + "/a_lq4.png"));
  // Folder mode: every image, one JSON keyed by file name.
  fs::create_directories(dir + "/in");
  fs::copy_file(dir + "/a.png", dir + "/in/a.png");
  fs::copy_file(dir + "/b.png", dir + "/in/b.png");
  r = f2s_test::run_cli("-q degrade " + dir + "/in -o " + dir + "/out --preset mild --keep-size --params " + dir + "/all.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_image(dir + "/out/b.png").width, 80);
  EXPECT_NE(read_file(dir + "/all.json").find("\"b.png\""), std::string::npos);
  // Bad inputs: one line naming the problem, exit 1, nothing written.
  std::ofstream(dir + "/text.png") << "not an image";
  std::ofstream(dir + "/empty.png").close();
  std::ofstream(dir + "/bad.json") << R"({"vector": [1, 1, 0.5])" << "}";
  {
    DegradationParams big;  // a well-formed file with one slot out of range
    auto v = big.to_vector();
    v[2] = 50.f;  // out_scale
    std::string vec;
    for (float f : v) vec += (vec.empty() ? "" : ",") + std::to_string(f);
    std::ofstream(dir + "/range.json") << "{\"vector\": [" << vec << "]}";
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {dir + "/missing.png -o " + dir + "/x.png", "missing.png"},
      {dir + "/text.png -o " + dir + "/x.png", "text.png"},
      {dir + "/empty.png -o " + dir + "/x.png", "empty.png"},
      {dir + "/a.png -o " + dir + "/x.png --preset nope", "nope"},
      {dir + "/a.png -o " + dir + "/x.png --apply " + dir + "/bad.json", "bad.json"},
      {dir + "/a.png -o " + dir + "/x.png --apply " + dir + "/range.json", "out_scale"},
      {dir + "/a.png " + dir + "/text.png -o " + dir + "/xdir", "text.png"},
  };
  for (const auto& [args, needle] : bad) {
    r = f2s_test::run_cli("-q degrade " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(dir + "/x.png"));
    EXPECT_FALSE(fs::exists(dir + "/xdir/a.png"));
  }
  f2s_test::remove_tree(dir);
}
