#include "train/train_util.hpp"

#include <cstdio>
#include <fstream>

#include "face2scene/core.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#include <ATen/autocast_mode.h>
#define F2S_HAS_DEVICE_AUTOCAST 1
#endif

namespace face2scene {

AutocastScope::AutocastScope(bool enabled, const torch::Device& device) : enabled_(enabled) {
  if (!enabled_) return;
  if (!device.is_cuda()) throw ArgumentError("--amp (bf16 autocast) needs a CUDA device");
#ifdef F2S_HAS_DEVICE_AUTOCAST
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::increment_nesting();
#else
  throw ArgumentError("--amp (bf16 autocast) needs LibTorch >= 2.4; this build has " + torch_version_string());
#endif
}

AutocastScope::~AutocastScope() {
#ifdef F2S_HAS_DEVICE_AUTOCAST
  if (!enabled_) return;
  // As torch.autocast's __exit__: the weight casts cached for this step are dropped.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCUDA, false);
#endif
}

namespace {
constexpr const char* kCheckpointArch = "face2scene-train-checkpoint";
}

void save_checkpoint(const std::string& path, const CheckpointGroups& groups, int64_t step) {
  TensorMap all;
  for (const auto& [name, tensors] : groups) {
    if (name.empty() || name.find('/') != std::string::npos) throw ArgumentError("checkpoint group '" + name + "': bad name");
    for (const auto& [k, v] : tensors) all[name + "/" + k] = v.detach().to(torch::kCPU).contiguous();
  }
  // save_safetensors writes a temporary and renames it into place.
  save_safetensors(path, all, {{"arch", kCheckpointArch}, {"version", "1"}, {"step", std::to_string(step)}});
}

Checkpoint load_checkpoint(const std::string& path) {
  const SafeTensors st = load_safetensors(path);
  check_arch(st, kCheckpointArch, path);
  Checkpoint c;
  c.path = path;
  c.step = metadata_int(st.metadata, "step", path);
  for (const auto& [k, v] : st.tensors) {
    const auto slash = k.find('/');
    if (slash == std::string::npos) throw FormatError(path + ": checkpoint key '" + k + "' has no group");
    c.groups[k.substr(0, slash)][k.substr(slash + 1)] = v;
  }
  return c;
}

const TensorMap& Checkpoint::group(const std::string& name) const {
  auto it = groups.find(name);
  if (it == groups.end()) throw FormatError(path + ": checkpoint has no '" + name + "' (another run's file?)");
  return it->second;
}

TensorMap fp32_copy(const TensorMap& tensors) {
  TensorMap out;
  for (const auto& [k, v] : tensors) {
    auto t = v.detach();
    out[k] = (t.is_floating_point() ? t.to(torch::kCPU, torch::kFloat32, false, true) : t.to(torch::kCPU, t.scalar_type(), false, true))
                 .contiguous();
  }
  return out;
}

torch::Dtype checkpoint_moments_dtype(const std::vector<const AdamW*>& optimisers, double max_mb) {
  int64_t n = 0;
  for (const auto* o : optimisers) n += o->numel();
  const double mb = 2.0 * 4.0 * double(n) / (1024.0 * 1024.0);  // two float32 moments per parameter
  if (mb <= max_mb) return torch::kFloat32;
  static bool said = false;
  if (!said) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "checkpoint: float32 moments would take %.0f MB (> %.0f): stored as bf16, resuming is then approximate", mb, max_mb);
    log_info(buf);
    said = true;
  }
  return torch::kBFloat16;
}

CheckpointClock::CheckpointClock(double minutes) : seconds_(60.0 * minutes), last_(std::chrono::steady_clock::now()) {}

bool CheckpointClock::due() {
  if (seconds_ <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_).count() < seconds_) return false;
  last_ = now;
  return true;
}

TrainLoop::TrainLoop(const TrainCommon& c, std::string name, std::vector<std::string> columns)
    : common_(c), name_(std::move(name)), columns_(std::move(columns)), sums_(columns_.size(), 0.0) {
  csv_ = c.out_dir + "/" + name_ + "_loss.csv";
  if (c.primary() && !file_exists(csv_)) {
    std::ofstream out(csv_);
    if (!out) throw IoError(csv_ + ": cannot write the loss log");
    out << "step,seconds,samples_per_s";
    for (const auto& col : columns_) out << "," << col;
    out << "\n";
  }
  start_ = window_start_ = std::chrono::steady_clock::now();
}

bool TrainLoop::keep_going(int64_t step) const {
  if (common_.max_steps > 0 && step >= common_.max_steps) return false;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // Keep 10 s (or 5% of a short budget) to write checkpoints before the budget ends.
  const double budget = common_.max_minutes * 60.0;
  const bool mine = s < budget - std::min(10.0, 0.05 * budget);
  // Each rank's clock is its own: all stop as soon as one would.
  return common_.dist ? dist::all_ranks(*common_.dist, mine) : mine;
}

void TrainLoop::record(int64_t step, int64_t samples, const std::vector<double>& in) {
  const std::vector<double> values = common_.dist ? dist::mean_over_ranks(*common_.dist, in) : in;
  if (first_step_ < 0) first_step_ = step - 1;
  for (size_t i = 0; i < values.size() && i < sums_.size(); ++i) sums_[i] += values[i];
  if (!values.empty()) last_loss_ = values[0];
  window_samples_ += samples;
  total_samples_ += samples;
  ++window_steps_;
  if (window_steps_ >= common_.log_every) flush(step);
}

void TrainLoop::flush(int64_t step) {
  if (window_steps_ == 0) return;
  const auto now = std::chrono::steady_clock::now();
  const double win = std::chrono::duration<double>(now - window_start_).count();
  const double total = std::chrono::duration<double>(now - start_).count();
  char buf[64];
  const double rate = window_samples_ / std::max(win, 1e-9);
  if (!common_.primary()) {  // the other ranks only keep their sums in step
    std::fill(sums_.begin(), sums_.end(), 0.0);
    window_steps_ = 0;
    window_samples_ = 0;
    window_start_ = now;
    return;
  }
  std::ofstream out(csv_, std::ios::app);
  std::snprintf(buf, sizeof buf, "%.1f,%.1f", total, rate);
  out << step << "," << buf;
  std::snprintf(buf, sizeof buf, " step %lld: %.0f s, %.1f samples/s:", static_cast<long long>(step), total, rate);
  std::string line = name_ + buf;
  for (size_t i = 0; i < sums_.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.5g", sums_[i] / double(window_steps_));
    out << "," << buf;
    line += " " + columns_[i] + "=" + buf;
    sums_[i] = 0;
  }
  out << "\n";
  log_info(line);
  window_steps_ = 0;
  window_samples_ = 0;
  window_start_ = now;
}

TrainReport TrainLoop::finish(int64_t step) {
  flush(step);
  TrainReport r;
  r.steps = step - std::max<int64_t>(first_step_, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  r.samples_per_s = total_samples_ / std::max(r.seconds, 1e-9);
  r.last_loss = last_loss_;
  r.world_size = common_.world_size();
  // The trainers write their last checkpoint before finish(): no rank leaves before rank 0 wrote it.
  if (common_.dist) common_.dist->barrier();
  return r;
}

}  // namespace face2scene
