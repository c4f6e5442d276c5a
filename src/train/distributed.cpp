// Helpers over face2scene::dist::ProcessGroup and the bucketed gradient averaging (GradSync).
//
// Why hooks and not c10d's Reducer: the Reducer is PyTorch DDP's engine, but its C++ constructor
// (bucket indices, per-bucket size limits, a logger, and in 2.x a comm hook and a bucket-view
// layout) changes between LibTorch 1.13 and 2.x and is documented only through the Python
// wrapper. The part we need — launch each bucket's all-reduce as soon as backward has produced
// its gradients, in the same order on every rank — is ~150 lines on public API (Tensor::
// register_hook + ProcessGroup::allreduce), identical on both versions.
#include "face2scene/distributed.hpp"

#include "face2scene/core.hpp"

namespace face2scene::dist {

void broadcast_tensors(ProcessGroup& pg, const std::vector<torch::Tensor>& tensors, int root) {
  if (pg.size() == 1 || tensors.empty()) return;
  torch::NoGradGuard ng;
  // One flat float64 buffer holds every value exactly (float32/bf16 weights, int64 step counters
  // up to 2^53), so one collective covers parameters and buffers of any dtype.
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(pg.device(), torch::kFloat64));
  auto buf = torch::cat(flat).contiguous();
  pg.broadcast(buf, root);
  int64_t off = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.detach().copy_(buf.narrow(0, off, n).view(t.sizes()).to(t.device(), t.scalar_type()));
    off += n;
  }
}

bool all_ranks(ProcessGroup& pg, bool flag) {
  if (pg.size() == 1) return flag;
  auto t = torch::full({1}, flag ? 1.0f : 0.0f, torch::TensorOptions().device(pg.device()));
  pg.allreduce_sum(t);
  return t.item<float>() >= float(pg.size()) - 0.5f;
}

std::vector<double> mean_over_ranks(ProcessGroup& pg, const std::vector<double>& values) {
  if (pg.size() == 1 || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64).to(pg.device());
  pg.allreduce_sum(t);
  t = t.cpu() / double(pg.size());
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

uint64_t rank_seed(uint64_t seed, int rank) { return rank == 0 ? seed : mix_seed(seed, 0x7261'6e6bULL + uint64_t(rank)); }

std::vector<size_t> shard_indices(size_t n, int rank, int world) {
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i)
    if (n < size_t(world) || int(i % size_t(world)) == rank) out.push_back(i);
  return out;
}

// ---- GradSync ------------------------------------------------------------------------------------
GradSync::GradSync(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, double bucket_mb)
    : pg_(std::move(pg)), params_(std::move(params)) {
  const int64_t limit = std::max<int64_t>(1, int64_t(bucket_mb * 1024 * 1024));
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  // Reverse order: the last layers' gradients come first in backward.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    if (!p.requires_grad()) continue;
    const int64_t pb = p.numel() * int64_t(p.element_size());
    if (buckets_.empty() || (bytes > 0 && bytes + pb > limit)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = buckets_.back().members.size();
    buckets_.back().members.push_back(k);
    bytes += pb;
  }
  for (auto& b : buckets_) b.grads.resize(b.members.size());
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!params_[k].requires_grad()) continue;
    hooks_.emplace_back(k, params_[k].register_hook([this, k](torch::Tensor g) { on_grad(k, g); }));
  }
}

GradSync::~GradSync() {
  for (const auto& [k, id] : hooks_) params_[k].remove_hook(id);
}

void GradSync::on_grad(size_t k, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& b = buckets_[bucket_of_[k]];
  auto& slot = b.grads[slot_of_[k]];
  if (slot.defined() || b.launched) {
    // A second gradient for the same step (two backward passes before finish()) would be reduced
    // out of step with the other ranks.
    error_ = "a parameter received two gradients before GradSync::finish()";
    return;
  }
  // A copy: the engine may accumulate into `grad` or hand it to .grad, which we overwrite later.
  slot = grad.detach().clone();
  if (++b.ready == b.members.size()) launch_ready_locked();
}

void GradSync::launch_ready_locked() {
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].members.size()) {
    launch_locked(buckets_[next_]);
    ++next_;
  }
}

void GradSync::launch_locked(Bucket& b) {
  std::vector<torch::Tensor> parts;
  torch::Tensor like;
  for (const auto& g : b.grads)
    if (g.defined()) like = g;
  auto opts = torch::TensorOptions().device(pg_->device()).dtype(like.defined() ? like.scalar_type() : torch::kFloat32);
  auto used = torch::zeros({int64_t(b.members.size())}, opts.dtype(torch::kFloat32));
  for (size_t i = 0; i < b.members.size(); ++i) {
    const auto& p = params_[b.members[i]];
    if (b.grads[i].defined()) {
      parts.push_back(b.grads[i].reshape({-1}).to(opts.dtype()));
      used[int64_t(i)] = 1.0f;
    } else {
      parts.push_back(torch::zeros({p.numel()}, opts));
    }
  }
  // The "got a gradient" counts travel in the same collective (one extra float per parameter).
  parts.push_back(used.to(opts.dtype()));
  b.flat = torch::cat(parts);
  b.launched = true;
  const int index = int(&b - buckets_.data());
  if (index == fault_skip_) {
    b.pending = []() {};
    return;
  }
  b.pending = pg_->allreduce_sum_async(b.flat);
}

void GradSync::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!error_.empty()) {
    const std::string e = error_;
    error_.clear();
    throw Error("GradSync: " + e);
  }
  // Buckets with parameters that got no gradient here (unused in this rank's forward) go now, in
  // index order, zero-filled: every rank still issues the same sequence of collectives.
  for (auto& b : buckets_) b.ready = b.members.size();
  launch_ready_locked();
  lock.unlock();
  torch::NoGradGuard ng;
  const double world = double(pg_->size());
  for (auto& b : buckets_) {
    b.pending();
    int64_t off = 0;
    const int64_t n_members = int64_t(b.members.size());
    const int64_t total = b.flat.numel() - n_members;
    const auto counts = b.flat.narrow(0, total, n_members).to(torch::kCPU, torch::kFloat32).contiguous();
    const float* got = counts.data_ptr<float>();
    for (size_t i = 0; i < b.members.size(); ++i) {
      auto& p = params_[b.members[i]];
      const int64_t n = p.numel();
      // No rank produced a gradient: .grad stays as zero_grad() left it, the same on every rank and
      // as in one process.
      if (got[i] > 0.5f) {
        auto avg = b.flat.narrow(0, off, n).view(p.sizes()).div(world).to(p.scalar_type());
        if (p.grad().defined()) {
          p.mutable_grad().copy_(avg);
        } else {
          p.mutable_grad() = avg.clone();
        }
      }
      off += n;
    }
    b.grads.assign(b.members.size(), torch::Tensor());
    b.ready = 0;
    b.launched = false;
    b.flat = torch::Tensor();
    b.pending = nullptr;
  }
  next_ = 0;
}

}  // namespace face2scene::dist
