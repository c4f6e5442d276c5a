// Helpers shared by the tests: where the shared data lives, scratch folders, running the CLI.
#pragma once

#include <string>

namespace f2s_test {
// ../shared/data (F2S_DATA env var overrides). Tests that need it GTEST_SKIP when absent.
std::string data_dir();
std::string data_path(const std::string& rel);
bool have_data(const std::string& rel);
// A fresh, empty folder under the system temp dir, unique per call.
std::string temp_dir(const std::string& tag);
// Deletes a folder and everything in it. Not std::filesystem::remove_all: PyTorch's bundled
// libtorch.so exports its own copy of that symbol, and the copy crashed on the GPU machine.
void remove_tree(const std::string& path);
struct RunResult {
  int exit_code;
  std::string output;  // stdout+stderr
};
// Runs the built face2scene CLI with `args` (shell-quoted by the caller).
RunResult run_cli(const std::string& args);
}  // namespace f2s_test

#define F2S_REQUIRE_DATA(rel)                                                     \
  do {                                                                            \
    if (!f2s_test::have_data(rel)) GTEST_SKIP() << "shared data missing: " << rel; \
  } while (0)
