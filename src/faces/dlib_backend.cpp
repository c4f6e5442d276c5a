// dlib's HOG face detector and 68-point shape predictor behind a plain interface (see
// dlib_backend.hpp). Without dlib in the build every entry point throws a clear Error.
#include "dlib_backend.hpp"

#include <cmath>
#include <mutex>

#ifdef F2S_HAVE_DLIB
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/serialize.h>
#endif

namespace face2scene::detail {

#ifdef F2S_HAVE_DLIB

namespace {
// dlib wants its own image type; a thin adaptor would avoid the copy, but the copy of an 8-bit
// grey image is cheap next to HOG itself.
dlib::array2d<unsigned char> to_dlib(const GreyView& g) {
  dlib::array2d<unsigned char> img(g.height, g.width);
  for (int y = 0; y < g.height; ++y) {
    const uint8_t* src = g.data + static_cast<size_t>(y) * g.width;
    for (int x = 0; x < g.width; ++x) img[y][x] = src[x];
  }
  return img;
}
}  // namespace

struct DlibModels {
  // The prototype is only ever copied: dlib's object_detector loads each image into its own scanner
  // (operator() is not const), so two threads sharing one detector corrupt each other's pyramid.
  // Each call borrows an idle copy (made on first need), so FaceDetector::detect is thread-safe and
  // a folder run can detect the next photos on several threads. The shape predictor is const.
  const dlib::frontal_face_detector hog = dlib::get_frontal_face_detector();
  std::mutex mu;
  std::vector<std::unique_ptr<dlib::frontal_face_detector>> idle;
  dlib::shape_predictor predictor;
  bool has_predictor = false;
};

bool dlib_compiled_in() { return true; }

std::shared_ptr<DlibModels> dlib_load(const std::string& predictor_path) {
  auto models = std::make_shared<DlibModels>();
  if (!predictor_path.empty()) {
    try {
      dlib::deserialize(predictor_path) >> models->predictor;
    } catch (const std::exception& e) {
      throw IoError("cannot load the 68-point landmark model " + predictor_path + ": " + e.what());
    }
    models->has_predictor = true;
  }
  return models;
}

std::vector<RawDetection> dlib_hog_detect(DlibModels& models, const GreyView& grey, float threshold) {
  auto img = to_dlib(grey);
  std::vector<dlib::rect_detection> dets;
  // adjust_threshold lowers/raises the SVM decision threshold; we filter again below.
  std::unique_ptr<dlib::frontal_face_detector> hog;
  {
    std::lock_guard<std::mutex> lock(models.mu);
    if (!models.idle.empty()) {
      hog = std::move(models.idle.back());
      models.idle.pop_back();
    }
  }
  if (!hog) hog = std::make_unique<dlib::frontal_face_detector>(models.hog);
  (*hog)(img, dets, static_cast<double>(threshold));
  {
    std::lock_guard<std::mutex> lock(models.mu);
    models.idle.push_back(std::move(hog));
  }
  std::vector<RawDetection> out;
  for (const auto& d : dets) {
    if (d.detection_confidence < threshold) continue;
    RawDetection r;
    // dlib rectangles are inclusive pixel ranges.
    r.box = {static_cast<float>(d.rect.left()), static_cast<float>(d.rect.top()),
             static_cast<float>(d.rect.right() + 1), static_cast<float>(d.rect.bottom() + 1)};
    r.score = static_cast<float>(d.detection_confidence);
    r.pose = static_cast<int>(d.weight_index);
    out.push_back(r);
  }
  return out;
}

HogModel dlib_hog_model(const DlibModels& models) {
  const auto& scanner = models.hog.get_scanner();
  HogModel m;
  m.filters = static_cast<int>(models.hog.num_detectors());
  m.planes = 31;  // fHOG: 18 signed + 9 unsigned orientations + 4 texture energies
  m.rows = static_cast<int>(scanner.get_fhog_window_height());
  m.cols = static_cast<int>(scanner.get_fhog_window_width());
  const long dims = scanner.get_num_dimensions();
  if (dims != static_cast<long>(m.planes) * m.rows * m.cols || scanner.get_padding() != 0)
    throw Error("dlib's frontal face detector has an unexpected layout (" + std::to_string(dims) + " weights)");
  m.cell_size = static_cast<int>(scanner.get_cell_size());
  m.min_layer = static_cast<int>(std::max(scanner.get_min_pyramid_layer_width(), scanner.get_min_pyramid_layer_height()));
  m.nms_iou = models.hog.get_overlap_tester().get_iou_thresh();
  m.nms_covered = models.hog.get_overlap_tester().get_percent_covered_thresh();
  for (int k = 0; k < m.filters; ++k) {
    const auto& w = models.hog.get_w(static_cast<unsigned long>(k));
    // dlib's build_fhog_filterbank: plane i's filter is weights[i*rows*cols ...] row-major.
    for (long i = 0; i < dims; ++i) m.weights.push_back(static_cast<float>(w(i)));
    m.bias.push_back(static_cast<float>(w(dims)));
  }
  return m;
}

std::vector<std::vector<Point2f>> dlib_landmarks(DlibModels& models, const GreyView& grey,
                                                 const std::vector<FaceBox>& boxes) {
  if (!models.has_predictor) throw Error("landmarks requested but no landmark model was loaded");
  std::vector<std::vector<Point2f>> all;
  if (boxes.empty()) return all;
  // The predictor only reads pixels around each box but needs the whole image object.
  auto img = to_dlib(grey);
  for (const auto& box : boxes) {
    dlib::rectangle rect(std::lround(box.x0), std::lround(box.y0), std::lround(box.x1) - 1,
                         std::lround(box.y1) - 1);
    dlib::full_object_detection shape = models.predictor(img, rect);
    std::vector<Point2f> pts;
    pts.reserve(shape.num_parts());
    for (unsigned long i = 0; i < shape.num_parts(); ++i)
      pts.push_back({static_cast<float>(shape.part(i).x()), static_cast<float>(shape.part(i).y())});
    all.push_back(std::move(pts));
  }
  return all;
}

#else  // no dlib

struct DlibModels {};
bool dlib_compiled_in() { return false; }
static Error no_dlib() {
  return Error(
      "face detection is not available: this face2scene was built without dlib (install "
      "libdlib-dev and libdlib-data, then re-run cmake)");
}
std::shared_ptr<DlibModels> dlib_load(const std::string&) { throw no_dlib(); }
std::vector<RawDetection> dlib_hog_detect(DlibModels&, const GreyView&, float) { throw no_dlib(); }
HogModel dlib_hog_model(const DlibModels&) { throw no_dlib(); }
std::vector<std::vector<Point2f>> dlib_landmarks(DlibModels&, const GreyView&,
                                                 const std::vector<FaceBox>&) {
  throw no_dlib();
}

#endif

}  // namespace face2scene::detail
