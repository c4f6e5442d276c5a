// Face identity: the 128-D face descriptor of dlib's "dlib_face_recognition_resnet_model_v1"
// (a 29-conv ResNet, 150x150 RGB input), as shipped converted to TF.js in the npm package
// @vladmandic/face-api (model/face_recognition_model.bin). scripts/install_faceapi.sh installs the
// package into the cache and converts its weights once to safetensors (see docs/identity.md).
//
// Two faces of one person give descriptors at Euclidean distance < 0.6 (dlib's threshold).
// Descriptors are not normalised (norm ~1.3-1.6) nor centred: on LFW dlib chips the mean cosine is
// 0.95 for same-person pairs and 0.84 for different people, so compare cosines relative to each
// other (or use the distance), not to 0. identity_similarity() is the cosine.
#pragma once

#include <torch/torch.h>

#include <string>

namespace face2scene {

// The converted weights, safetensors with metadata arch="faceapi_face_recognition", version="1".
// $F2S_FACEAPI_WEIGHTS if set, else <cache>/weights/faceapi_face_recognition.safetensors where
// <cache> is $F2S_CACHE or ~/.cache/face2scene.
std::string default_faceapi_weights_path();
// The cache root: $F2S_CACHE or $HOME/.cache/face2scene.
std::string face2scene_cache_dir();

// The network itself (src/models/face_recognition_net.cpp). Input: [B,3,150,150] RGB scaled to
// 0..255 floats (as face-api feeds it); it subtracts face-api's channel means and divides by 256
// inside, then returns [B,128] descriptors (not normalised).
struct FaceRecognitionNetImpl;
class FaceRecognitionNet;

class FaceDescriptor {
 public:
  static constexpr int kInputSize = 150;
  static constexpr int kDim = 128;

  // Loads the converted weights strictly (every tensor present, right shapes, arch checked).
  // Throws IoError/FormatError naming the file, with a hint to run scripts/install_faceapi.sh.
  static FaceDescriptor load(const std::string& weights_path, torch::Device device);
  // True when `weights_path` exists (tests use it to GTEST_SKIP).
  static bool available(const std::string& weights_path = default_faceapi_weights_path());

  // faces: [B,3,H,W] or [3,H,W] float RGB in [0,1], already cropped like dlib's 150x150 chip
  // (see crop_for_descriptor). Other sizes are resized to 150x150 (bilinear, antialiased when
  // shrinking). Returns [B,128] float32 descriptors on the descriptor's device. No grad.
  torch::Tensor embed(const torch::Tensor& faces) const;
  // The raw network on [B,3,150,150] 0..255 input (what face-api's computeFaceDescriptor runs);
  // differentiable, for losses.
  torch::Tensor forward_raw(const torch::Tensor& rgb255_150) const;

  torch::Device device() const { return device_; }
  torch::nn::Module& module() const;

 private:
  std::shared_ptr<FaceRecognitionNetImpl> net_;
  torch::Device device_ = torch::kCPU;
};

// Cosine similarity of two descriptors: [128] x [128] -> scalar, or [B,128] x [B,128] -> [B].
torch::Tensor identity_similarity_tensor(const torch::Tensor& a, const torch::Tensor& b);
float identity_similarity(const torch::Tensor& a, const torch::Tensor& b);

// The crop the descriptor expects, taken from an FFHQ-aligned face (any square size, e.g. 512²,
// [3,S,S] or [B,3,S,S] in [0,1]): the region of dlib's 150x150 chip with padding 0.25, derived by
// matching dlib's 5-point mean face (eye centres) to FFHQ's 5-point template. In relative
// coordinates of the aligned image: x0 = 0.1535, y0 = 0.2482, side = 0.7020 (docs/identity.md
// shows the derivation). Returns [B,3,150,150] in [0,1].
torch::Tensor crop_for_descriptor(const torch::Tensor& ffhq_aligned);

// A fixed centre crop of a 250x250 deep-funneled LFW image (side `crop` px, centred `shift_y` px
// below the image centre), resized to 150x150. An approximation of the dlib chip for the LFW
// benchmark: deep-funneled images are roughly centred but not landmark-aligned. The defaults are
// the median dlib chip over the shared LFW images (docs/identity.md).
torch::Tensor crop_lfw_deepfunneled(const torch::Tensor& image, int crop = 117, int shift_y = 10);

}  // namespace face2scene
