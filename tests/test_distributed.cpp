// Data-parallel training over c10d's Gloo backend, two real processes: the test re-executes its
// own binary twice (RANK=0/1, WORLD_SIZE=2, a FileStore in a scratch folder) to run the DistChild
// tests, which write what they computed; the parent compares with one process on the
// concatenated batch.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "face2scene/core.hpp"
#include "face2scene/distributed.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "test_util.hpp"
#include "train/train_util.hpp"

extern char** environ;

using namespace face2scene;

namespace {

// Re-runs this binary once per rank with `filter`; returns the exit codes (-1: killed on timeout).
std::vector<int> run_ranks(int world, const std::string& filter, const std::string& dir,
                           const std::vector<std::string>& extra_env = {}, int timeout_s = 60) {
  std::vector<pid_t> pids;
  const std::string self = "/proc/self/exe";
  char exe[4096];
  const ssize_t n = readlink(self.c_str(), exe, sizeof exe - 1);
  if (n <= 0) return std::vector<int>(size_t(world), -2);
  exe[n] = 0;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      if (kv.rfind("RANK=", 0) == 0 || kv.rfind("WORLD_SIZE=", 0) == 0 || kv.rfind("LOCAL_RANK=", 0) == 0 ||
          kv.rfind("GTEST_", 0) == 0)
        continue;
      env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(world));
    env.push_back("F2S_DIST_DIR=" + dir);
    env.push_back("OMP_NUM_THREADS=1");
    for (const auto& e : extra_env) env.push_back(e);
    std::vector<std::string> args{exe, "--gtest_filter=" + filter};
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, exe, nullptr, nullptr, argv.data(), envp.data()) != 0) pid = -1;
    pids.push_back(pid);
  }
  std::vector<int> codes(size_t(world), -1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  size_t done = 0;
  std::vector<bool> finished(size_t(world), false);
  while (done < pids.size()) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (finished[i]) continue;
      if (pids[i] <= 0) {
        finished[i] = true;
        ++done;
        continue;
      }
      int status = 0;
      if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        finished[i] = true;
        ++done;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (!finished[i] && pids[i] > 0) {
          kill(pids[i], SIGKILL);
          waitpid(pids[i], nullptr, 0);
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return codes;
}

bool is_child() { return std::getenv("F2S_DIST_DIR") != nullptr && std::getenv("RANK") != nullptr; }
std::string child_dir() { return std::getenv("F2S_DIST_DIR"); }

// A small network with several parameter tensors (several buckets at a tiny bucket size), one
// parameter no rank uses and one that only the rows from `extra_from` on use (rank 1's half).
struct ToyImpl : torch::nn::Module {
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
  torch::nn::Linear fc{nullptr}, extra{nullptr}, unused{nullptr};
  ToyImpl() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 6, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 8, 3).padding(1)));
    fc = register_module("fc", torch::nn::Linear(8, 4));
    extra = register_module("extra", torch::nn::Linear(8, 4));
    unused = register_module("unused", torch::nn::Linear(4, 4));
  }
  // Rows with global index >= extra_from also get extra(features); `first_row` is the global index
  // of x's first row.
  torch::Tensor forward(const torch::Tensor& x, int64_t first_row, int64_t extra_from) {
    auto f = torch::relu(c2(torch::relu(c1(x)))).mean({2, 3});
    auto y = fc(f);
    const int64_t n = x.size(0), k = std::max<int64_t>(0, std::min(n, extra_from - first_row));
    if (k == n) return y;
    auto tail = y.narrow(0, k, n - k) + extra(f.narrow(0, k, n - k));
    return k == 0 ? tail : torch::cat({y.narrow(0, 0, k), tail});
  }
};
TORCH_MODULE(Toy);

constexpr int64_t kBatch = 8, kExtraFrom = 4, kSteps = 2;

std::pair<torch::Tensor, torch::Tensor> toy_batch() {
  auto gen = make_generator(123, torch::kCPU);
  return {torch::rand({kBatch, 3, 10, 10}, gen), torch::rand({kBatch, 4}, gen)};
}

