// The SSD MobileNet v1 face detector (face-api's, ported to LibTorch) against face-api's own
// network run by TensorFlow.js (tests/fixtures/ssd/, made by scripts/faceapi_reference.js --ssd),
// and FaceDetector's use of it beside HOG.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "face2scene/core.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "models/ssd_mobilenet.hpp"
#include "test_util.hpp"

using namespace face2scene;

namespace {

std::string fixture(const std::string& name) { return std::string(F2S_SOURCE_DIR) + "/tests/fixtures/ssd/" + name; }

SsdMobilenetV1 load_net() {
  const auto st = load_safetensors(default_ssd_weights_path());
  check_arch(st, kSsdMobilenetArch, default_ssd_weights_path());
  SsdMobilenetV1 net;
  load_state_dict_strict(*net, st.tensors, default_ssd_weights_path());
  net->eval();
  return net;
}

}  // namespace

// Every face TF.js finds with probability >= 0.1 in a 512² crop of the Solvay photo is found here
// with the same box (IoU > 0.99) and probability (within 0.005), after the same suppression.
TEST(SsdMobilenet, MatchesFaceApiOnTensorFlowJs) {
  if (!file_exists(default_ssd_weights_path()))
    GTEST_SKIP() << "SSD weights not installed (" << default_ssd_weights_path() << "); run scripts/install_faceapi.sh";
  auto net = load_net();
  const Image img = read_image(fixture("solvay_crop512.png"));
  ASSERT_EQ(img.width, 512);
  auto x = image_to_tensor(img, torch::kCPU, torch::kFloat32);
  if (x.size(0) == 1) x = x.repeat({3, 1, 1});
  torch::NoGradGuard no_grad;
  const auto out = net->forward((x * 255).round().unsqueeze(0));
  const auto scores = out.scores[0], boxes = out.boxes[0] * 512;
  // face-api's suppression: by decreasing score, drop a box overlapping a kept one by IoU > 0.5.
  const auto order = std::get<1>(scores.sort(0, true));
  std::vector<std::pair<FaceBox, float>> kept;
  for (int64_t i = 0; i < order.size(0); ++i) {
    const int64_t j = order[i].item<int64_t>();
    const float p = scores[j].item<float>();
    if (p < 0.05f) break;
    const auto b = boxes[j].clamp(0, 512);
    const FaceBox fb{b[0].item<float>(), b[1].item<float>(), b[2].item<float>(), b[3].item<float>()};
    bool dup = false;
    for (const auto& k : kept) dup = dup || box_iou(fb, k.first) > 0.5f;
    if (!dup) kept.emplace_back(fb, p);
  }
  const auto ref = nlohmann::json::parse(read_file(fixture("solvay_crop512_tfjs.json")))["detections"];
  int checked = 0;
  for (const auto& d : ref) {
    const float p = d["score"].get<float>();
    if (p < 0.1f) continue;
    const FaceBox rb{d["box"][0].get<float>(), d["box"][1].get<float>(), d["box"][2].get<float>(), d["box"][3].get<float>()};
    float best = 0, dp = 1;
    for (const auto& k : kept) {
      const float iou = box_iou(rb, k.first);
      if (iou > best) best = iou, dp = std::abs(k.second - p);
    }
    EXPECT_GT(best, 0.99f) << "reference face at " << rb.x0 << "," << rb.y0 << " p " << p;
    EXPECT_LT(dp, 0.005f) << "reference face at " << rb.x0 << "," << rb.y0 << " p " << p;
    ++checked;
  }
  EXPECT_GE(checked, 6);
}

namespace {

// The example photo (Solvay 1927, public domain) turned by `deg` counter-clockwise about its centre
// on a grey canvas large enough to hold all of it (bilinear).
Image turned_example(double deg) {
  namespace F = torch::nn::functional;
  const auto x = image_to_tensor(read_image(std::string(F2S_SOURCE_DIR) + "/examples/solvay_group.jpg"), torch::kCPU, torch::kFloat32);
  const int64_t H = x.size(1), W = x.size(2);
  const double a = deg * M_PI / 180, ca = std::cos(a), sa = std::sin(a);
  const int64_t S = static_cast<int64_t>(std::ceil(std::hypot(double(H), double(W))));
  const auto ys = torch::arange(S, torch::kFloat64).view({-1, 1}).expand({S, S}) - (S - 1) / 2.0;
  const auto xs = torch::arange(S, torch::kFloat64).view({1, -1}).expand({S, S}) - (S - 1) / 2.0;
  // Output pixel p shows the source at R(a)·p (about the centres): with y down the photo turns
  // counter-clockwise as seen, as PIL's rotate(deg) turns it, and faces' eyes' line reads −deg.
  const auto sx = ca * xs - sa * ys + (W - 1) / 2.0, sy = sa * xs + ca * ys + (H - 1) / 2.0;
  const auto grid = torch::stack({(2 * sx + 1) / W - 1, (2 * sy + 1) / H - 1}, 2).unsqueeze(0).to(torch::kFloat32);
  auto src = x.unsqueeze(0) - 0.5;  // zeros padding = grey canvas
  auto out = F::grid_sample(src, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false)) + 0.5;
  if (out.size(1) == 1) out = out.repeat({1, 3, 1, 1});
  return tensor_to_image(out[0].clamp(0, 1), 8);
}

