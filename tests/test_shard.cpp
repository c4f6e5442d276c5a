// Sharded restoration of large collections: the --shard partition, the manifest of finished
// inputs, and `restore --shard/--manifest/--devices` end to end on a small folder.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "face2scene/core.hpp"
#include "face2scene/image.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/shard.hpp"
#include "face2scene/tensor.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

TEST(Shard, SpecParsesIOfNAndRefusesTheRest) {
  const auto s = ShardSpec::parse("3/16");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 16);
  EXPECT_TRUE(ShardSpec::parse("0/1").whole());
  for (const char* bad : {"16/16", "-1/4", "1/0", "a/b", "3", "/4", "3/", "1/2/3", ""})
    EXPECT_THROW(ShardSpec::parse(bad), ArgumentError) << bad;
}

TEST(Shard, KeyIsTheDocumentedSha256Prefix) {
  // printf %s album/x.jpg | sha256sum  →  19b1b16f03e2bfce…  (docs/scale-out.md's shell recipe)
  EXPECT_EQ(shard_key("album/x.jpg"), 0x19b1b16f03e2bfceULL);
  EXPECT_EQ(shard_of("album/x.jpg", 7), int(0x19b1b16f03e2bfceULL % 7));
  EXPECT_EQ(relative_to_root("/data/scans/album/x.jpg", "/data/scans"), "album/x.jpg");
  EXPECT_EQ(relative_to_root("/data/scans/./album/x.jpg", "/data/scans/"), "album/x.jpg");
  EXPECT_EQ(relative_to_root("/data/scans/x.jpg", ""), "x.jpg");
}

TEST(Shard, PartitionCoversEveryInputOnceAndIsStableWhenFilesAreAdded) {
  std::vector<std::string> files;
  for (int i = 0; i < 3000; ++i) files.push_back("box" + std::to_string(i % 17) + "/scan_" + std::to_string(i) + ".jpg");
  for (int n : {1, 2, 7, 64}) {
    std::vector<int> owners(files.size(), 0), per_shard(size_t(n), 0);
    std::vector<int> before(files.size());
    for (size_t f = 0; f < files.size(); ++f) {
      for (int i = 0; i < n; ++i) {
        if (in_shard(files[f], ShardSpec{i, n})) {
          ++owners[f];
          ++per_shard[size_t(i)];
          before[f] = i;
        }
      }
    }
    for (size_t f = 0; f < files.size(); ++f) ASSERT_EQ(owners[f], 1) << files[f] << " in " << owners[f] << " of " << n;
    // Balanced as a random assignment would be: every shard within 4 binomial standard deviations.
    const double mean = double(files.size()) / n;
    for (int c : per_shard) EXPECT_NEAR(c, mean, 4 * std::sqrt(mean * (1 - 1.0 / n)) + 1) << "n=" << n;
    // Adding files (and listing them first) moves none of the others.
    std::vector<std::string> more;
    for (int i = 0; i < 500; ++i) more.push_back("new/" + std::to_string(i) + ".png");
    more.insert(more.end(), files.begin(), files.end());
    for (size_t f = 0; f < files.size(); ++f) {
      int owner = -1;
      for (int i = 0; i < n; ++i)
        if (in_shard(more[500 + f], ShardSpec{i, n})) owner = i;
      ASSERT_EQ(owner, before[f]) << files[f];
    }
  }
}

TEST(Shard, ManifestRecordsFinishedInputsAndIgnoresATornLine) {
  const std::string dir = f2s_test::temp_dir("manifest");
  const std::string path = dir + "/done.txt";
  {
    Manifest m(path);
    EXPECT_EQ(m.size(), 0u);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&m, t]() {
        for (int i = 0; i < 25; ++i) m.add("t" + std::to_string(t) + "/" + std::to_string(i) + ".jpg");
      });
    for (auto& th : threads) th.join();
    m.add("t0/0.jpg");  // once only
  }
  {
    std::ofstream(path, std::ios::app) << "torn/partial.jp";  // a crash mid-append
  }
  Manifest again(path);
  EXPECT_EQ(again.size(), 100u);
  EXPECT_TRUE(again.done("t3/24.jpg"));
  EXPECT_FALSE(again.done("torn/partial.jp"));
  const std::string text = read_file(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 100);
  f2s_test::remove_tree(dir);
}