// kSteps AdamW steps of `net` on rows [first, first + n) of the batch; the mean loss of those rows.
// With `sync`, gradients are averaged over ranks between backward and step. Returns the last
// step's gradients; writes a checkpoint as the trainers do when `ckpt` is set.
TensorMap train_toy(Toy& net, int64_t first, int64_t n, dist::GradSync* sync, const std::string& ckpt = "") {
  auto [x, y] = toy_batch();
  AdamW opt(net->parameters(), 1e-2, 0.9, 0.99, 0.0);
  TensorMap grads;
  for (int64_t s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    auto out = net->forward(x.narrow(0, first, n), first, kExtraFrom);
    auto loss = (out - y.narrow(0, first, n)).pow(2).mean();
    loss.backward();
    if (sync) sync->finish();
    grads.clear();
    for (const auto& p : net->named_parameters())
      if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
    opt.step();
  }
  if (!ckpt.empty())
    save_checkpoint(ckpt, {{"toy.net", fp32_copy(state_dict(*net))}, {"toy.opt", opt.state(torch::kFloat32)}}, kSteps);
  return grads;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

struct TwoRankRun {
  std::vector<int> codes;
  TensorMap rank[2];
  Checkpoint ckpt;
};

TwoRankRun run_two_rank_step(const std::vector<std::string>& extra_env) {
  TwoRankRun r;
  const std::string dir = f2s_test::temp_dir("dist_step");
  r.codes = run_ranks(2, "DistChild.GradStep", dir, extra_env);
  for (int k = 0; k < 2; ++k) {
    const std::string f = dir + "/rank" + std::to_string(k) + ".safetensors";
    if (file_exists(f)) r.rank[k] = load_safetensors(f).tensors;
  }
  if (file_exists(dir + "/ckpt.safetensors")) r.ckpt = load_checkpoint(dir + "/ckpt.safetensors");
  f2s_test::remove_tree(dir);
  return r;
}

// The largest difference between the two ranks' results and one process on the whole batch:
// weights, last gradients, and rank 0's checkpoint (weights and moments).
double worst_vs_reference(const TwoRankRun& run, bool* replicas_identical) {
  torch::manual_seed(1);
  Toy ref;
  const TensorMap g = train_toy(ref, 0, kBatch, nullptr);
  const TensorMap w = state_dict(*ref);
  double worst = 0;
  for (int k = 0; k < 2; ++k) {
    for (const auto& [name, t] : w) {
      auto it = run.rank[k].find("w." + name);
      if (it == run.rank[k].end()) return INFINITY;
      worst = std::max(worst, max_diff(it->second, t));
    }
    for (const auto& [name, t] : g) {
      auto it = run.rank[k].find("g." + name);
      if (it == run.rank[k].end()) return INFINITY;
      worst = std::max(worst, max_diff(it->second, t));
    }
    // No rank has a gradient for a parameter that one process leaves without one.
    for (const auto& [name, t] : run.rank[k])
      if (name.rfind("g.", 0) == 0 && !g.count(name.substr(2))) return INFINITY;
  }
  *replicas_identical = true;
  for (const auto& [name, t] : w) *replicas_identical &= run.rank[0].at("w." + name).equal(run.rank[1].at("w." + name));
  if (!run.ckpt.has("toy.net")) return INFINITY;
  for (const auto& [name, t] : w) {
    worst = std::max(worst, max_diff(run.ckpt.group("toy.net").at(name), t));
    *replicas_identical &= run.ckpt.group("toy.net").at(name).equal(run.rank[1].at("w." + name));
  }
  return worst;
}

}  // namespace

