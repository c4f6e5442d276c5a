// bench_ref_fr (issue #18): the bootstrap intervals it reports, its CSV and markdown writers, the
// cases it builds from the split, and (when weights and data are installed) a one-face run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "../bench/ref_fr_bench_util.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/realesrgan.hpp"
#include "test_util.hpp"

using namespace face2scene;
using namespace f2s_rfb;

TEST(BenchRefFr, BootstrapCoversTheTrueMeanAtAboutTheNominalRate) {
  // 400 samples of 40 draws from N(1, 2²); the 95 % interval must contain 1 about 95 % of the
  // time (the percentile bootstrap runs a little narrow at n = 40: ~93-94 %).
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd(1.0, 2.0);
  int covered = 0;
  const int trials = 400;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> v(40);
    for (auto& x : v) x = nd(rng);
    const auto ci = metrics::bootstrap_mean_ci(v, 1000, 0.95, uint64_t(t) + 1);
    EXPECT_LE(ci.lo, ci.mean);
    EXPECT_GE(ci.hi, ci.mean);
    covered += ci.lo <= 1.0 && 1.0 <= ci.hi;
  }
  const double rate = double(covered) / trials;
  EXPECT_GT(rate, 0.89) << rate;
  EXPECT_LT(rate, 0.985) << rate;
  // A skewed 0/1 variable (identity matches): p = 0.3.
  std::bernoulli_distribution bd(0.3);
  covered = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> v(60);
    for (auto& x : v) x = bd(rng) ? 1 : 0;
    const auto ci = metrics::bootstrap_mean_ci(v, 1000, 0.95, uint64_t(t) + 1000);
    covered += ci.lo <= 0.3 && 0.3 <= ci.hi;
  }
  EXPECT_GT(double(covered) / trials, 0.89);
}

TEST(BenchRefFr, PairedDifferenceOfIdenticalInputsIsZero) {
  std::vector<double> a{0.5, 0.7, 0.2, 0.9, 0.4, NAN};
  const auto d = metrics::paired_bootstrap_ci(a, a);
  EXPECT_EQ(d.n, 5);  // the NaN pair is skipped
  EXPECT_EQ(d.mean, 0.0);
  EXPECT_EQ(d.lo, 0.0);
  EXPECT_EQ(d.hi, 0.0);
  // A constant shift is found exactly; the unpaired intervals of the same data are wide.
  std::vector<double> b;
  for (double x : a) b.push_back(x + 0.25);
  const auto s = metrics::paired_bootstrap_ci(b, a);
  EXPECT_NEAR(s.mean, 0.25, 1e-12);
  EXPECT_NEAR(s.lo, 0.25, 1e-12);
  EXPECT_NEAR(s.hi, 0.25, 1e-12);
  EXPECT_GT(metrics::bootstrap_mean_ci(b).hi - metrics::bootstrap_mean_ci(b).lo, 0.1);
  EXPECT_THROW(metrics::paired_bootstrap_ci(a, {1.0}), ArgumentError);
  const auto empty = metrics::bootstrap_mean_ci({});
  EXPECT_EQ(empty.n, 0);
  EXPECT_TRUE(std::isnan(empty.mean));
  const auto one = metrics::bootstrap_mean_ci({3.0});
  EXPECT_EQ(one.lo, 3.0);
  EXPECT_EQ(one.hi, 3.0);
}

namespace {
// Rows of n faces at severe ×8 where Ref-FR with references is 0.1 closer in identity than the
// blind twin on every face, and another person's references 0.2 farther.
std::vector<Row> synthetic_rows(int n) {
  std::vector<Row> rows;
  for (int i = 0; i < n; ++i)
    for (const auto& m : methods()) {
      Row r;
      r.set = i % 2 ? "celeba" : "london";
      r.name = "face" + std::to_string(i);
      r.preset = "severe", r.scale = 8, r.method = m.key;
      r.refs = m.key == "ref3" || m.key == "wrong" ? 3 : m.key == "ref1" ? 1 : 0;
      const double base = 0.7 + 0.01 * i;
      r.id_gt = m.key == "ref3" ? base - 0.1 : m.key == "wrong" ? base + 0.1 : base;
      r.match = r.id_gt < 0.6;
      r.psnr = 22 + 0.1 * i, r.ssim = 0.6, r.lpips = m.key == "realesrgan" ? 0.4 : 0.3, r.id_ref = 0.5, r.psnr_ref = 14;
      rows.push_back(r);
    }
  return rows;
}
}  // namespace

