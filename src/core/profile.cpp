// TraceProfile: Kineto through LibTorch's C++ profiler API (the same on 1.13 and 2.x).
#include "face2scene/profile.hpp"

#include <cstdio>
#include <set>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "face2scene/core.hpp"

namespace face2scene {
namespace {
namespace tap = torch::autograd::profiler;
namespace tpi = torch::profiler::impl;
}  // namespace

TraceProfile::TraceProfile(std::string path, bool cuda) : path_(std::move(path)) {
  const tpi::ProfilerConfig config(tpi::ProfilerState::KINETO);
  std::set<tpi::ActivityType> activities{tpi::ActivityType::CPU};
  if (cuda) activities.insert(tpi::ActivityType::CUDA);
  const std::string tmp = path_ + ".part";
  try {
    // A LibTorch built without Kineto (Debian's 1.13) records but refuses to save: find out now,
    // with an empty trace, rather than after the run.
    tap::prepareProfiler(config, activities);
    tap::enableProfiler(config, activities);
    tap::disableProfiler()->save(tmp);
    tap::prepareProfiler(config, activities);
    tap::enableProfiler(config, activities);
  } catch (const std::exception&) {
    std::remove(tmp.c_str());
    throw Error(path_ + ": this LibTorch cannot write a profile trace (built without Kineto)");
  }
  running_ = true;
}

void TraceProfile::finish() {
  if (!running_) return;
  running_ = false;
  auto result = tap::disableProfiler();
  if (!result) throw Error(path_ + ": the profiler returned no result");
  const std::string tmp = path_ + ".part";
  try {
    result->save(tmp);
  } catch (const std::exception&) {
    throw IoError(path_ + ": cannot save the profile trace");
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) throw IoError(path_ + ": cannot write the profile trace");
  log_info("wrote the profile trace " + path_);
}

TraceProfile::~TraceProfile() {
  try {
    finish();
  } catch (const std::exception& e) {
    log_warn(e.what());
  }
}

}  // namespace face2scene
