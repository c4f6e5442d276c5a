// Metrics against independently obtained values: hand computation, scikit-image, a numpy
// re-implementation (MS-SSIM, NIQE) and OpenCV contrib (BRISQUE), all produced by
// scripts/reference_metrics.py into tests/fixtures/metrics/reference.json.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "face2scene/metrics.hpp"
#include "test_util.hpp"

using namespace face2scene;
using namespace face2scene::metrics;

namespace {

Image constant(int w, int h, int c, int v) {
  Image img(w, h, c, 8);
  std::fill(img.data.begin(), img.data.end(), static_cast<uint16_t>(v));
  return img;
}

// The degradation of scripts/reference_metrics.py degrade(): integer-exact.
Image degrade(const Image& gt) {
  Image out(gt.width, gt.height, gt.channels, 8);
  for (int y = 0; y < gt.height; ++y)
    for (int x = 0; x < gt.width; ++x)
      for (int c = 0; c < gt.channels; ++c) {
        const int b = (2 * gt.at(x, y, c) + gt.at(std::min(x + 1, gt.width - 1), y, c) +
                       gt.at(x, std::min(y + 1, gt.height - 1), c)) / 4;
        const int n = (x * 7 + y * 13 + c * 5) % 17 - 8;
        out.at(x, y, c) = static_cast<uint16_t>(std::clamp(b + n, 0, 255));
      }
  return out;
}

nlohmann::json reference() {
  std::ifstream in(std::string(F2S_SOURCE_DIR) + "/tests/fixtures/metrics/reference.json");
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(Metrics, HandComputedConstantImages) {
  // 100 vs 110 everywhere: MSE = 100, PSNR = 10 log10(255^2 / 100) = 28.1308 dB.
  const Image a = constant(32, 24, 3, 100), b = constant(32, 24, 3, 110);
  EXPECT_NEAR(psnr(a, b), 10 * std::log10(65025.0 / 100.0), 1e-9);
  // No variance: SSIM = luminance term (2*100*110 + C1) / (100^2 + 110^2 + C1), C1 = 6.5025.
  const double l = (2.0 * 100 * 110 + 6.5025) / (100.0 * 100 + 110.0 * 110 + 6.5025);
  EXPECT_NEAR(ssim(a, b), l, 3e-6);  // float filtering: weights sum to 1 only to ~1e-7
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-7);
  // Y of grey (v,v,v) is 16 + v * 219/255: a difference of 10 becomes 10*219/255 in Y.
  PixelOptions y;
  y.y_channel = true;
  const double dy = 10.0 * 219.0 / 255.0;
  EXPECT_NEAR(psnr(a, b, y), 10 * std::log10(65025.0 / (dy * dy)), 1e-4);
}

TEST(Metrics, AgainstScikitImageAndReferences) {
  F2S_REQUIRE_DATA("natural/Set14/baboon.png");
  const auto ref = reference();
  ASSERT_GE(ref["cases"].size(), 5u);
  for (const auto& c : ref["cases"]) {
    const std::string rel = c["gt"];
    SCOPED_TRACE(rel);
    const Image gt = read_image(f2s_test::data_path(rel));
    ASSERT_EQ(gt.channels, c["channels"].get<int>());
    const Image pred = degrade(gt);
    PixelOptions rgb, y;
    rgb.crop_border = y.crop_border = c["crop_border"];
    y.y_channel = true;
    EXPECT_NEAR(psnr(pred, gt, rgb), c["psnr_rgb"].get<double>(), 1e-6);
    EXPECT_NEAR(psnr(pred, gt, y), c["psnr_y"].get<double>(), 1e-4);
    EXPECT_NEAR(ssim(pred, gt, rgb), c["ssim_rgb"].get<double>(), 2e-6);
    EXPECT_NEAR(ssim(pred, gt, y), c["ssim_y"].get<double>(), 2e-6);
    EXPECT_NEAR(ms_ssim(pred, gt, rgb), c["ms_ssim_rgb"].get<double>(), 2e-6);
    EXPECT_NEAR(ms_ssim(pred, gt, y), c["ms_ssim_y"].get<double>(), 2e-6);
  }
}

TEST(Metrics, NiqeAgainstNumpyReimplementation) {
  F2S_REQUIRE_DATA("weights/niqe/niqe_pris_params.npz");
  const Niqe niqe(f2s_test::data_path("weights/niqe/niqe_pris_params.npz"));
  const auto ref = reference();  // keep the json alive: a range-for over a temporary's member dangles
  for (const auto& c : ref["cases"]) {
    const std::string rel = c["gt"];
    SCOPED_TRACE(rel);
    const Image gt = read_image(f2s_test::data_path(rel));
    // Both sides are float64; what is left is Y values that round differently at exact .5 ties
    // (3 pixels of the degraded baboon), worth ~2e-4.
    EXPECT_NEAR(niqe(gt), c["niqe_gt"].get<double>(), 1e-3);
    EXPECT_NEAR(niqe(degrade(gt)), c["niqe_pred"].get<double>(), 1e-3);
  }
}

TEST(Metrics, BrisqueAgainstOpenCvContrib) {
  F2S_REQUIRE_DATA("weights/brisque/brisque_model_live.yml");
  const Brisque brisque(f2s_test::data_path("weights/brisque"));
  const auto ref = reference();  // keep the json alive: a range-for over a temporary's member dangles
  for (const auto& c : ref["cases"]) {
    const std::string rel = c["gt"];
    SCOPED_TRACE(rel);
    const Image gt = read_image(f2s_test::data_path(rel));
    const auto feat = brisque.features(gt);
    const auto& ref_feat = c["brisque_features_gt"];
    ASSERT_EQ(feat.size(), ref_feat.size());
    for (size_t i = 0; i < feat.size(); ++i) {
      EXPECT_NEAR(feat[i], ref_feat[i].get<double>(), 2e-3 * std::max(1.0, std::fabs(feat[i]))) << "feature " << i;
    }
    // OpenCV's SIMD Gaussian blur rounds differently from ours (~1e-7); MSCN divides by sigma + 1/255
    // and so magnifies that up to 255x in flat areas: features agree to ~1e-4, scores to ~0.05.
    EXPECT_NEAR(brisque(gt), c["brisque_gt"].get<double>(), 0.1);
    EXPECT_NEAR(brisque(degrade(gt)), c["brisque_pred"].get<double>(), 0.1);
  }
}

TEST(Metrics, MismatchedPairsAreClearErrors) {
  const Image a = constant(32, 32, 3, 10), b = constant(32, 30, 3, 10), g = constant(32, 32, 1, 10);
  try {
    psnr(a, b);
    FAIL() << "no throw";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("sizes differ"), std::string::npos) << e.what();
  }
  try {
    ssim(a, g);
    FAIL() << "no throw";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("grey"), std::string::npos) << e.what();
  }
  PixelOptions big;
  big.crop_border = 16;
  EXPECT_THROW(psnr(a, a, big), ArgumentError);
  EXPECT_THROW(ms_ssim(a, a), ArgumentError);  // too small for 5 scales
}

