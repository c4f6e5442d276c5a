// Internal: the only door to dlib. Plain types in, plain types out, so that dlib's heavy headers
// stay in dlib_backend.cpp (one translation unit) and never reach the public headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "face2scene/faces.hpp"

namespace face2scene::detail {

struct RawDetection {
  FaceBox box;
  float score = 0.f;
  int pose = 0;  // which of HOG's filters fired (0 frontal, 1/2 profile-ish, 3/4 rotated)
};

// A grey 8-bit view, row-major, stride = width.
struct GreyView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
};

struct DlibModels;
bool dlib_compiled_in();
// predictor_path empty: detector only. Throws Error when the file cannot be read.
std::shared_ptr<DlibModels> dlib_load(const std::string& predictor_path);
// HOG detections with score >= threshold, in the view's pixel coordinates.
std::vector<RawDetection> dlib_hog_detect(DlibModels& models, const GreyView& grey, float threshold);
// The HOG detector's linear filters and scan parameters as plain numbers, so that another
// implementation of the same scan (hog_torch.cpp, on a GPU) uses exactly dlib's trained model.
struct HogModel {
  int filters = 0, planes = 0, rows = 0, cols = 0;  // filters x planes x rows x cols weights
  std::vector<float> weights;                        // row-major in that order
  std::vector<float> bias;                           // per filter: a window scores w.x - bias
  int cell_size = 8;
  int min_layer = 64;      // pyramid levels stop below this side
  double nms_iou = 0.5;    // dlib's test_box_overlap: IoU against the bounding box of both,
  double nms_covered = 1;  // or this fraction of either box covered
};
HogModel dlib_hog_model(const DlibModels& models);
// 68 points inside each box (view coordinates), one vector per box.
std::vector<std::vector<Point2f>> dlib_landmarks(DlibModels& models, const GreyView& grey,
                                                 const std::vector<FaceBox>& boxes);

}  // namespace face2scene::detail
