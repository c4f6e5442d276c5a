#include "face2scene/shard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "face2scene/core.hpp"

namespace face2scene {
namespace fs = std::filesystem;

ShardSpec ShardSpec::parse(const std::string& text) {
  const auto slash = text.find('/');
  ShardSpec s;
  bool ok = slash != std::string::npos && slash > 0 && slash + 1 < text.size();
  if (ok) {
    for (size_t i = 0; i < text.size(); ++i) ok = ok && (i == slash || (text[i] >= '0' && text[i] <= '9'));
  }
  if (ok) {
    try {
      s.index = std::stoi(text.substr(0, slash));
      s.count = std::stoi(text.substr(slash + 1));
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || s.count < 1 || s.index < 0 || s.index >= s.count)
    throw ArgumentError("--shard '" + text + "': expected I/N with 0 <= I < N (e.g. 0/4 … 3/4)");
  return s;
}

uint64_t shard_key(const std::string& relative_path) {
  // sha256_hex is lower-case hex: its first 16 digits are the first 8 bytes, big-endian.
  return std::stoull(sha256_hex(relative_path).substr(0, 16), nullptr, 16);
}

int shard_of(const std::string& relative_path, int count) {
  if (count < 1) throw ArgumentError("shard count " + std::to_string(count) + " < 1");
  return int(shard_key(relative_path) % uint64_t(count));
}

std::string relative_to_root(const std::string& file, const std::string& root) {
  if (root.empty()) return fs::path(file).filename().generic_string();
  const auto rel = fs::path(file).lexically_normal().lexically_relative(fs::path(root).lexically_normal());
  if (rel.empty() || *rel.begin() == "..") return fs::path(file).filename().generic_string();
  return rel.generic_string();
}

Manifest::Manifest(const std::string& path) : path_(path) {
  if (path.empty()) return;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    // Only complete lines: a line without its '\n' (a crash mid-append) is not trusted.
    if (in.eof()) break;
    if (!line.empty()) done_.insert(line);
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw IoError(path + ": cannot open the manifest for appending: " + std::strerror(errno));
  ::close(fd);
}

bool Manifest::done(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_.count(key) != 0;
}

size_t Manifest::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_.size();
}

void Manifest::add(const std::string& key) {
  if (path_.empty()) return;
  if (key.find('\n') != std::string::npos) throw ArgumentError("manifest entry with a newline: " + key);
  std::lock_guard<std::mutex> lock(mu_);
  if (!done_.insert(key).second) return;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw IoError(path_ + ": cannot append to the manifest: " + std::strerror(errno));
  const std::string line = key + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != ssize_t(line.size()) || !synced) throw IoError(path_ + ": manifest append failed");
}

}  // namespace face2scene
