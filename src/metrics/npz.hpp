// Private: a reader for NumPy .npz files (a zip of .npy arrays), enough for float64 parameter files.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace face2scene::metrics::detail {

struct NpyArray {
  std::vector<long> shape;
  std::vector<double> data;  // row-major (C order), whatever the file's order
};

// Reads every member "<name>.npy" of the archive. Supports stored (uncompressed) members of
// little-endian float64/float32 arrays; anything else is a FormatError naming the file and member.
std::map<std::string, NpyArray> load_npz(const std::string& path);
NpyArray parse_npy(const std::string& bytes, const std::string& name_for_errors);

}  // namespace face2scene::metrics::detail
