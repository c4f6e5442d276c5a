#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <mutex>

#include "face2scene/core.hpp"

namespace face2scene {
namespace {
std::mutex g_progress_mutex;
ProgressSink g_progress_sink;

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}
}  // namespace

ProgressSink make_console_progress_sink(ProgressStyle style) {
  if (style == ProgressStyle::kQuiet) return [](const ProgressEvent&) {};
  const bool tty = isatty(fileno(stderr));
  const bool bar = style == ProgressStyle::kBar || (style == ProgressStyle::kAuto && tty);
  if (bar) {
    return [](const ProgressEvent& e) {
      const int width = 30;
      const double frac = e.total > 0 ? std::min(1.0, double(e.done) / double(e.total)) : 0.0;
      const int filled = static_cast<int>(std::round(frac * width));
      std::string b(filled, '#');
      b += std::string(width - filled, '.');
      std::string eta;
      if (e.total > 0 && e.done > 0 && !e.finished) {
        eta = " eta " + format_duration(e.elapsed_s * (e.total - e.done) / e.done);
      }
      std::fprintf(stderr, "\r%s [%s] %lld/%lld %s%s\033[K", e.label.c_str(), b.c_str(),
                   static_cast<long long>(e.done), static_cast<long long>(e.total),
                   format_duration(e.elapsed_s).c_str(), eta.c_str());
      if (e.finished) std::fputc('\n', stderr);
      std::fflush(stderr);
    };
  }
  // Plain lines for logs: at most one every 5 s, plus the final one.
  auto last = std::make_shared<double>(-1e9);
  return [last](const ProgressEvent& e) {
    if (!e.finished && e.elapsed_s - *last < 5.0) return;
    *last = e.elapsed_s;
    std::fprintf(stderr, "%s: %lld/%lld (%s)%s\n", e.label.c_str(), static_cast<long long>(e.done),
                 static_cast<long long>(e.total), format_duration(e.elapsed_s).c_str(),
                 e.finished ? " done" : "");
  };
}

void set_progress_sink(ProgressSink sink) {
  std::lock_guard<std::mutex> lock(g_progress_mutex);
  g_progress_sink = std::move(sink);
}
ProgressSink progress_sink() {
  std::lock_guard<std::mutex> lock(g_progress_mutex);
  return g_progress_sink;
}

Progress::Progress(std::string label, int64_t total)
    : start_(std::chrono::steady_clock::now()), sink_(progress_sink()) {
  event_.label = std::move(label);
  event_.total = total;
}
Progress::~Progress() {
  if (!event_.finished) finish();
}
void Progress::set_total(int64_t total) { event_.total = total; }
void Progress::advance(int64_t n) {
  event_.done += n;
  event_.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (sink_) sink_(event_);
}
void Progress::finish() {
  if (event_.finished) return;
  event_.finished = true;
  event_.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (sink_) sink_(event_);
}

}  // namespace face2scene
