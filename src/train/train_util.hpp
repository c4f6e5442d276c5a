// Shared loop bookkeeping of the trainers: wall-clock budget, loss CSV (appended across resumed
// runs), a log line every few steps, throughput, and atomic resume checkpoints.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "face2scene/image.hpp"
#include "face2scene/train.hpp"

namespace face2scene {

// Every PNG/JPEG under `dir` (recursive), sorted; IoError when the folder is missing or has none.
std::vector<std::string> list_images(const std::string& dir);
// uint8 [3,H,W] from an image (grey replicated, 16-bit rounded to 8).
torch::Tensor to_u8_chw(const Image& im);
// Decodes files on `threads` threads (0 = hardware); refuses any file whose sha256 is in `heldout`;
// `post` turns each uint8 [3,H,W] into what is kept. The first error is thrown after all ran.
std::vector<torch::Tensor> decode_all(const std::vector<std::string>& files, const std::set<std::string>& heldout,
                                      int threads, const std::function<torch::Tensor(torch::Tensor)>& post);

// bf16 autocast on CUDA while in scope (what torch.autocast("cuda", torch.bfloat16) does):
// convolutions and matmuls run in bf16, reductions and norms stay fp32, parameters stay fp32.
// `enabled` false: does nothing. Needs LibTorch >= 2.4 (its device-type autocast API); elsewhere,
// or on a non-CUDA device, it throws ArgumentError instead of silently training in fp32.
class AutocastScope {
 public:
  AutocastScope(bool enabled, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_ = false;
};

// ---- checkpoints ---------------------------------------------------------------------------------
// A resume point is ONE safetensors file written atomically (temporary + rename): named groups of
// tensors stored as "<group>/<key>" (e.g. group "fadex.net": every weight and buffer at full precision,
// "fadex.opt": its AdamW state) and the step. A crash at any moment leaves the previous
// checkpoint or the new one, never weights of one step with moments of another. Any trainer can
// use these (train_fadex, train_restorer; train_ref_fr can switch to them).
using CheckpointGroups = std::map<std::string, TensorMap>;
void save_checkpoint(const std::string& path, const CheckpointGroups& groups, int64_t step);
struct Checkpoint {
  CheckpointGroups groups;
  int64_t step = 0;
  // The group's tensors (prefix stripped); FormatError naming the file when it is absent.
  const TensorMap& group(const std::string& name) const;
  bool has(const std::string& name) const { return groups.count(name) != 0; }
  std::string path;
};
Checkpoint load_checkpoint(const std::string& path);
// float32 copies on the CPU (what a checkpoint keeps of weights: resuming is exact).
TensorMap fp32_copy(const TensorMap& tensors);
// The moments' dtype for a checkpoint: float32 while every optimiser's moments together fit
// `max_mb` (resuming is then exact), else bf16, said once in the log.
torch::Dtype checkpoint_moments_dtype(const std::vector<const AdamW*>& optimisers, double max_mb);
// Due once every `minutes` of wall time since construction or the last due() that returned true;
// minutes <= 0: never (only the final checkpoint is written).
class CheckpointClock {
 public:
  explicit CheckpointClock(double minutes);
  bool due();

 private:
  double seconds_;
  std::chrono::steady_clock::time_point last_;
};

// Distributed runs: every rank runs the loop (keep_going and record are collectives, so ranks stop
// at the same step and log losses averaged over ranks); rank 0 alone writes the CSV and log lines.
class TrainLoop {
 public:
  TrainLoop(const TrainCommon& common, std::string name, std::vector<std::string> columns);
  // False once the step limit is reached or the budget (less a margin for saving) is spent (on
  // any rank, when distributed).
  bool keep_going(int64_t step) const;
  // One optimisation step done: `samples` images seen, loss values in column order.
  void record(int64_t step, int64_t samples, const std::vector<double>& values);
  TrainReport finish(int64_t step);

 private:
  void flush(int64_t step);
  TrainCommon common_;
  std::string name_, csv_;
  std::vector<std::string> columns_;
  std::chrono::steady_clock::time_point start_, window_start_;
  int64_t first_step_ = -1, window_samples_ = 0, total_samples_ = 0, window_steps_ = 0;
  std::vector<double> sums_;
  double last_loss_ = 0;
};

}  // namespace face2scene