// ---- children (run only when re-executed by the tests below) -------------------------------------
TEST(DistChild, GradStep) {
  if (!is_child()) GTEST_SKIP() << "started by Distributed.* with RANK/WORLD_SIZE";
  dist::DistOptions o;
  o.env = dist::DistEnv::from_env();
  o.backend = "gloo";
  o.file_store = child_dir() + "/store";
  o.timeout_s = 30;
  auto pg = dist::init_process_group(o);
  ASSERT_EQ(pg->size(), 2);
  // Different initial weights per rank: broadcast must make rank 0's the start.
  torch::manual_seed(pg->rank() == 0 ? 1 : 77);
  Toy net;
  std::vector<torch::Tensor> all = net->parameters();
  dist::broadcast_tensors(*pg, all);
  // ~300 bytes per bucket: one or two tensors each, so several all-reduces overlap backward.
  dist::GradSync sync(pg, net->parameters(), 300.0 / (1024 * 1024));
  ASSERT_GE(sync.buckets(), 4u);
  if (const char* f = std::getenv("F2S_DIST_FAULT_SKIP_BUCKET")) sync.set_fault_skip_bucket(std::atoi(f));
  const int64_t half = kBatch / 2;
  // Rank 0 writes the checkpoint, as the trainers do.
  const TensorMap grads =
      train_toy(net, pg->rank() * half, half, &sync, pg->rank() == 0 ? child_dir() + "/ckpt.safetensors" : "");
  TensorMap dump;
  for (const auto& [k, v] : state_dict(*net)) dump["w." + k] = v.detach().clone();
  for (const auto& [k, v] : grads) dump["g." + k] = v;
  save_safetensors(child_dir() + "/rank" + std::to_string(pg->rank()) + ".safetensors", dump, {});
  pg->barrier();
}

// Two ranks of the real FaDeX trainer on toy data (2 steps), through the same TrainCommon::dist
// the CLI's --distributed sets.
TEST(DistChild, FaDeXTrain) {
  if (!is_child()) GTEST_SKIP() << "started by Distributed.* with RANK/WORLD_SIZE";
  dist::DistOptions d;
  d.env = dist::DistEnv::from_env();
  d.backend = "gloo";
  d.file_store = child_dir() + "/store";
  d.timeout_s = 60;
  FaDeXTrainOptions o;
  o.common.dist = dist::init_process_group(d);
  o.common.data.faces_dir = child_dir() + "/faces";
  o.common.data.scenes_dir = child_dir() + "/scenes";
  o.common.data.face_size = 32;
  o.common.data.face_crop = 32;
  o.common.out_dir = child_dir() + "/out";
  o.common.max_steps = 2;
  o.common.log_every = 1;
  o.common.presets = {"mild", "severe"};
  o.net.in_size = 32;
  o.net.width = 8;
  o.net.max_width = 16;
  o.net.code_dim = 16;
  o.degradations = 4;
  const auto r = train_fadex(o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_TRUE(std::isfinite(r.last_loss));
}

// ---- the tests -----------------------------------------------------------------------------------
TEST(Distributed, EnvironmentAndShards) {
  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "2", 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("MASTER_PORT", "1234", 1);
  auto e = dist::DistEnv::from_env();
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.master_port, 1234);
  setenv("RANK", "4", 1);
  EXPECT_THROW(dist::DistEnv::from_env(), ArgumentError);
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT"}) unsetenv(v);
  EXPECT_EQ(dist::DistEnv::from_env().world_size, 1);
  // Shards cover every item exactly once; a list shorter than the world goes whole to every rank.
  std::vector<int> seen(10, 0);
  for (int r = 0; r < 3; ++r)
    for (size_t i : dist::shard_indices(10, r, 3)) ++seen[i];
  for (int s : seen) EXPECT_EQ(s, 1);
  EXPECT_EQ(dist::shard_indices(2, 1, 4).size(), 2u);
  EXPECT_EQ(dist::rank_seed(5, 0), 5u);
  EXPECT_NE(dist::rank_seed(5, 1), dist::rank_seed(5, 2));
}

