#include "cli_common.hpp"

#include <algorithm>
#include <filesystem>

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

void ensure_directory(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path)) throw IoError(path + ": cannot create output folder: " + ec.message());
}

}  // namespace face2scene::cli
