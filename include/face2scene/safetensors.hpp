// safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian data.
// Every model of face2scene stores its weights this way, with architecture name and version in
// the "__metadata__" block.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace face2scene {

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct SafeTensors {
  TensorMap tensors;  // CPU tensors in their stored dtype
  Metadata metadata;
};

// Supported dtypes: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.
SafeTensors load_safetensors(const std::string& path);
// Only the "__metadata__" block, reading the header and not the tensors (e.g. to choose a model
// class by its "arch" before loading it).
Metadata read_safetensors_metadata(const std::string& path);
SafeTensors parse_safetensors(const std::string& bytes, const std::string& name_for_errors);
// `store_dtype`: convert floating tensors to this dtype before writing (e.g. kHalf for shipped
// weights); std::nullopt keeps each tensor's dtype. Written atomically.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {},
                      c10::optional<torch::Dtype> store_dtype = c10::nullopt);
std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata = {},
                                  c10::optional<torch::Dtype> store_dtype = c10::nullopt);

// Strict loading into a module: every parameter and buffer must be present with the same shape,
// and nothing unexpected may be left over. The error names every missing, unexpected or
// wrong-shape key (and `source` — usually the file). Values are converted to each parameter's
// dtype and device.
void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors,
                            const std::string& source);
// The module's parameters and buffers by their dotted names.
TensorMap state_dict(const torch::nn::Module& module);
// Checks metadata["arch"] == arch (and version when given), naming the file otherwise.
void check_arch(const SafeTensors& st, const std::string& arch, const std::string& source);
// Throws FormatError naming `source`, the stored and the expected version, and `remedy` (what to
// re-run) when the metadata's "version" is missing or differs.
void check_version(const SafeTensors& st, const std::string& version, const std::string& source,
                   const std::string& what, const std::string& remedy);
// metadata[key] as an integer; FormatError naming `source` and the key when missing or not a number.
int64_t metadata_int(const Metadata& metadata, const std::string& key, const std::string& source);

}  // namespace face2scene