namespace {
bool have_models() {
  const std::string w = std::string(F2S_SOURCE_DIR) + "/weights";
  return file_exists(w + "/ref_fr.safetensors") && file_exists(w + "/fadex.safetensors") &&
         file_exists(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3));
}
std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (is_image_path(e.path().string())) out.insert(e.path().filename().string());
  return out;
}
}  // namespace

// Two shard jobs cover a folder exactly once; a rerun with the manifest redoes nothing; two CPU
// workers (--devices cpu,cpu) give the same files as one. restore-face (Ref-FR alone) keeps it
// quick; `restore` shares the same loop (run_batch).
TEST(ShardCli, ShardsCoverTheFolderOnceManifestRerunsAndTwoWorkersAgree) {
  if (!have_models()) GTEST_SKIP() << "weights/ or the Real-ESRGAN base (scripts/install_models.sh) missing";
  const std::string dir = f2s_test::temp_dir("shard_cli");
  const std::string in = dir + "/in", models = std::string(F2S_SOURCE_DIR) + "/weights";
  fs::create_directories(in);
  torch::manual_seed(3);
  std::set<std::string> all;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "p" + std::to_string(i) + ".png";
    write_image(in + "/" + name, tensor_to_image(torch::rand({3, 20, 24}) * 0.4 + 0.3, 8));
    all.insert(name);
  }
  const std::string common = " --blind --models " + models;
  std::set<std::string> covered;
  for (int s = 0; s < 2; ++s) {
    const std::string out = dir + "/out" + std::to_string(s);
    const auto r = f2s_test::run_cli("-q restore-face " + in + " -o " + out + " --shard " + std::to_string(s) +
                                     "/2 --manifest " + dir + "/done.txt" + common);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto& n : names_in(out)) {
      EXPECT_EQ(shard_of(n, 2), s) << n;
      EXPECT_TRUE(covered.insert(n).second) << n << " restored by two shards";
    }
  }
  EXPECT_EQ(covered, all);
  EXPECT_EQ(Manifest(dir + "/done.txt").size(), all.size());
  // Rerun: every input is in the manifest, nothing is restored (the outputs are gone to prove it).
  f2s_test::remove_tree(dir + "/out0");
  const auto rerun = f2s_test::run_cli("-v restore-face " + in + " -o " + dir + "/out0 --shard 0/2 --manifest " + dir +
                                       "/done.txt" + common);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_NE(rerun.output.find("already finished"), std::string::npos) << rerun.output;
  EXPECT_TRUE(names_in(dir + "/out0").empty());
  // Two CPU workers in one process: every input once, the same pixels as one worker.
  const auto two = f2s_test::run_cli("-q restore-face " + in + " -o " + dir + "/two --devices cpu,cpu" + common);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_EQ(names_in(dir + "/two"), all);
  // --workers 2: the same two workers on one device, named once.
  const auto w2 = f2s_test::run_cli("-v restore-face " + in + " -o " + dir + "/w2 --workers 2" + common);
  ASSERT_EQ(w2.exit_code, 0) << w2.output;
  EXPECT_NE(w2.output.find("2 workers on cpu"), std::string::npos) << w2.output;
  EXPECT_EQ(names_in(dir + "/w2"), all);
  for (const auto& n : names_in(dir + "/out1")) {  // shard 1's outputs (shard 0's were removed above)
    const Image a = read_image(dir + "/two/" + n), b = read_image(dir + "/out1/" + n);
    EXPECT_EQ(a.data, b.data) << n;
    EXPECT_EQ(read_image(dir + "/w2/" + n).data, b.data) << n;
  }
  f2s_test::remove_tree(dir);
}
