// The shipped oracle weights (weights/) on held-out data: FaDeX reads severe degradations as
// worse than mild ones, and restore-scene runs with a face pair or blind.
#include <gtest/gtest.h>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"
#include "test_util.hpp"

using namespace face2scene;

namespace {
std::string models_dir() { return std::string(F2S_SOURCE_DIR) + "/weights"; }
bool have_models() {
  return file_exists(models_dir() + "/fadex.safetensors") &&
         file_exists(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3));
}
#define F2S_REQUIRE_MODELS() \
  if (!have_models()) GTEST_SKIP() << "weights/ or the Real-ESRGAN base (scripts/install_models.sh) missing"
}  // namespace

TEST(OracleRestore, FaDeXReadsSevereAsWorseThanMild) {
  F2S_REQUIRE_MODELS();
  F2S_REQUIRE_DATA("faces/celebref/RefsImg/00119/0.png");
  OracleRestorer r(OracleModelPaths::locate(models_dir()), OracleOptions{});
  auto face = image_to_tensor(read_image(f2s_test::data_path("faces/celebref/RefsImg/00119/0.png")), torch::kCPU,
                              torch::kFloat32, true)
                  .unsqueeze(0);
  face = torch::nn::functional::interpolate(face, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{128, 128})
                                                      .mode(torch::kBicubic)
                                                      .align_corners(false)
                                                      .antialias(true))
             .clamp(0, 1);
  // Averages over 6 draws per preset: severe blurs, adds noise and compresses harder than mild.
  double blur[2] = {0, 0}, jpeg[2] = {0, 0}, noise[2] = {0, 0};
  int k = 0;
  for (const std::string preset : {"mild", "severe"}) {
    DegradationSampler s(preset, 77);
    s.set_out_scale(4);
    for (int i = 0; i < 6; ++i) {
      const auto p = s.sample();
      const auto read = r.read_degradation(apply_degradation(face, p), face).front();
      blur[k] += read.blur_sigma / 6, jpeg[k] += read.jpeg_quality / 6, noise[k] += read.noise_sigma / 6;
    }
    ++k;
  }
  EXPECT_GT(blur[1], blur[0]);
  EXPECT_LT(jpeg[1], jpeg[0]);
  EXPECT_GT(noise[1], noise[0]);
}

TEST(OracleRestore, CliWithFacePairAndBlind) {
  F2S_REQUIRE_MODELS();
  const std::string dir = f2s_test::temp_dir("restore_scene");
  torch::manual_seed(3);
  auto img = torch::nn::functional::interpolate(
      torch::rand({1, 3, 6, 5}),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{40, 36}).mode(torch::kBilinear).align_corners(false));
  write_image(dir + "/in.png", tensor_to_image(img.squeeze(0)));
  auto face = torch::nn::functional::interpolate(
      torch::rand({1, 3, 4, 4}),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{128, 128}).mode(torch::kBilinear).align_corners(false));
  write_image(dir + "/hq.png", tensor_to_image(face.squeeze(0)));
  DegradationSampler s("severe", 5);
  s.set_out_scale(4);
  write_image(dir + "/lq.png", tensor_to_image(apply_degradation(face, s.sample()).squeeze(0)));
  const std::string m = " --models " + models_dir();
  auto r = f2s_test::run_cli("--threads 1 restore-scene " + dir + "/in.png -o " + dir + "/code.png --face-lq " + dir +
                             "/lq.png --face-hq " + dir + "/hq.png" + m);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = f2s_test::run_cli("--threads 1 restore-scene " + dir + "/in.png -o " + dir + "/blind.png --blind" + m);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = f2s_test::run_cli("--threads 1 restore-scene " + dir + "/in.png -o " + dir + "/x1.png --blind --scale 1" + m);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Image a = read_image(dir + "/code.png"), b = read_image(dir + "/blind.png"), c = read_image(dir + "/x1.png");
  EXPECT_EQ(a.width, 144);
  EXPECT_EQ(a.height, 160);
  EXPECT_EQ(c.width, 36);
  EXPECT_EQ(c.height, 40);
  EXPECT_NE(a.data, b.data);  // the code changes the result
  r = f2s_test::run_cli("restore-scene " + dir + "/in.png -o " + dir + "/none.png" + m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--blind"), std::string::npos) << r.output;
  EXPECT_FALSE(file_exists(dir + "/none.png"));
  r = f2s_test::run_cli("read-degradation --lq " + dir + "/lq.png --hq " + dir + "/hq.png" + m);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("downscale"), std::string::npos) << r.output;
  f2s_test::remove_tree(dir);
}
