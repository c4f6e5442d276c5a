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
#include "face2scene/identity.hpp"
#include "face2scene/safetensors.hpp"
#include "models/ssd_mobilenet.hpp"

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

// The part of a W×H image that dlib's predictor reads around a face: its box grown by its own size
// on every side, in whole pixels, clipped to the image.
struct Neighbourhood {
  int64_t x0, y0, x1, y1;
};
Neighbourhood neighbourhood(const FaceBox& b, int64_t W, int64_t H) {
  const double bw = b.width(), bh = b.height();
  return {std::clamp<int64_t>(std::floor(b.x0 - bw), 0, W), std::clamp<int64_t>(std::floor(b.y0 - bh), 0, H),
          std::clamp<int64_t>(std::ceil(b.x1 + bw), 0, W), std::clamp<int64_t>(std::ceil(b.y1 + bh), 0, H)};
}

// dlib's predictor reads pixels near the face only, so with hog-torch each face's neighbourhood
// (its box grown by its own size on every side) comes from the device, not the whole scanned image
// (11 MP for a 512² photo scanned for 12-px faces). Same points as on the whole image (tests).
std::vector<std::vector<Point2f>> landmarks_in_crops(detail::DlibModels& models, const torch::Tensor& img,
                                                     const std::vector<FaceBox>& boxes) {
  const int64_t H = img.size(0), W = img.size(1);
  std::vector<std::vector<Point2f>> out;
  for (const auto& b : boxes) {
    const auto [x0, y0, x1, y1] = neighbourhood(b, W, H);
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

// ---- SSD MobileNet v1 beside HOG -----------------------------------------------------------
// The smallest face is scanned at this side in the network's 512² frame: the SSD is surest of faces
// of 20–40 px there (at 32 px a face of a restored crowd photo scored 0.5–0.9 and hands did too;
// at 20 the faces scored higher than the hands), and the frame is tiled with this overlap so that a face up to it is whole in
// some tile. Larger faces are found in coarser levels of a pyramid (×¼ a level).
constexpr double kSsdFace = 20.0;
constexpr int64_t kSsdOverlap = 128;
constexpr int64_t kSsdMaxPixels = 16'000'000;  // the finest level's work cap

struct SsdHit {
  FaceBox box;  // photo pixels
  float p = 0.f;
};

// SSD's boxes are taller than wide (forehead to chin); the landmark predictor was trained on
// HOG's square boxes. Squared to the same area, an SSD box matches the HOG box of the same face in
// size (median side ratio 0.994) and sits 5 % of its side higher (median 0.054): measured on the
// 117 faces both detectors found in the five clean photos of scenes/group (docs/faces.md, "SSD").
FaceBox hog_framing(const FaceBox& b) {
  const double side = std::sqrt(double(b.width()) * b.height());
  const double cx = (b.x0 + b.x1) / 2.0, cy = (b.y0 + b.y1) / 2.0 + 0.05 * side;
  return {static_cast<float>(cx - side / 2), static_cast<float>(cy - side / 2), static_cast<float>(cx + side / 2),
          static_cast<float>(cy + side / 2)};
}

// The photo resized to h×w as [1,3,h,w] float 0..255 on `device`, one channel at a time (bilinear
// up, area down), so that a large photo never exists as a whole float RGB copy: the second look
// scans a 16 MP output. `channel(c)` gives channel c at full size as [1,1,H,W] float 0..255.
torch::Tensor ssd_level(const std::function<torch::Tensor(int64_t)>& channel, int64_t H, int64_t W, int64_t h, int64_t w,
                        torch::Device device) {
  namespace F = torch::nn::functional;
  auto out = torch::empty({1, 3, h, w}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  for (int64_t c = 0; c < 3; ++c) {
    auto ch = channel(c).to(device);
    if (h != H || w != W) {
      ch = h > H ? F::interpolate(ch, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false))
                 : F::adaptive_avg_pool2d(ch, F::AdaptiveAvgPool2dFuncOptions({h, w}));
    }
    out[0][c].copy_(ch[0][0]);
  }
  return out;
}

// Every SSD face of an H×W photo (its channels given by `channel`, as for ssd_level) with
// probability >= min_p, after greedy non-maximum suppression (IoU 0.5, face-api's rule) over all
// tiles and levels.
std::vector<SsdHit> ssd_scan(SsdMobilenetV1& net, torch::Device device, const std::function<torch::Tensor(int64_t)>& channel,
                             int64_t H, int64_t W, int min_face, float min_p) {
  torch::NoGradGuard no_grad;
  double s = kSsdFace / min_face;
  if (H * W * s * s > kSsdMaxPixels) {
    s = std::sqrt(static_cast<double>(kSsdMaxPixels) / (H * W));
    log_info("face detection (SSD): the photo is scanned at scale " + std::to_string(s) +
             " (work cap), so faces smaller than ~" + std::to_string(std::lround(kSsdFace / s)) + " px may be missed");
  }
  std::vector<SsdHit> hits;
  for (;; s /= 4) {
    const int64_t h = std::max<int64_t>(1, std::llround(H * s)), w = std::max<int64_t>(1, std::llround(W * s));
    const auto level = ssd_level(channel, H, W, h, w, device);
    const double fx = double(W) / w, fy = double(H) / h;  // level pixels to photo pixels
    // Tiles of 512², black beyond the photo as face-api pads; run in batches of 8.
    const int64_t step = kSsdInput - kSsdOverlap;
    std::vector<std::pair<int64_t, int64_t>> origins;
    for (int64_t ty = 0;; ty += step) {
      for (int64_t tx = 0;; tx += step) {
        origins.emplace_back(tx, ty);
        if (tx + kSsdInput >= w) break;
      }
      if (ty + kSsdInput >= h) break;
    }
    for (size_t i0 = 0; i0 < origins.size(); i0 += 8) {
      const size_t n = std::min<size_t>(8, origins.size() - i0);
      auto batch = torch::zeros({int64_t(n), 3, kSsdInput, kSsdInput}, level.options());
      for (size_t i = 0; i < n; ++i) {
        const auto [tx, ty] = origins[i0 + i];
        const int64_t cw = std::min(kSsdInput, w - tx), ch = std::min(kSsdInput, h - ty);
        batch[int64_t(i)].slice(1, 0, ch).slice(2, 0, cw).copy_(level[0].slice(1, ty, ty + ch).slice(2, tx, tx + cw));
      }
      const auto out = net->forward(batch);
      const auto scores = out.scores.to(torch::kCPU).contiguous(), boxes = out.boxes.to(torch::kCPU).contiguous();
      for (size_t i = 0; i < n; ++i) {
        const auto [tx, ty] = origins[i0 + i];
        const auto sc = scores[int64_t(i)], bx = boxes[int64_t(i)];
        const auto keep = (sc >= min_p).nonzero().view(-1);
        for (int64_t k = 0; k < keep.size(0); ++k) {
          const int64_t j = keep[k].item<int64_t>();
          const auto b = bx[j];
          // Clipped to the tile as face-api clips to its frame, then to photo pixels.
          const double x0 = std::clamp(b[0].item<double>(), 0.0, 1.0) * kSsdInput + tx;
          const double y0 = std::clamp(b[1].item<double>(), 0.0, 1.0) * kSsdInput + ty;
          const double x1 = std::clamp(b[2].item<double>(), 0.0, 1.0) * kSsdInput + tx;
          const double y1 = std::clamp(b[3].item<double>(), 0.0, 1.0) * kSsdInput + ty;
          if (x1 <= x0 || y1 <= y0) continue;
          hits.push_back({{float(x0 * fx), float(y0 * fy), float(std::min<double>(x1, w) * fx), float(std::min<double>(y1, h) * fy)},
                          sc[j].item<float>()});
        }
      }
    }
    if (h <= kSsdInput && w <= kSsdInput) break;  // the whole photo fitted one tile
  }
  std::sort(hits.begin(), hits.end(), [](const SsdHit& a, const SsdHit& b) { return a.p > b.p; });
  std::vector<SsdHit> kept;
  for (const auto& hit : hits) {
    bool dup = false;
    for (const auto& k : kept) dup = dup || box_iou(hit.box, k.box) > 0.5f;
    if (!dup) kept.push_back(hit);
  }
  return kept;
}

// dlib's predictor on a face found by the SSD: the neighbourhood of its (HOG-framed) box scaled so
// that the box is as large as HOG's window, as HOG's own faces are read on the scanned image. The
// SSD also finds tilted faces, which dlib's predictor (it starts from an upright mean shape) fits
// only part way: the crop is turned about the box's centre before the fit (below).
std::vector<Point2f> landmarks_scaled(detail::DlibModels& models, const std::vector<uint8_t>& grey, int W, int H,
                                      const FaceBox& b) {
  namespace F = torch::nn::functional;
  torch::NoGradGuard no_grad;
  const auto [x0, y0, x1, y1] = neighbourhood(b, W, H);
  if (x1 - x0 < 2 || y1 - y0 < 2) return {};
  const double s = std::max(1.0, kHogWindow / std::max(1.0, std::sqrt(double(b.width()) * b.height())));
  auto g = torch::from_blob(const_cast<uint8_t*>(grey.data()), {1, 1, H, W}, torch::kUInt8)
               .slice(2, y0, y1).slice(3, x0, x1).to(torch::kFloat32);
  int sw = 0, sh = 0;
  const auto scaled = resize_grey(g, s, sw, sh);
  const double sx = double(sw) / double(x1 - x0), sy = double(sh) / double(y1 - y0);
  const FaceBox local{float((b.x0 - x0) * sx), float((b.y0 - y0) * sy), float((b.x1 - x0) * sx), float((b.y1 - y0) * sy)};
  const double cx = (local.x0 + local.x1) / 2.0, cy = (local.y0 + local.y1) / 2.0;
  // Crop pixels sampled at R(angle)·(p − c) + c, so that a face tilted by `angle` stands upright.
  auto fit = [&](double angle) {
    torch::Tensor img = scaled;
    const double ca = std::cos(angle), sa = std::sin(angle);
    if (angle != 0) {
      const auto ys = torch::arange(sh, torch::kFloat32).view({-1, 1}).expand({sh, sw}) - cy;
      const auto xs = torch::arange(sw, torch::kFloat32).view({1, -1}).expand({sh, sw}) - cx;
      const auto srcx = ca * xs - sa * ys + cx, srcy = sa * xs + ca * ys + cy;
      const auto grid = torch::stack({(2 * srcx + 1) / sw - 1, (2 * srcy + 1) / sh - 1}, 2).unsqueeze(0);
      img = F::grid_sample(scaled, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false))
                .round().clamp(0, 255);
    }
    const auto bytes = to_bytes(img);
    auto lm = detail::dlib_landmarks(models, detail::GreyView{bytes.data(), sw, sh}, {local}).at(0);
    for (auto& p : lm) {  // back to the unturned crop
      const double dx = p.x - cx, dy = p.y - cy;
      p.x = static_cast<float>(ca * dx - sa * dy + cx);
      p.y = static_cast<float>(sa * dx + ca * dy + cy);
    }
    return lm;
  };
  auto eye_angle = [](const std::vector<Point2f>& lm) {
    const auto f = five_points_from_68(lm);
    return std::atan2(double(f[1].y - f[0].y), double(f[1].x - f[0].x));
  };
  // Upright first: a face whose fit finds the eyes level (within 8°) is kept as fitted. Else a fit
  // in a crop turned by the face's own tilt finds the eyes level, and one from a wrong start does
  // not (at 45° one fit returned 9° and −27°): the crop is turned by the first fit's tilt and by
  // ±25° and ±45°, the fit whose eyes come out most level in its turned crop is kept, and refined.
  auto lm = fit(0);
  const double first = eye_angle(lm);
  if (std::abs(first) > 8 * M_PI / 180) {
    double best = std::abs(first), at = first;
    for (const double a : {first, -25 * M_PI / 180, 25 * M_PI / 180, -45 * M_PI / 180, 45 * M_PI / 180}) {
      auto cand = fit(a);
      const double r = std::remainder(eye_angle(cand) - a, 2 * M_PI);
      if (std::abs(r) < best) best = std::abs(r), at = a + r, lm = std::move(cand);
    }
    if (best > 3 * M_PI / 180) lm = fit(at);
  }
  for (auto& p : lm) {
    p.x = static_cast<float>((p.x + 0.5) / sx - 0.5 + x0);
    p.y = static_cast<float>((p.y + 0.5) / sy - 0.5 + y0);
  }
  return lm;
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

std::string default_ssd_weights_path() {
  if (const char* p = std::getenv("F2S_SSD_WEIGHTS"); p && *p) return p;
  return face2scene_cache_dir() + "/weights/faceapi_ssd_mobilenetv1.safetensors";
}

struct FaceDetector::Impl {
  DetectOptions options;
  std::shared_ptr<detail::DlibModels> models;
  std::unique_ptr<detail::TorchHogScanner> torch_hog;  // detector "hog-torch"
  SsdMobilenetV1 ssd{nullptr};                         // DetectOptions::ssd, when loaded
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
  if (options.ssd != "off") {
    const bool required = options.ssd != "auto";
    const std::string path = required ? options.ssd : default_ssd_weights_path();
    if (file_exists(path)) {
      const auto st = load_safetensors(path);
      check_arch(st, kSsdMobilenetArch, path);
      SsdMobilenetV1 net;
      load_state_dict_strict(*net, st.tensors, path);
      net->eval();
      net->to(options.device);
      impl_->ssd = net;
    } else if (required) {
      throw IoError("SSD face detector weights not found: " + path + " (scripts/install_faceapi.sh makes them)");
    } else {
      log_info("face detection: HOG only (the SSD detector's weights " + path +
               " are not installed; scripts/install_faceapi.sh makes them)");
    }
  }
}

FaceDetector::~FaceDetector() = default;
FaceDetector::FaceDetector(FaceDetector&&) noexcept = default;
FaceDetector& FaceDetector::operator=(FaceDetector&&) noexcept = default;
const DetectOptions& FaceDetector::options() const { return impl_->options; }

std::vector<DetectedFace> FaceDetector::detect(const Image& image) const {
  return detect(image, impl_->options.min_face, true);
}

bool FaceDetector::has_ssd() const { return static_cast<bool>(impl_->ssd); }

std::vector<DetectedFace> FaceDetector::detect(const Image& image, int min_face, bool ssd) const {
  return detect_impl(image, min_face, ssd, nullptr);
}

std::vector<DetectedFace> FaceDetector::detect(const Image& grey, int min_face, const torch::Tensor& colour) const {
  if (colour.dim() != 3 || colour.size(0) != 3 || colour.size(1) != grey.height || colour.size(2) != grey.width)
    throw ArgumentError("face detection: the colour photo must be [3," + std::to_string(grey.height) + "," +
                        std::to_string(grey.width) + "] like the grey one");
  return detect_impl(grey, min_face, true, &colour);
}

std::vector<DetectedFace> FaceDetector::detect_impl(const Image& image, int min_face, bool use_ssd,
                                                    const torch::Tensor* colour) const {
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
  // SSD beside HOG: its faces that no HOG face covers, framed as HOG frames a face.
  if (impl_->ssd && use_ssd) {
    const size_t n_hog = faces.size();
    // The SSD reads colour (on grey it finds a fraction of the faces): `colour` when given, else
    // the image's own channels (grey repeated).
    const auto all = torch::from_blob(const_cast<uint16_t*>(image.data.data()), {h, w, image.channels}, torch::kInt16);
    const std::function<torch::Tensor(int64_t)> channel = [&](int64_t c) -> torch::Tensor {
      if (colour) return ((*colour)[c].to(torch::kFloat32).clamp(0, 1) * 255.0).view({1, 1, h, w});
      // uint16 samples read as int16 and wrapped back (LibTorch has no uint16).
      auto ch = all.select(2, image.channels >= 3 ? c : 0).to(torch::kInt32);
      return torch::where(ch < 0, ch + 65536, ch).to(torch::kFloat32).mul_(255.0 / image.max_value()).view({1, 1, h, w});
    };
    for (const auto& hit : ssd_scan(impl_->ssd, o.device, channel, h, w, min_face, o.ssd_min_score)) {
      const FaceBox b = hog_framing(hit.box);
      bool covered = false;
      for (size_t i = 0; i < faces.size(); ++i) covered = covered || boxes_overlap(b, faces[i].box);
      if (covered || std::min(b.width(), b.height()) < 8.f) continue;
      DetectedFace f;
      f.box = b;
      const double p = std::clamp<double>(hit.p, 1e-6, 1 - 1e-6);
      f.score = static_cast<float>(std::log(p / (1 - p)));
      f.detector = "ssd";
      faces.push_back(f);
    }
    if (o.landmarks) {
      for (size_t i = n_hog; i < faces.size(); ++i) {
        auto& f = faces[i];
        f.landmarks68 = landmarks_scaled(*impl_->models, grey, w, h, f.box);
        if (f.landmarks68.size() == 68) {
          f.points5 = five_points_from_68(f.landmarks68);
          f.has_points5 = true;
        }
      }
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
