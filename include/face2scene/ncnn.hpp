// Reader for ncnn models (.param text graph + .bin weights), so that networks published only in
// ncnn form (Real-ESRGAN in upscayl, SqueezeNet for LPIPS) can be imported into torch modules.
// Only the file formats are read here; no ncnn code is used. Format as ncnn documents it
// (docs/developer-guide/param-and-model-file-structure.md):
//   .param: magic 7767517, "layer_count blob_count", then one line per layer:
//           type name n_in n_out in_blob... out_blob... key=value...
//           A key <= -23300 marks an array: key -23300-k holds "count,v1,v2,..." for param k.
//   .bin:   for each layer in .param order, its weight blobs in the layer's own load order.
//           A blob read with "type 0" starts with a 4-byte tag: 0x01306B47 fp16 (data padded to
//           4 bytes), 0 fp32, 0x000D4B38 int8 (unsupported), else a 256-entry fp32 table + uint8
//           indices. Biases, PReLU slopes and BatchNorm vectors are raw fp32 without a tag.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace face2scene::ncnn {

// One key=value of a layer. Scalars and arrays; ncnn tells ints from floats by the text ('.',
// 'e' or 'E' make a float).
struct ParamValue {
  bool is_array = false;
  bool is_float = false;
  std::vector<float> values;  // one entry for a scalar; ints are stored exactly (|v| < 2^24)
};

struct Blob {
  torch::Tensor data;            // 1-D float32 on the CPU, in file order
  std::string stored_as;         // "fp16", "fp32", "table8" or "raw_fp32"
};

struct Layer {
  std::string type;
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<int, ParamValue> params;
  std::vector<Blob> weights;  // in ncnn's load order (e.g. Convolution: weight, then bias)
  int line = 0;               // 1-based line in .param, for messages

  bool has(int key) const { return params.count(key) != 0; }
  int get_int(int key, int fallback) const;
  float get_float(int key, float fallback) const;
  std::vector<float> get_array(int key) const;  // empty when absent
};

struct Model {
  std::vector<Layer> layers;
  std::string source;  // the .param path, for messages
  size_t bin_bytes = 0;

  // The layer called `name`; throws FormatError naming the file when absent.
  const Layer& layer(const std::string& name) const;
  std::vector<const Layer*> layers_of_type(const std::string& type) const;
};

// Parses the text graph only (no weights).
Model parse_param(const std::string& text, const std::string& name_for_errors);
// Fills each layer's weights from the .bin bytes; every byte must be consumed, else FormatError
// (a truncated file or an unknown weight-bearing layer type is caught here).
void read_weights(Model& model, const std::string& bin_bytes, const std::string& name_for_errors);
// Both files: load("dir/model.param", "dir/model.bin").
Model load(const std::string& param_path, const std::string& bin_path);

// Convolution / ConvolutionDepthWise / Deconvolution weight as a torch tensor:
// [out, in/groups, kh, kw] (Deconvolution: ncnn's [out, in/groups, kh, kw] as stored). Bias [out]
// or an undefined tensor when the layer has none.
torch::Tensor conv_weight(const Layer& layer);
torch::Tensor conv_bias(const Layer& layer);

}  // namespace face2scene::ncnn
