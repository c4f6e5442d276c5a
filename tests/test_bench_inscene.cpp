// bench_inscene (issue #20): KID on SqueezeNet features, region LPIPS, the CSV and table writers,
// and the tool itself on two tiny inputs, one method each (so it cannot rot).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "../bench/inscene_bench_util.hpp"
#include "face2scene/degrade.hpp"
#include "test_util.hpp"

using namespace face2scene;
using namespace f2s_isb;
namespace fs = std::filesystem;

namespace {
// The unbiased MMD² written out pair by pair (an independent form of metrics::kid).
double naive_kid(const torch::Tensor& a, const torch::Tensor& b) {
  auto k = [&](const torch::Tensor& x, const torch::Tensor& y) { return std::pow(x.dot(y).item<double>() / double(x.size(0)) + 1, 3); };
  const int64_t m = a.size(0), n = b.size(0);
  double sxx = 0, syy = 0, sxy = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j)
      if (i != j) sxx += k(a[i], a[j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (i != j) syy += k(b[i], b[j]);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) sxy += k(a[i], b[j]);
  return sxx / double(m * (m - 1)) + syy / double(n * (n - 1)) - 2 * sxy / double(m * n);
}
std::string weights_dir() { return f2s_test::data_dir() + "/weights"; }
}  // namespace

TEST(BenchInscene, KidMatchesThePairwiseFormAndSeparatesDistributions) {
  torch::manual_seed(3);
  const auto a = torch::randn({12, 8}, torch::kFloat64).abs(), b = torch::randn({10, 8}, torch::kFloat64).abs();
  EXPECT_NEAR(metrics::kid(a, b), naive_kid(a, b), 1e-9);
  // Same distribution: near 0 (unbiased, so it may be slightly negative); shifted: clearly positive.
  const auto x = torch::randn({200, 16}), y = torch::randn({200, 16}), z = torch::randn({200, 16}) + 0.5;
  const double same = metrics::kid(x, y), shifted = metrics::kid(x, z);
  EXPECT_LT(std::abs(same), 0.02) << same;
  EXPECT_GT(shifted, 10 * std::abs(same)) << shifted;
}

TEST(BenchInscene, KidBootstrapOverImagesMatchesTheDirectValue) {
  torch::manual_seed(4);
  std::vector<torch::Tensor> a, b, c;
  for (int i = 0; i < 8; ++i) {
    a.push_back(torch::randn({3, 16}));
    b.push_back(torch::randn({3, 16}));
    c.push_back(torch::randn({3, 16}) + 1.0);
  }
  const auto same = metrics::kid_bootstrap(a, b, 300), shifted = metrics::kid_bootstrap(a, c, 300);
  EXPECT_EQ(same.n, 8);
  EXPECT_NEAR(same.mean, metrics::kid(torch::cat(a), torch::cat(b)), 1e-9);
  EXPECT_LE(same.lo, same.mean);  // the resampled values centre on the direct one (no bias from self-pairs)
  EXPECT_GE(same.hi, same.mean);
  EXPECT_LE(shifted.lo, shifted.mean);
  EXPECT_GE(shifted.hi, shifted.mean);
  EXPECT_GT(shifted.lo, same.hi);  // a 1-σ shift is far outside the same-distribution interval
}

TEST(BenchInscene, RegionLpipsOfTheWholeImageIsLpips) {
  if (!fs::exists(weights_dir() + "/lpips_v0.1/squeeze.pth")) GTEST_SKIP() << "LPIPS weights missing";
  metrics::Lpips lp(weights_dir());
  torch::manual_seed(5);
  auto a = torch::rand({1, 3, 64, 96});
  auto b = a.clone();
  b.slice(3, 0, 48).add_(torch::randn({1, 3, 64, 48}) * 0.2).clamp_(0, 1);  // only the left half differs
  const double whole = lp.forward(a, b).item<double>();
  const auto ones = torch::ones({1, 1, 64, 96});
  EXPECT_NEAR(lp.masked(a, b, ones).item<double>(), whole, 1e-6);
  auto left = torch::zeros({1, 1, 64, 96}), right = torch::zeros({1, 1, 64, 96});
  left.slice(3, 0, 48).fill_(1), right.slice(3, 48, 96).fill_(1);
  const double l = lp.masked(a, b, left).item<double>(), r = lp.masked(a, b, right).item<double>();
  EXPECT_GT(l, 2 * r) << l << " " << r;
  EXPECT_GT(l, whole);
  EXPECT_TRUE(std::isnan(lp.masked(a, b, torch::zeros({1, 1, 64, 96})).item<double>()));
  // Batched masks: one pass gives each region.
  const auto three = lp.masked(a.expand({3, -1, -1, -1}), b.expand({3, -1, -1, -1}), torch::cat({ones, left, right}));
  EXPECT_NEAR(three[1].item<double>(), l, 1e-6);
  EXPECT_NEAR(three[2].item<double>(), r, 1e-6);
}

