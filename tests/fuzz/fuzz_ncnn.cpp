// libFuzzer target: the ncnn .param parser and .bin weight reader. The input is
// [2-byte little-endian length L][L bytes of .param text][.bin bytes].
#include <cstddef>
#include <cstdint>
#include <string>

#include "face2scene/core.hpp"
#include "face2scene/ncnn.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t len = data[0] | (size_t{data[1]} << 8);
  if (len > size - 2) len = size - 2;
  const std::string param(reinterpret_cast<const char*>(data + 2), len);
  const std::string bin(reinterpret_cast<const char*>(data + 2 + len), size - 2 - len);
  try {
    auto model = face2scene::ncnn::parse_param(param, "fuzz.param");
    face2scene::ncnn::read_weights(model, bin, "fuzz.bin");
    for (const auto& l : model.layers) {
      if (l.type == "Convolution" || l.type == "ConvolutionDepthWise" || l.type == "Deconvolution") {
        face2scene::ncnn::conv_weight(l);
        face2scene::ncnn::conv_bias(l);
      }
    }
  } catch (const face2scene::Error&) {
  }
  return 0;
}
