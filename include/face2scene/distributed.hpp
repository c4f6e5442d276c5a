// Data-parallel training over LibTorch's c10d: one process per GPU (NCCL) or per CPU worker (Gloo),
// configured by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
// so torchrun, Slurm's srun or a Kubernetes Indexed Job start it unchanged. Gradients are averaged
// in buckets whose all-reduce is launched from gradient hooks while backward is still running.
// No c10d header here: the library's users (trainers, CLI) do not pay for them; the backends live
// in src/train/dist_c10d.cpp, compiled with Gloo and/or NCCL when their headers are found.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace face2scene::dist {

// Who this process is. from_env() reads torchrun's variables; without WORLD_SIZE it is the single
// process (rank 0 of 1).
struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // torchrun >= 2.x runs the rendezvous store in its agent (TORCHELASTIC_USE_AGENT_STORE=True):
  // rank 0 then connects as a client instead of serving.
  bool agent_store = false;
  static DistEnv from_env();
};

struct DistOptions {
  DistEnv env;
  // "gloo" (CPU tensors), "nccl" (CUDA tensors), or "auto": nccl for a CUDA device, else gloo.
  std::string backend = "auto";
  torch::Device device = torch::kCPU;  // where this rank's collectives' tensors live
  // Rendezvous: a FileStore at this path (shared filesystem, tests) when set, else a TCPStore at
  // env.master_addr:env.master_port.
  std::string file_store;
  double timeout_s = 600;
};

// Whether this build links the backend (Gloo: Debian's libtorch with libgloo-dev headers, or a
// LibTorch that ships gloo/; NCCL: a CUDA LibTorch with nccl.h found at configure time).
bool backend_available(const std::string& backend);
std::string available_backends();  // e.g. "gloo,nccl" or "none"

// A waitable collective in flight.
using Pending = std::function<void()>;

// One process group: collectives are matched across ranks by the order in which they are issued,
// so every rank must issue the same collectives in the same order.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;
  // Where tensors given to collectives must live (cuda:LOCAL_RANK for NCCL).
  virtual torch::Device device() const = 0;
  // In-place sum over ranks of a dense contiguous tensor; returns at once, wait with the Pending.
  virtual Pending allreduce_sum_async(torch::Tensor t) = 0;
  virtual void broadcast(torch::Tensor t, int root) = 0;  // in place, dense contiguous
  virtual void barrier() = 0;
  void allreduce_sum(torch::Tensor t) { allreduce_sum_async(std::move(t))(); }
};

// The process group of this process (ArgumentError naming the backend when this build lacks it;
// Error when the rendezvous fails within the timeout).
std::shared_ptr<ProcessGroup> init_process_group(const DistOptions& options);

// ---- helpers the trainers use ------------------------------------------------------------------
// Rank `root`'s values of `tensors` (parameters and buffers) copied into every rank's, in one
// collective: replicas start identical whatever each rank loaded or initialised.
void broadcast_tensors(ProcessGroup& pg, const std::vector<torch::Tensor>& tensors, int root = 0);
// True on every rank iff `flag` is true on every rank (e.g. "keep training": ranks with their own
// wall clocks stop at the same step).
bool all_ranks(ProcessGroup& pg, bool flag);
// The mean over ranks of each value (loss logging).
std::vector<double> mean_over_ranks(ProcessGroup& pg, const std::vector<double>& values);
// A per-rank seed: rank 0 keeps `seed` (a world of one trains as before), others get their own
// stream, so ranks draw different samples.
uint64_t rank_seed(uint64_t seed, int rank);
// The items of a rank's data shard: indices i with i % world == rank (all of them while there are
// fewer items than ranks, so no rank is left without data).
std::vector<size_t> shard_indices(size_t n, int rank, int world);

// ---- gradient averaging ------------------------------------------------------------------------
// Averages the gradients of `params` over the ranks after each backward pass, as PyTorch's DDP
// does: parameters are grouped into buckets of about `bucket_mb` in reverse order (roughly the
// order in which backward produces their gradients); a hook on each parameter copies its gradient
// into the bucket, and the bucket's all-reduce is launched as soon as all of its gradients are in
// (buckets launched strictly in index order, so every rank issues the same sequence) while backward
// goes on computing the rest. finish() launches what is left, waits, and writes the averages into
// .grad. A parameter that got no gradient on any rank keeps the .grad zero_grad() left (as in one process);
// one that got a gradient on some ranks only is averaged with zeros from the others.
// Use: loss.backward(); sync.finish(); opt.step().
class GradSync {
 public:
  GradSync(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, double bucket_mb = 25);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;
  void finish();
  size_t buckets() const { return buckets_.size(); }
  // Test hook: a bucket whose all-reduce is skipped (-1 = none), to show the tests catch it.
  void set_fault_skip_bucket(int b) { fault_skip_ = b; }

 private:
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<torch::Tensor> grads;
    size_t ready = 0;
    torch::Tensor flat;  // gradients, then one "got a gradient" count per member
    Pending pending;
    bool launched = false;
  };
  void on_grad(size_t param, const torch::Tensor& grad);
  void launch_ready_locked();
  void launch_locked(Bucket& b);

  std::shared_ptr<ProcessGroup> pg_;
  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, unsigned>> hooks_;  // (parameter, hook id)
  std::mutex mu_;
  size_t next_ = 0;
  int fault_skip_ = -1;
  std::string error_;
};

}  // namespace face2scene::dist
