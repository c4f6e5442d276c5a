// face2scene: restore photos of people, using the face as an oracle for the degradation.
// The library never sees argv: this file parses, sets the globals, runs one subcommand, and turns
// any exception into one line on stderr with a non-zero exit.
#include <algorithm>
#include <cstdio>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;

int main(int argc, char** argv) {
  CLI::App app{
      "face2scene " + version_string() +
      ": restore whole photos of people, reading the degradation from the face.\n"
      "Run 'face2scene <command> --help' for each command's options."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "face2scene " + version_string() + " (LibTorch " + torch_version_string() + ")");
  cli::GlobalOptions globals;
  app.add_flag("-q,--quiet", globals.quiet, "No progress and no info messages");
  app.add_flag("-v,--verbose", globals.verbose, "Info and debug messages on stderr");
  app.add_option("--threads", globals.threads, "CPU threads for torch (0 = all cores)")->check(CLI::NonNegativeNumber);
  std::vector<cli::Command> commands;
  auto& reg = cli::registry();
  std::sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& cmd : reg) commands.push_back(cmd.setup(app, globals));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    set_log_level(globals.quiet ? LogLevel::kError : globals.verbose ? LogLevel::kDebug : LogLevel::kInfo);
    set_progress_sink(make_console_progress_sink(globals.quiet ? ProgressStyle::kQuiet : ProgressStyle::kAuto));
    set_num_threads(globals.threads);
    for (auto& cmd : commands) {
      if (cmd.app->parsed()) cmd.run();
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "face2scene: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "face2scene: error (torch): %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "face2scene: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
