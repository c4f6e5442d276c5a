// Kernel-level profiling of a stretch of work (developers' tool): LibTorch's Kineto profiler records
// CPU operators and, through CUPTI, every CUDA kernel and copy, and the result is saved as a Chrome
// trace (chrome://tracing or ui.perfetto.dev). scripts/gpu/pipeline_speed.sh sums the kernels' time
// from it to compare with the wall time per photo (issue #19).
#pragma once

#include <memory>
#include <string>

namespace face2scene {

class TraceProfile {
 public:
  // Starts recording CPU operators, plus CUDA kernels when `cuda`. Throws Error when this LibTorch
  // has no Kineto (the message says so).
  TraceProfile(std::string path, bool cuda);
  // Stops and writes the trace to `path` (through a temporary name). Called by the destructor if
  // not before; later calls do nothing.
  void finish();
  ~TraceProfile();
  TraceProfile(const TraceProfile&) = delete;
  TraceProfile& operator=(const TraceProfile&) = delete;

 private:
  std::string path_;
  bool running_ = false;
};

}  // namespace face2scene
