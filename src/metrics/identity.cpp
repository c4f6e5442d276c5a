// Identity descriptor (face2scene/identity.hpp): loading the converted face-api weights, input
// preparation, cosine similarity and the crops that approximate dlib's 150x150 face chip.
#include "face2scene/identity.hpp"

#include <cmath>
#include <cstdlib>

#include "face2scene/core.hpp"
#include "face2scene/safetensors.hpp"
#include "models/face_recognition_net.hpp"

namespace F = torch::nn::functional;

namespace face2scene {

std::string face2scene_cache_dir() {
  if (const char* c = std::getenv("F2S_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/face2scene";
}

std::string default_faceapi_weights_path() {
  if (const char* p = std::getenv("F2S_FACEAPI_WEIGHTS"); p && *p) return p;
  return face2scene_cache_dir() + "/weights/faceapi_face_recognition.safetensors";
}

bool FaceDescriptor::available(const std::string& weights_path) { return file_exists(weights_path); }

FaceDescriptor FaceDescriptor::load(const std::string& weights_path, torch::Device device) {
  if (!file_exists(weights_path)) {
    throw IoError(weights_path + ": face descriptor weights not found; run scripts/install_faceapi.sh "
                  "(it installs @vladmandic/face-api and converts its weights)");
  }
  SafeTensors st = load_safetensors(weights_path);
  check_arch(st, kFaceRecognitionArch, weights_path);
  check_version(st, kFaceRecognitionVersion, weights_path, "face descriptor weights", "re-run scripts/install_faceapi.sh");
  FaceDescriptor d;
  auto net = FaceRecognitionNet();
  // Stored fp16 or fp32; the net always runs in fp32 (the descriptor is sensitive to fp16 maths).
  load_state_dict_strict(*net, st.tensors, weights_path);
  net->to(device);
  net->eval();
  d.net_ = net.ptr();
  d.device_ = device;
  return d;
}

torch::nn::Module& FaceDescriptor::module() const {
  if (!net_) throw ArgumentError("FaceDescriptor: not loaded (use FaceDescriptor::load)");
  return *net_;
}

torch::Tensor FaceDescriptor::forward_raw(const torch::Tensor& rgb255_150) const {
  if (!net_) throw ArgumentError("FaceDescriptor: not loaded (use FaceDescriptor::load)");
  return net_->forward(rgb255_150.to(device_, torch::kFloat32));
}

torch::Tensor FaceDescriptor::embed(const torch::Tensor& faces) const {
  if (faces.dim() != 3 && faces.dim() != 4) {
    throw ArgumentError("FaceDescriptor::embed: expected [3,H,W] or [B,3,H,W], got " + std::to_string(faces.dim()) + " dims");
  }
  auto x = faces.dim() == 3 ? faces.unsqueeze(0) : faces;
  if (x.size(1) != 3) throw ArgumentError("FaceDescriptor::embed: expected 3 (RGB) channels, got " + std::to_string(x.size(1)));
  torch::NoGradGuard no_grad;
  x = x.to(device_, torch::kFloat32);
  if (x.size(2) != kInputSize || x.size(3) != kInputSize) {
    const bool shrink = x.size(2) > kInputSize || x.size(3) > kInputSize;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{kInputSize, kInputSize})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(shrink));
  }
  // face-api feeds 0..255 pixel values; we keep them continuous (no rounding to integers).
  return forward_raw(x.clamp(0.0, 1.0) * 255.0f);
}

torch::Tensor identity_similarity_tensor(const torch::Tensor& a, const torch::Tensor& b) {
  auto af = a.to(torch::kFloat32), bf = b.to(torch::kFloat32);
  return F::cosine_similarity(af, bf.to(af.device()), F::CosineSimilarityFuncOptions().dim(-1).eps(1e-8));
}

float identity_similarity(const torch::Tensor& a, const torch::Tensor& b) {
  auto s = identity_similarity_tensor(a, b);
  if (s.numel() != 1) throw ArgumentError("identity_similarity: expected two single descriptors; use identity_similarity_tensor for batches");
  return s.item<float>();
}

namespace {

// Crops the square [x0, x0+side) x [y0, y0+side) (pixels, fractional allowed) of a [B,3,H,W]
// image and resamples it to 150x150: an affine grid with bilinear sampling, area-smoothed first
// when the crop is much larger than 150 so that shrinking does not alias.
torch::Tensor crop_square(const torch::Tensor& img, double x0, double y0, double side) {
  auto x = img.dim() == 3 ? img.unsqueeze(0) : img;
  if (x.dim() != 4 || x.size(1) != 3) throw ArgumentError("face crop: expected [3,H,W] or [B,3,H,W] RGB");
  x = x.to(torch::kFloat32);
  const int64_t h = x.size(2), w = x.size(3);
  const int n = FaceDescriptor::kInputSize;
  // Antialias: shrink the whole image first (area-like, with torch's antialiased bilinear) so the
  // crop covers about n pixels, then crop in the shrunk coordinates.
  const double factor = side / n;
  if (factor > 1.25) {
    const int64_t nh = std::max<int64_t>(1, std::llround(h / factor)), nw = std::max<int64_t>(1, std::llround(w / factor));
    const double sy = static_cast<double>(nh) / h, sx = static_cast<double>(nw) / w;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{nh, nw})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
    return crop_square(x, x0 * sx, y0 * sy, side * sx);
  }
  // Output pixel centre i (0..n-1) samples input position x0 + (i + 0.5) * side / n (pixel-centre
  // convention), expressed in grid_sample's normalised coordinates (align_corners=false).
  auto idx = (torch::arange(n, torch::kFloat64) + 0.5) * (side / n);
  auto gx = ((idx + x0) / w * 2.0 - 1.0).to(torch::kFloat32).to(x.device());
  auto gy = ((idx + y0) / h * 2.0 - 1.0).to(torch::kFloat32).to(x.device());
  auto grid = torch::stack({gx.view({1, n}).expand({n, n}), gy.view({n, 1}).expand({n, n})}, -1);
  grid = grid.unsqueeze(0).expand({x.size(0), n, n, 2});
  return F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
}

}  // namespace

