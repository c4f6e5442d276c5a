// FaceDetector: image preparation (grey, scale for the smallest wanted face, work cap), the dlib
// backend, coordinate mapping back to the photo, and the 68 -> 5 point reduction.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "dlib_backend.hpp"
#include "hog_torch.hpp"
#include "face2scene/faces.hpp"

namespace face2scene {

namespace {
// dlib's HOG detector scans an 80x80 window over an image pyramid that only goes down, so a face
// is found when it is at least about this many pixels in the scanned image.
constexpr double kHogWindow = 80.0;

// BT.601 luma, 8-bit: HOG works on grey and so does the landmark predictor.
std::vector<uint8_t> to_grey8(const Image& img) {
  std::vector<uint8_t> g(img.pixel_count());
  const double scale = 255.0 / img.max_value();
  for (size_t i = 0; i < g.size(); ++i) {
    double v;
    if (img.channels == 1) {
      v = img.data[i];
    } else {
      const uint16_t* p = &img.data[i * img.channels];
      v = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    }
    g[i] = static_cast<uint8_t>(std::clamp(std::lround(v * scale), 0L, 255L));
  }
  return g;
}

// Resizes a [1, 1, h, w] grey float tensor by `s` (bilinear up, area down) with torch,
// align_corners=false geometry: scaled pixel u covers original x with u + 0.5 = s * (x + 0.5). The
// result is rounded to 8-bit values, as both HOG scans expect. Runs on the tensor's device.
torch::Tensor resize_grey(const torch::Tensor& t, double s, int& ow, int& oh) {
  const int64_t h = t.size(2), w = t.size(3);
  ow = std::max(1, static_cast<int>(std::lround(w * s)));
  oh = std::max(1, static_cast<int>(std::lround(h * s)));
  namespace F = torch::nn::functional;
  torch::Tensor r;
  if (s >= 1.0) {
    r = F::interpolate(t, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{oh, ow})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  } else {
    r = F::adaptive_avg_pool2d(t, F::AdaptiveAvgPool2dFuncOptions({oh, ow}));
  }
  return r.round().clamp(0, 255);
}

// dlib's predictor reads pixels near the face only, so with hog-torch each face's neighbourhood
// (its box grown by its own size on every side) comes from the device, not the whole scanned image
// (11 MP for a 512² photo scanned for 12-px faces). Same points as on the whole image (tests).
std::vector<std::vector<Point2f>> landmarks_in_crops(detail::DlibModels& models, const torch::Tensor& img,
                                                     const std::vector<FaceBox>& boxes) {
  const int64_t H = img.size(0), W = img.size(1);
  std::vector<std::vector<Point2f>> out;
  for (const auto& b : boxes) {
    const double bw = b.width(), bh = b.height();
    const int64_t x0 = std::clamp<int64_t>(std::floor(b.x0 - bw), 0, W), x1 = std::clamp<int64_t>(std::ceil(b.x1 + bw), 0, W);
    const int64_t y0 = std::clamp<int64_t>(std::floor(b.y0 - bh), 0, H), y1 = std::clamp<int64_t>(std::ceil(b.y1 + bh), 0, H);
    auto crop = img.slice(0, y0, y1).slice(1, x0, x1).to(torch::kUInt8).to(torch::kCPU).contiguous();
    const detail::GreyView v{crop.data_ptr<uint8_t>(), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0)};
    const FaceBox local{b.x0 - x0, b.y0 - y0, b.x1 - x0, b.y1 - y0};
    auto lm = detail::dlib_landmarks(models, v, {local}).at(0);
    for (auto& p : lm) p.x += static_cast<float>(x0), p.y += static_cast<float>(y0);
    out.push_back(std::move(lm));
  }
  return out;
}

std::vector<uint8_t> to_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kUInt8).contiguous();
  std::vector<uint8_t> out(static_cast<size_t>(c.numel()));
  std::memcpy(out.data(), c.data_ptr<uint8_t>(), out.size());
  return out;
}
}  // namespace

namespace {
float box_intersection(const FaceBox& a, const FaceBox& b) {
  const float ix = std::max(0.f, std::min(a.x1, b.x1) - std::max(a.x0, b.x0));
  const float iy = std::max(0.f, std::min(a.y1, b.y1) - std::max(a.y0, b.y0));
  return ix * iy;
}
}  // namespace

float box_iou(const FaceBox& a, const FaceBox& b) {
  const float inter = box_intersection(a, b);
  const float uni = a.width() * a.height() + b.width() * b.height() - inter;
  return uni > 0 ? inter / uni : 0.f;
}