TEST(BenchRefFr, CsvRoundTripAndReport) {
  auto rows = synthetic_rows(10);
  rows[3].niqe = 5.25;
  const auto back = parse_csv(csv_text(rows), "mem");
  ASSERT_EQ(back.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(back[i].set, rows[i].set);
    EXPECT_EQ(back[i].method, rows[i].method);
    EXPECT_EQ(back[i].refs, rows[i].refs);
    EXPECT_NEAR(back[i].id_gt, rows[i].id_gt, 1e-6);
    EXPECT_EQ(std::isnan(back[i].niqe), std::isnan(rows[i].niqe));
  }
  EXPECT_NEAR(back[3].niqe, 5.25, 1e-9);
  // A torn last line (an interrupted run) is dropped, not misread.
  auto text = csv_text(rows);
  text += "london,face99,severe,8,ref3,3,22";
  EXPECT_EQ(parse_csv(text, "mem").size(), rows.size());
  EXPECT_THROW(parse_csv("a,b\n", "bad.csv"), FormatError);

  ReportInfo info;
  info.command = "bench_ref_fr --limit 10";
  info.grid_rel = "../images/ref_fr_grid.png";
  info.grid_credit = "Faces: Face Research Lab London Set, L. DeBruine and B. Jones, CC BY 4.0";
  const auto md = report_markdown(rows, info);
  // The headline differences are exact here (every face moves by the same amount).
  EXPECT_NE(md.find("-0.100 [-0.100, -0.100]"), std::string::npos) << md;  // refs − blind
  EXPECT_NE(md.find("+0.200 [+0.200, +0.200]"), std::string::npos);      // wrong − right
  EXPECT_NE(md.find("-0.100 [-0.100, -0.100] | **met**"), std::string::npos);
  EXPECT_NE(md.find("another person's refs − right refs: > 0 (CI above 0) | +0.200 [+0.200, +0.200] | **met**"), std::string::npos);
  EXPECT_NE(md.find("Real-ESRGAN x4plus: ≤ −0.05 | -0.100 [-0.100, -0.100] | **met**"), std::string::npos);
  EXPECT_NE(md.find("London Set"), std::string::npos);
  EXPECT_NE(md.find("![Ref-FR grid](../images/ref_fr_grid.png)"), std::string::npos);
  EXPECT_NE(md.find("LPIPS (the same SqueezeNet LPIPS that is measured here)"), std::string::npos);
  EXPECT_NE(md.find("the dlib ResNet descriptor, was never trained on"), std::string::npos);
  EXPECT_NE(md.find("### london, severe ×8 (5 faces)"), std::string::npos);
  EXPECT_NE(md.find("### london+celeba, severe ×8 (10 faces)"), std::string::npos);
  // No identity gain: the criterion is reported as not met.
  for (auto& r : rows)
    if (r.method == "ref3") r.id_gt += 0.15;
  EXPECT_NE(report_markdown(rows, info).find("+0.050 [+0.050, +0.050] | **not met**"), std::string::npos);
}

TEST(BenchRefFr, CasesComeFromTestIdentitiesWithADerangement) {
  F2S_REQUIRE_DATA("faces/hq/london");
  F2S_REQUIRE_DATA("faces/celeba_id/test");
  const auto split = read_face_split(std::string(F2S_SOURCE_DIR) + "/bench/ref_fr_split.tsv");
  std::set<std::string> test_ids;
  for (const auto& e : split)
    if (e.split == "test") test_ids.insert(e.identity);
  for (const std::string set : {"london", "celeba"}) {
    const auto cases = cases_from_data(f2s_test::data_dir(), split, set);
    ASSERT_GT(cases.size(), 20u);
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      EXPECT_TRUE(test_ids.count(c.name)) << c.name << " is not a test identity";
      EXPECT_FALSE(c.refs.empty());
      EXPECT_EQ(std::find(c.refs.begin(), c.refs.end(), c.gt), c.refs.end()) << c.name << ": the ground truth is a reference";
      EXPECT_EQ(c.wrong, cases[(i + 1) % cases.size()].refs);
      EXPECT_NE(c.wrong, c.refs);
    }
    if (set == "london") EXPECT_NE(cases[0].gt.find("_neutral"), std::string::npos);
  }
  // The --pack manifest keeps every field.
  auto cases = cases_from_data(f2s_test::data_dir(), split, "london");
  const auto dir = f2s_test::temp_dir("rfb_manifest");
  write_file_atomically(dir + "/manifest.tsv", manifest_text(cases));
  const auto back = read_manifest(dir + "/manifest.tsv");
  ASSERT_EQ(back.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(back[i].gt, cases[i].gt);
    EXPECT_EQ(back[i].refs, cases[i].refs);
    EXPECT_EQ(back[i].wrong, cases[i].wrong);
    EXPECT_EQ(back[i].lq, "");
  }
  f2s_test::remove_tree(dir);
}