DetectOptions with_ssd(const std::string& ssd) {
  DetectOptions d;
  d.ssd = ssd;
  return d;
}

double eye_angle_deg(const DetectedFace& f) {
  return std::atan2(double(f.points5[1].y - f.points5[0].y), double(f.points5[1].x - f.points5[0].x)) * 180 / M_PI;
}

}  // namespace

// The SSD alone (HOG's threshold out of reach) on the example photo: it finds the 12 faces HOG
// finds (12 of 12 when written), framed as HOG frames them (the landmarks' five points within 15 %
// of the eyes' distance of HOG's), each with a score that is the logit of a probability >= 0.5.
// Turned 45°, the faces it finds get landmarks that follow the tilt, since the predictor is run in
// turned crops: 4 of 5 eyes' lines within 15° of −45° when written (−44, −51, −48, −39, 23);
// fitted upright alone they read near 0°, 9° or −27°.
TEST(SsdDetector, FindsTheFacesHogFindsFramedAsHogFramesThem) {
  if (!face_detection_available()) GTEST_SKIP() << "built without dlib";
  if (!file_exists(default_ssd_weights_path())) GTEST_SKIP() << "SSD weights not installed; run scripts/install_faceapi.sh";
  const Image photo = read_image(std::string(F2S_SOURCE_DIR) + "/examples/solvay_group.jpg");
  DetectOptions none = with_ssd("auto");
  none.min_score = 100.f;  // no HOG face
  const FaceDetector hog(with_ssd("off")), ssd(none);
  ASSERT_FALSE(hog.has_ssd());
  ASSERT_TRUE(ssd.has_ssd());
  const auto h = hog.detect(photo);
  const auto s = ssd.detect(photo);
  ASSERT_EQ(h.size(), 12u);
  int matched = 0;
  for (const auto& f : s) {
    EXPECT_EQ(f.detector, "ssd");
    EXPECT_GE(f.score, 0.f);
    ASSERT_TRUE(f.has_points5);
    for (const auto& g : h) {
      if (box_iou(f.box, g.box) < 0.3f) continue;
      ++matched;
      const double iod = std::hypot(g.points5[1].x - g.points5[0].x, g.points5[1].y - g.points5[0].y);
      double err = 0;
      for (int k = 0; k < 5; ++k) err += std::hypot(f.points5[k].x - g.points5[k].x, f.points5[k].y - g.points5[k].y) / 5;
      EXPECT_LT(err / iod, 0.15) << "face at " << g.box.x0 << "," << g.box.y0;
    }
  }
  EXPECT_GE(matched, 11) << "of HOG's 12 faces";
  EXPECT_EQ(ssd.detect(photo, ssd.options().min_face, false).size(), 0u) << "ssd = false: HOG alone";

  const Image turned = turned_example(45);
  const auto t = ssd.detect(turned);
  int tilted = 0;
  std::string angles;
  for (const auto& f : t) tilted += std::abs(eye_angle_deg(f) + 45) < 15, angles += " " + std::to_string(std::lround(eye_angle_deg(f)));
  EXPECT_GE(t.size(), 4u);
  EXPECT_GE(tilted, 3) << angles << ": " << tilted << " of " << t.size() << " faces with the eyes' line within 15° of the tilt";

  // The SSD reads colour from a tensor when HOG is given the grey photo (the pipeline's second
  // look): the same faces.
  const auto colour = image_to_tensor(photo, torch::kCPU, torch::kFloat32).expand({3, -1, -1});
  const auto via_tensor = ssd.detect(photo, ssd.options().min_face, colour.contiguous());
  ASSERT_EQ(via_tensor.size(), s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_NEAR(via_tensor[i].box.x0, s[i].box.x0, 0.5);
    EXPECT_NEAR(via_tensor[i].box.y0, s[i].box.y0, 0.5);
  }
}
