// Splitting a photo collection over independent jobs (Slurm array tasks, Kubernetes Indexed Job
// pods) and making reruns idempotent. No LibTorch here.
//
// Shard of a file: the first 8 bytes of SHA-256 of its path relative to the input root (UTF-8,
// '/' separators), read big-endian, modulo N. It depends on that path alone, so N jobs with
// --shard 0/N … N-1/N cover the collection exactly once, and adding or removing files never moves
// another file to a different shard. A shell can check it:
//   printf %s "album/x.jpg" | sha256sum   → first 16 hex digits, as an integer, mod N.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>

namespace face2scene {

struct ShardSpec {
  int index = 0, count = 1;  // this job's shard and the number of shards
  // "I/N" with 0 <= I < N (ArgumentError naming the text otherwise).
  static ShardSpec parse(const std::string& text);
  bool whole() const { return count == 1; }
  std::string str() const { return std::to_string(index) + "/" + std::to_string(count); }
};

uint64_t shard_key(const std::string& relative_path);
// The shard (0 … count-1) that owns `relative_path`.
int shard_of(const std::string& relative_path, int count);
inline bool in_shard(const std::string& relative_path, const ShardSpec& s) {
  return s.whole() || shard_of(relative_path, s.count) == s.index;
}
// `file`'s path relative to `root` with '/' separators ("" root: the file name alone).
std::string relative_to_root(const std::string& file, const std::string& root);

// A manifest of finished inputs: one relative path per line, each line appended with one write()
// to a file opened O_APPEND and flushed before the next, after the input's outputs were renamed
// into place. A crash loses at most the entry of an input whose outputs exist (redone on the next
// run, harmlessly); shards may share one manifest on a local filesystem (appends of a line are
// atomic there; on NFS give each shard its own). Reading tolerates a torn last line.
class Manifest {
 public:
  // Reads `path` if it exists (IoError if it cannot be opened for appending); an empty path gives
  // a disabled manifest (done() false, add() does nothing).
  explicit Manifest(const std::string& path = "");
  bool enabled() const { return !path_.empty(); }
  bool done(const std::string& key) const;
  void add(const std::string& key);  // thread-safe
  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::set<std::string> done_;
  mutable std::mutex mu_;
};

}  // namespace face2scene
