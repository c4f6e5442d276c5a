// The TF.js weights format (a JSON manifest of weight groups and their .bin shards), as the npm
// packages of face-api and human-models ship their networks. Private to face2scene.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace face2scene {

// Every weight of `manifest_path` (its .bin shards in the same folder), in manifest order, in
// TF's own layout (conv filters HWIO), dequantised exactly as TF.js does: uint8/uint16 with scale
// and min, or float16. float32 weights come as kFloat32, int32 ones (graph constants) as kInt32.
// Throws IoError/FormatError naming the file and the bad entry.
std::vector<std::pair<std::string, torch::Tensor>> read_tfjs_weights(const std::string& manifest_path);

}  // namespace face2scene
