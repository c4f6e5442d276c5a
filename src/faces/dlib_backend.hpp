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
// 68 points inside each box (view coordinates), one vector per box.
std::vector<std::vector<Point2f>> dlib_landmarks(DlibModels& models, const GreyView& grey,
                                                 const std::vector<FaceBox>& boxes);

}  // namespace face2scene::detail