bool boxes_overlap(const FaceBox& a, const FaceBox& b, float share) {
  return box_intersection(a, b) > share * std::min(a.width() * a.height(), b.width() * b.height());
}

std::string face_model_dir() {
  if (const char* env = std::getenv("F2S_FACE_MODELS"); env && *env) return env;
  return "/usr/share/dlib";
}

bool face_detection_available() { return detail::dlib_compiled_in(); }

FivePoints five_points_from_68(const std::vector<Point2f>& lm) {
  if (lm.size() != 68)
    throw ArgumentError("five_points_from_68: expected 68 landmarks, got " + std::to_string(lm.size()));
  auto mean = [&](int a, int b) {
    Point2f p;
    for (int i = a; i <= b; ++i) {
      p.x += lm[i].x;
      p.y += lm[i].y;
    }
    p.x /= static_cast<float>(b - a + 1);
    p.y /= static_cast<float>(b - a + 1);
    return p;
  };
  // iBUG: 36-41 is the eye on the image's left, 42-47 the other one; 30 nose tip; 48/54 corners.
  return {mean(36, 41), mean(42, 47), lm[30], lm[48], lm[54]};
}

struct FaceDetector::Impl {
  DetectOptions options;
  std::shared_ptr<detail::DlibModels> models;
  std::unique_ptr<detail::TorchHogScanner> torch_hog;  // detector "hog-torch"
};

FaceDetector::FaceDetector(DetectOptions options, const std::string& model_dir)
    : impl_(std::make_unique<Impl>()) {
  if (options.detector == "auto") options.detector = options.device.is_cuda() ? "hog-torch" : "hog";
  if (options.detector != "hog" && options.detector != "hog-torch")
    throw ArgumentError("unknown face detector '" + options.detector + "' (known: auto, hog, hog-torch)");
  if (options.min_face < 8) throw ArgumentError("min_face must be >= 8 pixels");
  impl_->options = options;
  if (!detail::dlib_compiled_in()) detail::dlib_load("");  // throws the "built without dlib" error
  std::string predictor;
  if (options.landmarks) {
    const std::string dir = model_dir.empty() ? face_model_dir() : model_dir;
    predictor = dir + "/shape_predictor_68_face_landmarks.dat";
    if (!file_exists(predictor))
      throw IoError("landmark model not found: " + predictor +
                    " (install the Debian package libdlib-data, or set F2S_FACE_MODELS to the "
                    "folder holding shape_predictor_68_face_landmarks.dat)");
  }
  impl_->models = detail::dlib_load(predictor);
  if (options.detector == "hog-torch")
    impl_->torch_hog = std::make_unique<detail::TorchHogScanner>(detail::dlib_hog_model(*impl_->models), options.device);
}

FaceDetector::~FaceDetector() = default;
FaceDetector::FaceDetector(FaceDetector&&) noexcept = default;
FaceDetector& FaceDetector::operator=(FaceDetector&&) noexcept = default;
const DetectOptions& FaceDetector::options() const { return impl_->options; }

std::vector<DetectedFace> FaceDetector::detect(const Image& image) const {
  return detect(image, impl_->options.min_face);
}