TEST(BenchInscene, CsvRoundTripAndTableMarksTheBest) {
  std::vector<Row> rows;
  for (int i = 0; i < 6; ++i)
    for (const std::string m : {"bicubic", "esrgan-x4plus", "ours-refs"}) {
      Row r;
      r.set = "celeba", r.name = "c" + std::to_string(i), r.cond = "moderate4", r.method = m;
      r.lpips = (m == "bicubic" ? 0.5 : m == "esrgan-x4plus" ? 0.3 : 0.2) + 0.01 * i;
      r.psnr = m == "bicubic" ? 27 + 0.1 * i : 25 + 0.1 * i;
      r.seconds = 1;
      rows.push_back(r);
    }
  std::string text = std::string(kCsvHeader) + "\n";
  for (const auto& r : rows) text += csv_line(r) + "\n";
  const auto back = parse_csv(text + "celeba,torn", "mem");  // a torn last line is dropped
  ASSERT_EQ(back.size(), rows.size());
  EXPECT_EQ(back[5].method, rows[5].method);
  EXPECT_DOUBLE_EQ(back[5].lpips, rows[5].lpips);
  EXPECT_TRUE(std::isnan(back[5].ssim));
  const auto t = table(back, {"celeba"}, "moderate4", fr_metrics(), nullptr, 500);
  EXPECT_EQ(t.order.size(), 6u);
  EXPECT_NE(t.md.find("**0.225"), std::string::npos) << t.md;  // ours' LPIPS mean (0.2 + 0.025) in bold
  EXPECT_NE(t.md.find("**27.25"), std::string::npos) << t.md;  // bicubic's PSNR in bold
  const auto d = t.ci.at("Δ esrgan-x4plus").at("LPIPS↓");
  EXPECT_NEAR(d.mean, -0.1, 1e-12);
  EXPECT_NEAR(d.lo, -0.1, 1e-12);  // a constant paired shift has a zero-width interval
}

TEST(BenchInscene, SplitGuardsEveryFile) {
  const std::string split = std::string(F2S_SOURCE_DIR) + "/bench/inscene_split.tsv";
  const auto entries = read_split(split);
  std::map<std::string, int> per;
  for (const auto& e : entries) ++per[e.set + "/" + e.role];
  EXPECT_EQ(per["celeba/gt"], 58);  // 29 test identities × 2 whole photos
  EXPECT_GT(per["lfw/gt"], 50);
  EXPECT_EQ(per["lfw/gt"], per["lfw/ref"]);
  EXPECT_EQ(per["people_hq/gt"], 13);
  EXPECT_EQ(per["real/lq"], 39);
  // No CelebA identity of the split is a Ref-FR training identity.
  const std::string rf = read_file(std::string(F2S_SOURCE_DIR) + "/bench/ref_fr_split.tsv");
  for (const auto& e : entries) {
    if (e.set != "celeba") continue;
    EXPECT_EQ(rf.find("train\tceleba_" + e.name.substr(0, 5)), std::string::npos) << e.name;
    EXPECT_NE(rf.find("test\tceleba_" + e.name.substr(0, 5)), std::string::npos) << e.name;
  }
  if (!fs::exists(f2s_test::data_dir() + "/" + entries[0].path)) GTEST_SKIP() << "shared data missing";
  for (size_t i = 0; i < entries.size(); i += 17)  // a sample of the checksums against the data
    EXPECT_EQ(sha256_hex(read_file(f2s_test::data_dir() + "/" + entries[i].path)), entries[i].sha) << entries[i].path;
}

