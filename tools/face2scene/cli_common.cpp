#include "cli_common.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "face2scene/core.hpp"
#include "face2scene/image.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {

std::vector<RegisteredCommand>& registry() {
  static std::vector<RegisteredCommand> r;
  return r;
}

Registrar::Registrar(const char* name, Setup setup) { registry().push_back({name, std::move(setup)}); }

std::vector<std::string> collect_images(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(in)) {
        if (e.is_regular_file() && is_image_path(e.path().string())) files.push_back(e.path().string());
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) throw IoError(in + ": folder holds no .png/.jpg images");
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::exists(in, ec)) {
      out.push_back(in);
    } else {
      throw IoError(in + ": no such file or folder");
    }
  }
  return out;
}

std::string output_path_for(const std::string& input, const std::string& out, bool out_is_dir,
                            const std::string& new_ext) {
  if (!out_is_dir) return out;
  fs::path p = fs::path(out) / fs::path(input).filename();
  if (!new_ext.empty()) p.replace_extension(new_ext);
  return p.string();
}

namespace {
// One spelling per file: absolute and without "." / ".." / doubled separators (symbolic links
// are not followed: the outputs do not exist yet).
std::string normal_path(const std::string& p) { return fs::absolute(fs::path(p)).lexically_normal().string(); }
}  // namespace

const char* const kOutputNamesHelp =
    "Into a folder, each output keeps its input's file name. Two inputs with the same name (a/x.png and\n"
    "b/x.png) would write the same output: that is an error naming both, before any work starts; rename\n"
    "one or give separate runs separate output folders.";

std::vector<std::string> output_paths_for(const std::vector<std::string>& inputs, const std::string& out,
                                          bool out_is_dir, const std::string& new_ext) {
  std::vector<std::string> outs;
  std::map<std::string, size_t> seen;  // normalised output -> index of the input that writes it
  std::set<std::string> ins;
  for (const auto& in : inputs) ins.insert(normal_path(in));
  for (size_t i = 0; i < inputs.size(); ++i) {
    outs.push_back(output_path_for(inputs[i], out, out_is_dir, new_ext));
    const std::string key = normal_path(outs.back());
    if (ins.count(key)) throw ArgumentError(outs.back() + ": the output would overwrite an input");
    auto [it, fresh] = seen.emplace(key, i);
    if (!fresh) {
      throw ArgumentError(inputs[it->second] + " and " + inputs[i] + " would both be written to " + outs.back() +
                          " (same file name): rename one or run them into separate output folders");
    }
  }
  return outs;
}

void ensure_directory(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path)) throw IoError(path + ": cannot create output folder: " + ec.message());
}

}  // namespace face2scene::cli
