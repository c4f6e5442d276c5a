// The c10d backends of face2scene::dist::ProcessGroup, isolated in one file: it alone includes
// c10d's backend headers, which need gloo's headers (F2S_HAVE_GLOO) or nccl.h (F2S_HAVE_NCCL);
// CMake defines USE_C10D_GLOO / USE_C10D_NCCL for this file only when they are found.
//
// LibTorch 1.13 vs 2.x: in 1.13 ProcessGroupGloo/NCCL derive from c10d::ProcessGroup; from 2.0 on
// they are c10d::Backend objects (ProcessGroup became a dispatcher front over backends). Both
// bases declare the same allreduce/broadcast/barrier(std::vector<at::Tensor>&, Options) returning
// c10::intrusive_ptr<c10d::Work>, so one alias covers the difference.
#include <cstdlib>

#include <torch/version.h>  // TORCH_VERSION_MAJOR, before the alias below
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#ifdef F2S_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef F2S_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "face2scene/core.hpp"
#include "face2scene/distributed.hpp"

#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
using C10dBase = c10d::Backend;
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
using C10dBase = c10d::ProcessGroup;
#endif

namespace face2scene::dist {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    throw ArgumentError(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  }
}

class C10dGroup final : public ProcessGroup {
 public:
  C10dGroup(c10::intrusive_ptr<C10dBase> pg, c10::intrusive_ptr<c10d::Store> store, std::string backend,
            torch::Device device, int rank, int size)
      : pg_(std::move(pg)), store_(std::move(store)), backend_(std::move(backend)), device_(device), rank_(rank),
        size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return backend_; }
  torch::Device device() const override { return device_; }

  Pending allreduce_sum_async(torch::Tensor t) override {
    std::vector<at::Tensor> v{std::move(t)};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    auto work = pg_->allreduce(v, o);
    // The tensor list is kept alive with the work until it is waited on.
    return [work, v]() mutable { work->wait(); };
  }
  void broadcast(torch::Tensor t, int root) override {
    std::vector<at::Tensor> v{std::move(t)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    pg_->broadcast(v, o)->wait();
  }
  void barrier() override { pg_->barrier()->wait(); }

 private:
  c10::intrusive_ptr<C10dBase> pg_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::string backend_;
  torch::Device device_;
  int rank_, size_;
};

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1);
  e.rank = env_int("RANK", 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500);
  if (const char* s = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(s) == "True";
  if (e.world_size < 1 || e.rank < 0 || e.rank >= e.world_size)
    throw ArgumentError("RANK=" + std::to_string(e.rank) + " WORLD_SIZE=" + std::to_string(e.world_size) +
                        ": need 0 <= RANK < WORLD_SIZE");
  if (e.master_port <= 0 || e.master_port > 65535) throw ArgumentError("MASTER_PORT=" + std::to_string(e.master_port));
  return e;
}

bool backend_available(const std::string& backend) {
#ifdef F2S_HAVE_GLOO
  if (backend == "gloo") return true;
#endif
#ifdef F2S_HAVE_NCCL
  if (backend == "nccl") return true;
#endif
  return false;
}

std::string available_backends() {
  std::string s;
  for (const char* b : {"gloo", "nccl"})
    if (backend_available(b)) s += (s.empty() ? "" : ",") + std::string(b);
  return s.empty() ? "none" : s;
}

std::shared_ptr<ProcessGroup> init_process_group(const DistOptions& o) {
  const auto& e = o.env;
  std::string backend = o.backend;
  if (backend == "auto") backend = o.device.is_cuda() ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl") throw ArgumentError("distributed backend '" + backend + "': gloo or nccl");
  if (!backend_available(backend))
    throw ArgumentError("distributed backend '" + backend + "' is not in this build (available: " + available_backends() +
                        "; Gloo needs libgloo-dev's headers at configure time, NCCL a CUDA LibTorch and nccl.h)");
  if (backend == "nccl" && !o.device.is_cuda()) throw ArgumentError("the nccl backend needs a CUDA device");
  if (backend == "gloo" && !o.device.is_cpu()) throw ArgumentError("the gloo backend here reduces CPU tensors; use nccl on CUDA");
  const auto timeout = std::chrono::milliseconds(int64_t(o.timeout_s * 1000));
  c10::intrusive_ptr<c10d::Store> store;
  try {
    if (!o.file_store.empty()) {
      store = c10::make_intrusive<c10d::FileStore>(o.file_store, e.world_size);
    } else {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(e.master_port);
      so.isServer = e.rank == 0 && !e.agent_store;
      so.numWorkers = e.world_size;
      so.waitWorkers = false;
      so.timeout = timeout;
      store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
    }
    store->setTimeout(timeout);
  } catch (const std::exception& ex) {
    throw Error("distributed rendezvous (" +
                (o.file_store.empty() ? e.master_addr + ":" + std::to_string(e.master_port) : o.file_store) +
                ") failed: " + ex.what());
  }
  c10::intrusive_ptr<C10dBase> pg;
#ifdef F2S_HAVE_GLOO
  if (backend == "gloo") {
    auto go = c10d::ProcessGroupGloo::Options::create(timeout);
    // GLOO_SOCKET_IFNAME as in PyTorch; else loopback for a single host (tests, one-machine runs:
    // no hostname to resolve), else Gloo's default device (the interface of this host's name).
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool local = e.master_addr == "127.0.0.1" || e.master_addr == "localhost";
    go->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                          : local           ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                            : c10d::ProcessGroupGloo::createDefaultDevice());
    pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, e.rank, e.world_size, go);
  }
#endif
#ifdef F2S_HAVE_NCCL
  if (backend == "nccl") {
    // The rank's GPU becomes the current device: tensors made with a bare "cuda" land there, and
    // NCCL's communicator binds to it.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(o.device.has_index() ? o.device.index() : e.local_rank));
    auto no = c10d::ProcessGroupNCCL::Options::create();
    pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, e.rank, e.world_size, no);
  }
#endif
  if (!pg) throw ArgumentError("distributed backend '" + backend + "' is not in this build");
  log_info("distributed: rank " + std::to_string(e.rank) + " of " + std::to_string(e.world_size) + " (" + backend +
           ", " + o.device.str() + ")");
  return std::make_shared<C10dGroup>(pg, store, backend, o.device, e.rank, e.world_size);
}

}  // namespace face2scene::dist
