// libFuzzer target: the safetensors reader (header JSON, dtypes, shapes, offsets).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "face2scene/core.hpp"
#include "face2scene/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto st = face2scene::parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& [k, t] : st.tensors) {
      // Every tensor's bytes lie inside the input.
      if (static_cast<size_t>(t.numel()) * t.element_size() > size) std::abort();
    }
  } catch (const face2scene::Error&) {
  }
  return 0;
}
