#include "test_util.hpp"

#include <ftw.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace f2s_test {

std::string data_dir() {
  if (const char* env = std::getenv("F2S_DATA")) return env;
  return F2S_DATA_DIR;
}
std::string data_path(const std::string& rel) { return data_dir() + "/" + rel; }
bool have_data(const std::string& rel) { return fs::exists(data_path(rel)); }

void remove_tree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

std::string temp_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  fs::path p = fs::temp_directory_path() /
               ("f2s_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  remove_tree(p.string());
  fs::create_directories(p);
  return p.string();
}

RunResult run_cli(const std::string& args) {
  const std::string cmd = std::string(F2S_CLI) + " " + args + " 2>&1";
  RunResult r{-1, {}};
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace f2s_test
