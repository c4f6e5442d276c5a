#include <fstream>
#include <cstdio>
#include <mutex>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "face2scene/core.hpp"

namespace face2scene {
namespace {
std::mutex g_log_mutex;
LogLevel g_level = LogLevel::kWarn;
LogSink g_sink;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
    default: return "";
  }
}
}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_sink = std::move(sink);
}
void set_log_level(LogLevel level) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_level = level;
}
LogLevel log_level() { return g_level; }

void log(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (level < g_level || level == LogLevel::kSilent) return;
  if (g_sink) {
    g_sink(level, message);
  } else {
    std::fprintf(stderr, "face2scene: %s: %s\n", level_name(level), message.c_str());
  }
}

uint64_t fnv1a(const void* data, size_t size) {
  uint64_t h = 1469598103934665603ULL;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  // splitmix64 of (seed, stream): independent, reproducible streams from one user seed.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::string version_string() {
#ifdef F2S_VERSION
  return F2S_VERSION;
#else
  return "unknown";
#endif
}

bool lower_thread_priority() {
#ifdef __linux__
  // On Linux the nice value belongs to the thread (the tid), not to the whole process.
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  return setpriority(PRIO_PROCESS, tid, 10) == 0;
#else
  return false;
#endif
}

}  // namespace face2scene

namespace face2scene {
std::string cpu_model_text() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name, family, model;
  auto value = [](const std::string& l) { return l.substr(l.find(':') + 2); };
  while (std::getline(in, line) && (name.empty() || family.empty() || model.empty())) {
    if (line.rfind("model name", 0) == 0 && name.empty()) name = value(line);
    else if (line.rfind("cpu family", 0) == 0 && family.empty()) family = value(line);
    else if (line.rfind("model\t", 0) == 0 && model.empty()) model = value(line);
  }
  if (name.empty()) return "unknown CPU";
  return family.empty() ? name : name + " (family " + family + ", model " + model + ")";
}
}  // namespace face2scene