TEST(Distributed, TwoProcessStepMatchesOneProcessOnTheConcatenatedBatch) {
  if (is_child()) GTEST_SKIP();
  if (!dist::backend_available("gloo")) GTEST_SKIP() << "this build has no Gloo backend (libgloo-dev headers)";
  const auto run = run_two_rank_step({});
  ASSERT_EQ(run.codes, (std::vector<int>{0, 0}));
  bool identical = false;
  const double worst = worst_vs_reference(run, &identical);
  EXPECT_LE(worst, 1e-6) << "two ranks differ from one process on the concatenated batch";
  EXPECT_TRUE(identical) << "the replicas' weights (and rank 0's checkpoint) are not bit-identical";
  // The moments in the checkpoint are those of one process too (they see the averaged gradients).
  torch::manual_seed(1);
  Toy ref;
  auto [x, y] = toy_batch();
  AdamW opt(ref->parameters(), 1e-2, 0.9, 0.99, 0.0);
  for (int64_t s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    (ref->forward(x, 0, kExtraFrom) - y).pow(2).mean().backward();
    opt.step();
  }
  const auto ref_state = opt.state(torch::kFloat32);
  ASSERT_EQ(run.ckpt.step, kSteps);
  for (const auto& [k, v] : ref_state) EXPECT_LE(max_diff(run.ckpt.group("toy.opt").at(k), v), 1e-6) << k;
}

// The comparison above can fail: with one bucket's all-reduce skipped (a planted bug), the ranks'
// gradients are their own, not the average, and the test's check catches it.
TEST(Distributed, ASkippedBucketIsCaught) {
  if (is_child()) GTEST_SKIP();
  if (!dist::backend_available("gloo")) GTEST_SKIP() << "this build has no Gloo backend (libgloo-dev headers)";
  const auto run = run_two_rank_step({"F2S_DIST_FAULT_SKIP_BUCKET=1"});
  ASSERT_EQ(run.codes, (std::vector<int>{0, 0}));
  bool identical = true;
  EXPECT_GT(worst_vs_reference(run, &identical), 1e-4);
  EXPECT_FALSE(identical);
}

// The FaDeX trainer on two ranks: rank 0 alone writes the checkpoint and one CSV row per step; the
// run then resumes in one process (another world size) from that checkpoint.
TEST(Distributed, TrainerRunsOnTwoRanksAndResumesOnOne) {
  if (is_child()) GTEST_SKIP();
  if (!dist::backend_available("gloo")) GTEST_SKIP() << "this build has no Gloo backend (libgloo-dev headers)";
  const std::string dir = f2s_test::temp_dir("dist_fadex");
  std::filesystem::create_directories(dir + "/faces");
  std::filesystem::create_directories(dir + "/scenes");
  torch::manual_seed(11);
  namespace F = torch::nn::functional;
  for (int i = 0; i < 6; ++i) {
    auto face = F::interpolate(torch::rand({1, 3, 4, 4}),
                               F::InterpolateFuncOptions().size(std::vector<int64_t>{40, 40}).mode(torch::kBilinear).align_corners(false));
    write_image(dir + "/faces/f" + std::to_string(i) + ".png", tensor_to_image(face.squeeze(0)));
    write_image(dir + "/scenes/s" + std::to_string(i) + ".png", tensor_to_image(face.squeeze(0)));
  }
  const auto codes = run_ranks(2, "DistChild.FaDeXTrain", dir, {}, 120);
  ASSERT_EQ(codes, (std::vector<int>{0, 0}));
  const auto ck = load_checkpoint(dir + "/out/fadex_state.safetensors");
  EXPECT_EQ(ck.step, 2);
  const std::string csv = read_file(dir + "/out/fadex_loss.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);  // header + 2 rows, from rank 0 alone
  FaDeXTrainOptions o;
  o.common.data.faces_dir = dir + "/faces";
  o.common.data.scenes_dir = dir + "/scenes";
  o.common.data.face_size = 32;
  o.common.data.face_crop = 32;
  o.common.out_dir = dir + "/out";
  o.common.max_steps = 3;
  o.common.log_every = 1;
  o.common.presets = {"mild", "severe"};
  o.net.in_size = 32;
  o.net.width = 8;
  o.net.max_width = 16;
  o.net.code_dim = 16;
  o.degradations = 4;
  const auto r = train_fadex(o);
  EXPECT_EQ(r.steps, 1);  // resumed at step 2
  EXPECT_EQ(load_checkpoint(dir + "/out/fadex_state.safetensors").step, 3);
  f2s_test::remove_tree(dir);
}
