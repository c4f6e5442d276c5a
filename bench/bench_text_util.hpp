// Text helpers shared by the benchmarks' TSV/CSV readers (bench/ref_fr_bench_util.hpp,
// bench/inscene_bench_util.hpp), header-only like them.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace f2s_bench_text {
// Fields of `s` split at `sep`; a trailing separator gives a trailing empty field, so a line's
// field count is the number of separators + 1.
inline std::vector<std::string> split_str(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}
}  // namespace f2s_bench_text