TEST(Metrics, StudentTQuantileMatchesTables) {
  // Standard t-table values (two-sided 95%).
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.7062, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 9), 2.2622, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.975, 30), 2.0423, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.975, 100000), 1.9600, 1e-3);
  const Summary s = summarize({1, 2, 3, 4, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.sd, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_NEAR(s.ci95, 3.1824 * std::sqrt(5.0 / 3.0) / 2, 1e-3);
}

TEST(Metrics, LpipsAgainstIndependentPyTorch) {
  F2S_REQUIRE_DATA("weights/lpips_v0.1/squeeze.pth");
  const Lpips lpips(f2s_test::data_path("weights"));
  std::ifstream in(std::string(F2S_SOURCE_DIR) + "/tests/fixtures/metrics/lpips_reference.json");
  const auto ref = nlohmann::json::parse(in);
  for (const auto& c : ref["cases"]) {
    const std::string rel = c["gt"];
    SCOPED_TRACE(rel);
    const Image gt = read_image(f2s_test::data_path(rel));
    EXPECT_NEAR(lpips(degrade(gt), gt), c["lpips"].get<double>(), 1e-4);
  }
  const Image a = read_image(f2s_test::data_path("natural/Set5/bird.png"));
  EXPECT_NEAR(lpips(a, a), 0.0, 1e-7);
}

TEST(Metrics, LegacyPickleErrorsNameTheFile) {
  F2S_REQUIRE_DATA("weights/niqe/niqe_pris_params.npz");
  const std::string dir = f2s_test::temp_dir("lpips_missing");
  try {
    Lpips bad(dir);
    FAIL() << "no throw";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("squeeze.pth"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Niqe(f2s_test::data_path("weights/brisque/brisque_range_live.yml")), FormatError);
}
