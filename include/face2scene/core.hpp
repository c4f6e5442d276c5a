// face2scene core: errors, logging, progress, seeding. No LibTorch here, so that light code
// (CLI parsing, image I/O) does not pay for torch headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace face2scene {

// Every error the library throws derives from Error; its message names the file or key and the
// problem, so the CLI can print it as one line.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A file could not be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};
// A file was read but its content is not what it claims (corrupt image, bad safetensors header).
class FormatError : public Error {
 public:
  using Error::Error;
};
// A caller passed something out of range or unknown (preset name, parameter value).
class ArgumentError : public Error {
 public:
  using Error::Error;
};

// ---- logging -------------------------------------------------------------------------------
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kSilent = 4 };
using LogSink = std::function<void(LogLevel, const std::string&)>;

// The host (CLI, tests) decides where messages go; the default writes warnings and errors to
// stderr and info to stderr only when verbose.
void set_log_sink(LogSink sink);
void set_log_level(LogLevel level);
LogLevel log_level();
void log(LogLevel level, const std::string& message);
inline void log_info(const std::string& m) { log(LogLevel::kInfo, m); }
inline void log_warn(const std::string& m) { log(LogLevel::kWarn, m); }
inline void log_debug(const std::string& m) { log(LogLevel::kDebug, m); }

// ---- threads -------------------------------------------------------------------------------
// Lowers the calling thread's scheduling priority (Linux: nice +10; threads it starts inherit it;
// elsewhere nothing), so that background work such as encoding outputs yields the CPU to the
// thread that feeds the GPU. Returns false when the system refused.
bool lower_thread_priority();

// ---- progress ------------------------------------------------------------------------------
// Progress of long work. Library code calls advance(); the host chooses how it is shown through
// a ProgressSink (a bar on a terminal, plain lines in a log, nothing with --quiet).
struct ProgressEvent {
  std::string label;
  int64_t done = 0;
  int64_t total = 0;  // 0 when unknown
  double elapsed_s = 0.0;
  bool finished = false;
};
using ProgressSink = std::function<void(const ProgressEvent&)>;

enum class ProgressStyle { kAuto, kBar, kLines, kQuiet };
// A sink that draws to stderr: a redrawn bar when stderr is a terminal, else a line every few
// seconds; kQuiet draws nothing.
ProgressSink make_console_progress_sink(ProgressStyle style = ProgressStyle::kAuto);
void set_progress_sink(ProgressSink sink);
ProgressSink progress_sink();

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void advance(int64_t n = 1);
  void set_total(int64_t total);
  void finish();

 private:
  ProgressEvent event_;
  std::chrono::steady_clock::time_point start_;
  ProgressSink sink_;
};

// ---- files ---------------------------------------------------------------------------------
// Writes go to "<path>.tmp-<pid>-<n>" (n counts the calls of this process) and are renamed into place, so a failure never leaves a
// half-written output behind. `write` receives the temporary path.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);
void write_file_atomically(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
// Lower-case hex SHA-256 of a byte string (read_file() gives a file's bytes).
std::string sha256_hex(const std::string& data);

// ---- seeding -------------------------------------------------------------------------------
// One place seeds every RNG: torch's generators (via set_global_seed in torch_utils.hpp) and
// std engines derived from it here.
uint64_t mix_seed(uint64_t seed, uint64_t stream);
// 64-bit FNV-1a of bytes: the stream number of a name (`degrade` seeds each file by its name, the
// benchmarks each case by its key), so it must never change.
uint64_t fnv1a(const void* data, size_t size);
inline uint64_t fnv1a(const std::string& s) { return fnv1a(s.data(), s.size()); }

std::string version_string();
// The CPU as /proc/cpuinfo names it, with its family and model ("AMD EPYC (family 25, model 17)"):
// every timing in docs/RESULTS.md names the CPU it ran on. "unknown CPU" where there is no cpuinfo.
std::string cpu_model_text();

}  // namespace face2scene
