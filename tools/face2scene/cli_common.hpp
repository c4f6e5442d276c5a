// Shared pieces of the face2scene CLI: self-registering subcommands and global options.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace face2scene::cli {

struct GlobalOptions {
  bool quiet = false;
  bool verbose = false;
  int threads = 0;  // 0 = all cores
  std::string device = "auto";
};

// A subcommand adds itself to the app (app.add_subcommand) and returns that subcommand with the
// action to run once parsing succeeded.
struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};
using Setup = std::function<Command(CLI::App& app, GlobalOptions& globals)>;

struct Registrar {
  Registrar(const char* name, Setup setup);
};
struct RegisteredCommand {
  std::string name;
  Setup setup;
};
std::vector<RegisteredCommand>& registry();

// Expands the positional inputs: files are kept, folders contribute their images (sorted).
std::vector<std::string> collect_images(const std::vector<std::string>& inputs);
// For folder mode: OUT is a directory when several inputs (or a folder) were given.
std::string output_path_for(const std::string& input, const std::string& out, bool out_is_dir,
                            const std::string& new_ext = "");
// output_path_for of every input, refusing any two inputs that would write the same file (a/x.png
// and b/x.png into one folder; with new_ext, also x.jpg and x.png) with an ArgumentError naming
// both, and any output that is one of the inputs. Call it before any work starts.
std::vector<std::string> output_paths_for(const std::vector<std::string>& inputs, const std::string& out,
                                          bool out_is_dir, const std::string& new_ext = "");
// What --help says about output names (the footer of every command that uses output_paths_for).
extern const char* const kOutputNamesHelp;
void ensure_directory(const std::string& path);

}  // namespace face2scene::cli

#define F2S_REGISTER_COMMAND(name, fn) \
  static ::face2scene::cli::Registrar f2s_registrar_##name(#name, fn)
