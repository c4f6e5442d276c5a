// Output naming of the CLI: two inputs never write the same output file (an error naming both,
// before any work), an output never replaces its input, and concurrent atomic writes never share
// a temporary file.
#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "face2scene/core.hpp"
#include "face2scene/tensor.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
void write_small_image(const std::string& path, int seed) {
  torch::manual_seed(seed);
  write_image(path, tensor_to_image(torch::rand({3, 8, 12})));
}

// The dir with a/x.png and b/x.png (different pixels, same name) and c/x.jpg.
std::string same_names(const std::string& tag) {
  const std::string dir = f2s_test::temp_dir(tag);
  for (const char* sub : {"a", "b", "c"}) fs::create_directories(dir + "/" + sub);
  write_small_image(dir + "/a/x.png", 1);
  write_small_image(dir + "/b/x.png", 2);
  write_small_image(dir + "/c/x.jpg", 3);
  return dir;
}

void expect_clash_named(const f2s_test::RunResult& r, const std::string& first, const std::string& second) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(first), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(second), std::string::npos) << r.output;
}
}  // namespace

TEST(CliOutputs, UpscaleRefusesTwoInputsWithOneOutputName) {
  const std::string d = same_names("clash_upscale");
  auto r = f2s_test::run_cli("upscale " + d + "/a/x.png " + d + "/b/x.png -o " + d + "/out/");
  expect_clash_named(r, d + "/a/x.png", d + "/b/x.png");
  EXPECT_FALSE(file_exists(d + "/out/x.png"));
  // Folders as inputs clash the same way.
  r = f2s_test::run_cli("upscale " + d + "/a " + d + "/b -o " + d + "/out");
  expect_clash_named(r, d + "/a/x.png", d + "/b/x.png");
  EXPECT_FALSE(file_exists(d + "/out/x.png"));
  // An output that would replace its input.
  r = f2s_test::run_cli("upscale " + d + "/a/x.png -o " + d + "/a/x.png --overwrite");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("overwrite an input"), std::string::npos) << r.output;
  // --help says what happens.
  r = f2s_test::run_cli("upscale --help");
  EXPECT_NE(r.output.find("same name"), std::string::npos) << r.output;
  f2s_test::remove_tree(d);
}

TEST(CliOutputs, RestoreSceneRefusesTwoInputsWithOneOutputName) {
  // Checked before the models load, so this needs no weights.
  const std::string d = same_names("clash_restore");
  auto r = f2s_test::run_cli("restore-scene " + d + "/a/x.png " + d + "/b/x.png -o " + d + "/out --blind");
  expect_clash_named(r, d + "/a/x.png", d + "/b/x.png");
  EXPECT_FALSE(file_exists(d + "/out/x.png"));
  r = f2s_test::run_cli("restore-scene --help");
  EXPECT_NE(r.output.find("same name"), std::string::npos) << r.output;
  f2s_test::remove_tree(d);
}

TEST(CliOutputs, DegradeRefusesNamesThatMeetAfterTheExtensionChange) {
  // degrade writes PNGs: b/x.png and c/x.jpg both become out/x.png.
  const std::string d = same_names("clash_degrade");
  auto r = f2s_test::run_cli("degrade " + d + "/b/x.png " + d + "/c/x.jpg -o " + d + "/out --seed 1");
  expect_clash_named(r, d + "/b/x.png", d + "/c/x.jpg");
  EXPECT_FALSE(file_exists(d + "/out/x.png"));
  // Distinct names are fine, and each output is its own input's degradation.
  fs::copy_file(d + "/b/x.png", d + "/a/y.png");
  r = f2s_test::run_cli("-q degrade " + d + "/a -o " + d + "/out2 --seed 1 --preset mild");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(file_exists(d + "/out2/x.png"));
  EXPECT_TRUE(file_exists(d + "/out2/y.png"));
  f2s_test::remove_tree(d);
}

TEST(AtomicWrites, ConcurrentWritersNeverShareATemporary) {
  // Two threads write the same target 200 times each: every call gets its own temporary, and the
  // file in place is always one writer's complete content.
  const std::string dir = f2s_test::temp_dir("atomic_writes");
  const std::string target = dir + "/out.bin";
  std::mutex mu;
  std::set<std::string> temps;
  int calls = 0;
  std::vector<std::string> errors;
  auto writer = [&](char fill) {
    for (int i = 0; i < 200; ++i) {
      try {
      write_atomically(target, [&](const std::string& tmp) {
        {
          std::lock_guard<std::mutex> lock(mu);
          temps.insert(tmp);
          ++calls;
        }
        EXPECT_NE(tmp, target);
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        ASSERT_NE(f, nullptr) << tmp;
        const std::string bytes(4096, fill);
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
      });
      } catch (const std::exception& e) {  // a shared temporary: the other writer renamed it away
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back(e.what());
      }
    }
  };
  std::thread t1(writer, 'a'), t2(writer, 'b');
  t1.join();
  t2.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " writes failed, e.g. " << errors.front();
  EXPECT_EQ(calls, 400);
  EXPECT_EQ(temps.size(), 400u);  // no temporary name used twice
  const std::string got = read_file(target);
  EXPECT_TRUE(got == std::string(4096, 'a') || got == std::string(4096, 'b'));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string(), "out.bin");
  f2s_test::remove_tree(dir);
}