torch::Tensor crop_for_descriptor(const torch::Tensor& ffhq_aligned) {
  // dlib's 5-point mean face (get_face_chip_details, interpolation.h), unit square, padding 0:
  // eye corners (outer, inner) of each eye; the chip maps it to (p + pad) / (1 + 2 pad).
  constexpr double kPad = 0.25;
  const double dl_eye_l_x = (0.1205750620789 + 0.3340850613712) / 2, dl_eye_r_x = (0.8595674595992 + 0.6460604764104) / 2;
  const double dl_eye_y = (0.2134981538014 + 0.2289674387677 + 0.2137274526848 + 0.2290642403242) / 4;
  const double chip_eye_cx = ((dl_eye_l_x + dl_eye_r_x) / 2 + kPad) / (1 + 2 * kPad);
  const double chip_eye_cy = (dl_eye_y + kPad) / (1 + 2 * kPad);
  const double chip_eye_dist = (dl_eye_r_x - dl_eye_l_x) / (1 + 2 * kPad);
  // FFHQ's 512x512 5-point template (eye centres), as used by facexlib/GFPGAN/CodeFormer.
  const double ff_l_x = 192.98138, ff_l_y = 239.94708, ff_r_x = 318.90277, ff_r_y = 240.1936;
  const double ff_cx = (ff_l_x + ff_r_x) / 2 / 512, ff_cy = (ff_l_y + ff_r_y) / 2 / 512;
  const double ff_dist = std::hypot(ff_r_x - ff_l_x, ff_r_y - ff_l_y) / 512;
  const double side = ff_dist / chip_eye_dist;     // ~0.7020 of the aligned image
  const double x0 = ff_cx - chip_eye_cx * side;    // ~0.1535
  const double y0 = ff_cy - chip_eye_cy * side;    // ~0.2483
  auto x = ffhq_aligned.dim() == 3 ? ffhq_aligned.unsqueeze(0) : ffhq_aligned;
  if (x.dim() != 4) throw ArgumentError("crop_for_descriptor: expected [3,S,S] or [B,3,S,S]");
  const double s = static_cast<double>(x.size(3)), sh = static_cast<double>(x.size(2));
  return crop_square(x, x0 * s, y0 * sh, side * s);
}

torch::Tensor crop_lfw_deepfunneled(const torch::Tensor& image, int crop, int shift_y) {
  auto x = image.dim() == 3 ? image.unsqueeze(0) : image;
  if (x.dim() != 4) throw ArgumentError("crop_lfw_deepfunneled: expected [3,H,W] or [B,3,H,W]");
  if (crop <= 0) throw ArgumentError("crop_lfw_deepfunneled: crop must be positive");
  const double h = x.size(2), w = x.size(3);
  return crop_square(x, (w - crop) / 2.0, (h - crop) / 2.0 + shift_y, crop);
}

}  // namespace face2scene