// The tool on two tiny inputs, one method each: a people_hq-style photo with a ground truth
// (bicubic, moderate ×4) and a real degraded photo (general-x4v3). Checks the rows, the tables
// and a resumed run (nothing recomputed).
TEST(BenchInscene, TinyRunWritesRowsAndTables) {
#ifndef F2S_BENCH_INSCENE
  GTEST_SKIP() << "bench_inscene is not built (Google Benchmark missing)";
#else
  const std::string face = f2s_test::data_dir() + "/faces/hq/london/001_neutral.jpg";
  if (!fs::exists(face) || !fs::exists(weights_dir() + "/niqe/niqe_pris_params.npz")) GTEST_SKIP() << "shared data missing";
  const std::string dir = f2s_test::temp_dir("bench_inscene_tiny"), pack = dir + "/pack";
  fs::create_directories(pack + "/people_hq/tiny");
  fs::create_directories(pack + "/real/tiny");
  auto x = image_to_tensor(read_image(face), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
  auto gt = resize_images(x, 200, 200, ResizeMode::kArea)[0].clamp(0, 1);  // NIQE needs two 96² blocks
  auto lq = resize_images(x, 48, 48, ResizeMode::kArea)[0].clamp(0, 1);
  const std::string g = encode_jpeg(tensor_to_image(gt), 95), l = encode_png(tensor_to_image(lq));
  write_file_atomically(pack + "/people_hq/tiny/gt.jpg", g);
  write_file_atomically(pack + "/real/tiny/lq.png", l);
  write_file_atomically(pack + "/manifest.tsv", "people_hq\ttiny\tpeople_hq/tiny/gt.jpg\t\t\nreal\ttiny\t\treal/tiny/lq.png\t\n");
  write_file_atomically(pack + "/checksums.sha256", sha256_hex(g) + "  people_hq/tiny/gt.jpg\n" + sha256_hex(l) + "  real/tiny/lq.png\n");
  fs::create_directory_symlink(fs::absolute(weights_dir()), pack + "/weights");
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string(F2S_BENCH_INSCENE) + " --threads 2 --data " + pack + " -o " + dir + "/out " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string outp;
    char buf[512];
    while (p && fgets(buf, sizeof buf, p)) outp += buf;
    const int rc = p ? pclose(p) : -1;
    EXPECT_EQ(rc, 0) << cmd << "\n" << outp;
    return outp;
  };
  run("--sets people_hq --methods bicubic --conds moderate4");
  run("--sets real --methods esrgan-x4v3");
  const auto rows = parse_csv(read_file(dir + "/out/per_image.csv"), "per_image.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].method, "bicubic");
  EXPECT_TRUE(std::isfinite(rows[0].psnr) && std::isfinite(rows[0].lpips) && std::isfinite(rows[0].niqe)) << csv_line(rows[0]);
  EXPECT_GT(rows[0].psnr, 15);
  EXPECT_EQ(rows[1].method, "esrgan-x4v3");
  EXPECT_TRUE(std::isnan(rows[1].psnr));  // no ground truth
  EXPECT_TRUE(std::isfinite(rows[1].brisque));
  const auto out = read_image(dir + "/out/outputs/real/given/esrgan-x4v3/tiny.png");
  EXPECT_EQ(out.width, 192);
  const std::string md = read_file(dir + "/out/BENCHMARKS.md");
  EXPECT_NE(md.find("## Table 2"), std::string::npos);
  EXPECT_NE(md.find("## Table 3"), std::string::npos);
  EXPECT_NE(md.find("--methods esrgan-x4v3"), std::string::npos);  // the command lines
  // Resumed: nothing is measured twice.
  run("--sets people_hq --methods bicubic --conds moderate4");
  EXPECT_EQ(parse_csv(read_file(dir + "/out/per_image.csv"), "per_image.csv").size(), 2u);
  // A file whose checksum is not in the pack's list is refused.
  write_file_atomically(pack + "/people_hq/tiny/gt.jpg", g + "x");
  const std::string cmd = std::string(F2S_BENCH_INSCENE) + " --data " + pack + " -o " + dir + "/out2 --sets people_hq --methods bicubic --conds mild4 >/dev/null 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  fs::remove_all(dir);
#endif
}