std::vector<DetectedFace> FaceDetector::detect(const Image& image, int min_face) const {
  if (image.empty()) throw ArgumentError("face detection: the image is empty");
  if (min_face < 8) throw ArgumentError("min_face must be >= 8 pixels");
  const auto& o = impl_->options;
  const int w = image.width, h = image.height;
  const std::vector<uint8_t> grey = to_grey8(image);

  // Scale so that a min_face face fills the HOG window, capped by the work budget.
  double s = kHogWindow / min_face;
  const double pixels = static_cast<double>(w) * h;
  if (pixels * s * s > static_cast<double>(o.max_detect_pixels)) {
    s = std::sqrt(static_cast<double>(o.max_detect_pixels) / pixels);
    std::ostringstream msg;
    msg << "face detection: image " << w << "x" << h << " is scanned at scale " << s
        << " (work cap), so faces smaller than ~" << std::lround(kHogWindow / s)
        << " px may be missed";
    log_info(msg.str());
  }
  int sw = w, sh = h;
  const bool resized = std::abs(s - 1.0) > 1e-3;
  std::vector<uint8_t> scaled;  // the scanned image when resized (landmarks run on it)
  std::vector<detail::RawDetection> raw;
  auto as_tensor = [&](torch::Device d) {
    return torch::from_blob(const_cast<uint8_t*>(grey.data()), {1, 1, h, w}, torch::kUInt8).to(d).to(torch::kFloat32);
  };
  torch::Tensor scanned;  // hog-torch: the scanned image, on its device
  // On a GPU each call runs on a stream of its own from the pool: the pipeline detects on several
  // threads while its worker runs the scene restorer, and on one shared stream every thread's
  // synchronisation (the hits' download) would wait for all the others' kernels.
  std::optional<c10::StreamGuard> stream;
  if (impl_->torch_hog) {
    torch::NoGradGuard no_grad;
    const torch::Device dev = impl_->torch_hog->device();
    if (dev.is_cuda()) stream.emplace(c10::impl::getDeviceGuardImpl(dev.type())->getStreamFromGlobalPool(dev));
    auto t = as_tensor(dev);
    if (resized) t = resize_grey(t, s, sw, sh);
    scanned = t[0][0];
    raw = impl_->torch_hog->detect(scanned, o.min_score);
  } else if (resized) {
    torch::NoGradGuard no_grad;
    scaled = to_bytes(resize_grey(as_tensor(torch::kCPU), s, sw, sh));
  }
  const double sx = static_cast<double>(sw) / w, sy = static_cast<double>(sh) / h;
  const detail::GreyView view{resized ? scaled.data() : grey.data(), sw, sh};  // dlib's hog only
  if (!impl_->torch_hog) raw = detail::dlib_hog_detect(*impl_->models, view, o.min_score);

  // dlib suppresses overlaps within its own decision, but a weak hit of another pose filter can
  // sit half on a found face (seen on Solvay 1927). HOG boxes are tight (brows to chin), so real
  // faces' boxes hardly overlap: drop a box when a stronger one covers > 25% of it.
  std::sort(raw.begin(), raw.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
  {
    std::vector<detail::RawDetection> kept;
    for (const auto& r : raw) {
      bool covered = false;
      for (const auto& k : kept) covered = covered || boxes_overlap(r.box, k.box);
      if (!covered) kept.push_back(r);
    }
    raw.swap(kept);
  }
  std::vector<DetectedFace> faces;
  std::vector<FaceBox> scan_boxes;
  for (const auto& r : raw) {
    DetectedFace f;
    f.box = {static_cast<float>(r.box.x0 / sx), static_cast<float>(r.box.y0 / sy),
             static_cast<float>(r.box.x1 / sx), static_cast<float>(r.box.y1 / sy)};
    f.box.x0 = std::max(f.box.x0, 0.f);
    f.box.y0 = std::max(f.box.y0, 0.f);
    f.box.x1 = std::min(f.box.x1, static_cast<float>(w));
    f.box.y1 = std::min(f.box.y1, static_cast<float>(h));
    f.score = r.score;
    f.detector = o.detector;
    faces.push_back(f);
    scan_boxes.push_back(r.box);
  }
  // Landmarks on the scanned image: for small faces its interpolated pixels serve the
  // predictor better than the original's few pixels.
  if (o.landmarks && !faces.empty()) {
    auto lms = scanned.defined() ? landmarks_in_crops(*impl_->models, scanned, scan_boxes)
                                 : detail::dlib_landmarks(*impl_->models, view, scan_boxes);
    for (size_t i = 0; i < faces.size(); ++i) {
      auto& f = faces[i];
      f.landmarks68.clear();
      for (const auto& p : lms[i])
        f.landmarks68.push_back({static_cast<float>((p.x + 0.5) / sx - 0.5),
                                 static_cast<float>((p.y + 0.5) / sy - 0.5)});
      f.points5 = five_points_from_68(f.landmarks68);
      f.has_points5 = true;
    }
  }
  std::stable_sort(faces.begin(), faces.end(), [](const DetectedFace& a, const DetectedFace& b) {
    return a.box.width() * a.box.height() > b.box.width() * b.box.height();
  });
  return faces;
}

void FaceDetector::add_landmarks(const Image& image, std::vector<DetectedFace>& faces) const {
  if (faces.empty()) return;
  const std::vector<uint8_t> grey = to_grey8(image);
  detail::GreyView view{grey.data(), image.width, image.height};
  std::vector<FaceBox> boxes;
  for (const auto& f : faces) boxes.push_back(f.box);
  auto lms = detail::dlib_landmarks(*impl_->models, view, boxes);
  for (size_t i = 0; i < faces.size(); ++i) {
    faces[i].landmarks68 = lms[i];
    faces[i].points5 = five_points_from_68(lms[i]);
    faces[i].has_points5 = true;
  }
}

}  // namespace face2scene
