// `face2scene metrics` folder mode: CSV + summary, and clear errors for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "face2scene/image.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
Image constant(int w, int h, int c, int v) {
  Image img(w, h, c, 8);
  std::fill(img.data.begin(), img.data.end(), static_cast<uint16_t>(v));
  return img;
}
std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST(MetricsCli, FolderModeWritesCsvAndSummary) {
  const std::string root = f2s_test::temp_dir("metrics_cli");
  fs::create_directories(root + "/pred");
  fs::create_directories(root + "/gt");
  // MSE 100 and 400: PSNR 28.1308 and 22.1102 dB (10 log10(65025/MSE)).
  write_image(root + "/pred/a.png", constant(40, 30, 3, 100));
  write_image(root + "/gt/a.png", constant(40, 30, 3, 110));
  write_image(root + "/pred/b.png", constant(40, 30, 3, 100));
  write_image(root + "/gt/b.png", constant(40, 30, 3, 120));
  const auto r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --gt " + root + "/gt -m psnr,ssim -o " + root + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string csv = slurp(root + "/out/metrics.csv");
  EXPECT_NE(csv.find("image,psnr,ssim"), std::string::npos) << csv;
  EXPECT_NE(csv.find("a.png,28.130"), std::string::npos) << csv;
  EXPECT_NE(csv.find("b.png,22.110"), std::string::npos) << csv;
  const std::string md = slurp(root + "/out/summary.md");
  // mean 25.1205; CI half-width = t(0.975,1) * sd / sqrt(2) = 12.7062 * 4.25719 / 1.41421 = 38.2496
  EXPECT_NE(md.find("| psnr ↑ (dB) | 2 | 25.12"), std::string::npos) << md;
  EXPECT_NE(md.find("± 38.24"), std::string::npos) << md;
}

TEST(MetricsCli, ClearErrors) {
  const std::string root = f2s_test::temp_dir("metrics_cli_err");
  fs::create_directories(root + "/pred");
  fs::create_directories(root + "/gt");
  write_image(root + "/pred/a.png", constant(40, 30, 3, 100));
  write_image(root + "/gt/a.png", constant(40, 32, 3, 100));
  auto r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --gt " + root + "/gt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("sizes differ"), std::string::npos) << r.output;

  write_image(root + "/gt/a.png", constant(40, 30, 1, 100));
  r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --gt " + root + "/gt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("grey"), std::string::npos) << r.output;

  write_image(root + "/pred/z.png", constant(40, 30, 3, 100));
  r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --gt " + root + "/gt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no ground truth for 1 of 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("z.png"), std::string::npos) << r.output;

  r = f2s_test::run_cli("-q metrics --pred " + root + "/nothere --gt " + root + "/gt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nothere"), std::string::npos) << r.output;

  r = f2s_test::run_cli("-q metrics --pred " + root + "/pred -m psnr");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("needs --gt"), std::string::npos) << r.output;

  r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --gt " + root + "/gt -m lpips,foo");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown metric 'foo'"), std::string::npos) << r.output;
}

TEST(MetricsCli, GreyPairsAndNoReferenceMetrics) {
  F2S_REQUIRE_DATA("weights/niqe/niqe_pris_params.npz");
  const std::string root = f2s_test::temp_dir("metrics_cli_grey");
  const std::string bridge = f2s_test::data_path("natural/Set14/bridge.png");  // grey
  const auto r = f2s_test::run_cli("-q metrics --pred " + bridge + " --gt " + bridge +
                                   " -m psnr,ssim,lpips,niqe,brisque -y --weights " + f2s_test::data_path("weights"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| ssim ↑ | 1 | 1.0000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| lpips ↓ | 1 | 0.0000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("infinite PSNR"), std::string::npos) << r.output;
}