// The benchmark end to end on one held-out London face (severe ×8 only, of the 6 conditions, to stay
// under a minute on a loaded 2-core CPU), CPU.
TEST(BenchRefFr, OneFaceRun) {
#ifndef F2S_BENCH_REF_FR
  GTEST_SKIP() << "bench_ref_fr is not built (Google Benchmark missing)";
#else
  F2S_REQUIRE_DATA("faces/hq/london");
  F2S_REQUIRE_DATA("weights/lpips_v0.1");
  const std::string weights = std::string(F2S_SOURCE_DIR) + "/weights";
  if (!std::filesystem::exists(weights + "/ref_fr.safetensors") || !FaceDescriptor::available() ||
      !std::filesystem::exists(realesrgan_weights_path(RealEsrganModel::kX4Plus)))
    GTEST_SKIP() << "Ref-FR, face-descriptor or Real-ESRGAN x4plus weights missing";
  const auto dir = f2s_test::temp_dir("rfb_run");
  const std::string cmd = std::string(F2S_BENCH_REF_FR) + " --models " + weights + " --data " + f2s_test::data_dir() +
                          " --limit 1 --sets london --conditions severe8 --resamples 200 -o " + dir + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string log;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) log += buf;
  ASSERT_EQ(pclose(p), 0) << log;
  const auto rows = parse_csv(read_file(dir + "/ref_fr_bench.csv"), "csv");
  ASSERT_EQ(rows.size(), methods().size()) << log;
  for (const auto& r : rows) {
    EXPECT_EQ(r.set, "london");
    EXPECT_TRUE(std::isfinite(r.psnr) && r.psnr > 10 && r.psnr < 60) << r.method << " " << r.psnr;
    EXPECT_TRUE(r.ssim > 0 && r.ssim <= 1) << r.method;
    EXPECT_TRUE(r.lpips >= 0 && r.lpips < 1) << r.method;
    EXPECT_TRUE(r.id_gt >= 0 && r.id_gt < 2) << r.method;
    EXPECT_EQ(r.match, r.id_gt < 0.6 ? 1.0 : 0.0);
    EXPECT_TRUE(std::isfinite(r.psnr_ref));
    // London has one reference (the smiling photo): "≤3 refs" used 1; a method without references none.
    if (r.method == "ref3" || r.method == "wrong" || r.method == "ref1") EXPECT_EQ(r.refs, 1) << r.method;
    else EXPECT_EQ(r.refs, 0) << r.method;
  }
  // The networks ran: an untrained Ref-FR returns its input exactly (bicubic), the trained one is
  // far closer perceptually at severe ×8 (LPIPS 0.72 -> 0.09 on this face when written).
  std::map<std::string, double> lp;
  for (const auto& r : rows) lp[r.method] = r.lpips;
  EXPECT_LT(lp["ref3"], lp["bicubic"] - 0.1);
  EXPECT_LT(lp["blind"], lp["bicubic"] - 0.1);
  const auto md = read_file(dir + "/ref_fr_bench.md");
  EXPECT_NE(md.find("### london, severe ×8 (1 faces)"), std::string::npos);
  const Image grid = read_image(dir + "/ref_fr_grid.png");
  EXPECT_EQ(grid.width, 7 * 130 - 2);
  EXPECT_EQ(grid.height, 130 - 2);  // severe ×8 only: moderate ×4 was not run
  EXPECT_FALSE(std::filesystem::exists(dir + "/ref_fr_bench.partial.csv"));
  f2s_test::remove_tree(dir);
#endif
}
