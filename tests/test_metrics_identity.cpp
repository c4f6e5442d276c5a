// `face2scene metrics --refs`: identity similarity of predictions to reference faces (and to the
// ground truth's face), the --refs layouts, faceless images, and the fallback for aligned crops.
// Data: CelebRef-HQ identities 00001 and 00027 (faces/celebref_pairs), FFHQ-aligned 512x512.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/image.hpp"
#include "face2scene/tensor.hpp"
#include "faces_test_util.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
const std::string kA = "faces/celebref_pairs/instantrestore_00001";  // person A
const std::string kB = "faces/celebref_pairs/instantrestore_00027";  // person B

#define F2S_REQUIRE_IDENTITY()                                                                     \
  do {                                                                                             \
    F2S_REQUIRE_DATA(kA + "/refs");                                                                \
    F2S_REQUIRE_DATA(kB + "/refs");                                                                \
    F2S_REQUIRE_DETECTOR();                                                                        \
    if (!FaceDescriptor::available())                                                              \
      GTEST_SKIP() << "identity weights not installed (" << default_faceapi_weights_path() << ")"; \
  } while (0)

void copy(const std::string& rel, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(f2s_test::data_path(rel), to, fs::copy_options::overwrite_existing);
}

// metrics.csv as {image: {column: cell}}; cells stay strings so that empty ones can be checked.
std::map<std::string, std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  std::map<std::string, std::map<std::string, std::string>> rows;
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::stringstream ss(l);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    if (!l.empty() && l.back() == ',') cells.push_back("");
    return cells;
  };
  if (std::getline(in, line)) header = split(line);
  while (std::getline(in, line)) {
    const auto cells = split(line);
    for (size_t i = 1; i < header.size(); ++i)
      rows[cells[0]][header[i]] = i < cells.size() ? cells[i] : "";
  }
  return rows;
}

double num(const std::string& cell) {
  EXPECT_FALSE(cell.empty());
  return cell.empty() ? std::nan("") : std::stod(cell);
}
}  // namespace

TEST(MetricsIdentity, SamePersonReferencesScoreHigherThanAnotherPersons) {
  F2S_REQUIRE_IDENTITY();
  const std::string root = f2s_test::temp_dir("metrics_identity");
  // p1 and p2 are the same photo of A; p1's references are A (folder layout), p2's are B (files
  // named after the prediction). noface.png is flat and not square: no face, no fallback.
  copy(kA + "/gt.png", root + "/pred/p1.png");
  copy(kA + "/gt.png", root + "/pred/p2.png");
  Image flat(300, 200, 3, 8);
  std::fill(flat.data.begin(), flat.data.end(), uint16_t{128});
  write_image(root + "/pred/noface.png", flat);
  for (int k = 1; k <= 3; ++k) {
    copy(kA + "/refs/00001_" + std::to_string(k) + ".png",
         root + "/refs/p1/" + std::to_string(k) + ".png");
    copy(kB + "/refs/00027_" + std::to_string(k) + ".png",
         root + "/refs/p2_" + std::to_string(k) + ".png");
  }
  copy(kA + "/refs/00001_1.png", root + "/refs/noface.png");
  // The predictions are their own ground truth: id_sim_gt must be exactly 1. One torch thread:
  // on the shared 2-core machine two were several times slower for these 150x150 inputs.
  const auto r = f2s_test::run_cli("--threads 1 metrics --pred " + root + "/pred --gt " + root +
                                   "/pred --refs " + root + "/refs -m ssim --min-face 100 -o " +
                                   root + "/out");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = read_csv(root + "/out/metrics.csv");
  ASSERT_EQ(rows.size(), 3u) << r.output;
  const auto& p1 = rows.at("p1.png");
  const auto& p2 = rows.at("p2.png");
  // Measured: A vs mean(A refs) cosine 0.979, distance 0.32; A vs mean(B refs) 0.822, 0.91.
  EXPECT_GT(num(p1.at("id_sim_refs")), num(p2.at("id_sim_refs")) + 0.05);
  EXPECT_LT(num(p1.at("id_dist_refs")), 0.6);
  EXPECT_GT(num(p2.at("id_dist_refs")), 0.6);
  EXPECT_NEAR(num(p1.at("id_sim_gt")), 1.0, 1e-5);
  EXPECT_NEAR(num(p2.at("id_sim_gt")), 1.0, 1e-5);
  // No face: empty cells, a warning and a count, never a 0.
  const auto& nf = rows.at("noface.png");
  EXPECT_EQ(nf.at("id_sim_refs"), "");
  EXPECT_EQ(nf.at("id_dist_refs"), "");
  EXPECT_EQ(nf.at("id_sim_gt"), "");
  EXPECT_NE(r.output.find("noface.png: no face found"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| id_sim_refs ↑ | 2 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| id_dist_refs ↓ | 2 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| id_sim_gt ↑ | 2 | 1.0000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no face found in 1 of 3 predictions"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("References: per prediction"), std::string::npos) << r.output;
  f2s_test::remove_tree(root);
}

TEST(MetricsIdentity, OnePersonFolderServesEveryPrediction) {
  F2S_REQUIRE_IDENTITY();
  // refs/ holds 00001_{1,2,3}.png, none named after "gt": one person for all; no --gt and no -m
  // means identity only.
  const auto r =
      f2s_test::run_cli("-q --threads 1 metrics --pred " + f2s_test::data_path(kA + "/gt.png") +
                        " --refs " + f2s_test::data_path(kA + "/refs") + " --min-face 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("References: one person (3 images) for every prediction"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("| id_sim_refs ↑ | 1 | 0.9"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("psnr"), std::string::npos) << r.output;
}

TEST(MetricsIdentity, ClearErrors) {
  F2S_REQUIRE_DATA(kA + "/gt.png");
  const std::string root = f2s_test::temp_dir("metrics_identity_err");
  const std::string pred = f2s_test::data_path(kA + "/gt.png");
  fs::create_directories(root + "/empty");
  auto r = f2s_test::run_cli("-q metrics --pred " + pred + " --refs " + root + "/empty");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(root + "/empty: no reference images"), std::string::npos) << r.output;

  // Person folders (faces --refs-dir layout) that match no prediction are named in the error.
  fs::create_directories(root + "/people/alice");
  copy(kA + "/refs/00001_1.png", root + "/people/alice/1.png");
  r = f2s_test::run_cli("-q metrics --pred " + pred + " --refs " + root + "/people");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("sub-folders (alice) match no prediction"), std::string::npos)
      << r.output;

  // Per-prediction layout with a prediction left out.
  copy(kA + "/gt.png", root + "/pred/x.png");
  copy(kA + "/gt.png", root + "/pred/y.png");
  copy(kA + "/refs/00001_1.png", root + "/refs/x_1.png");
  r = f2s_test::run_cli("-q metrics --pred " + root + "/pred --refs " + root + "/refs");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no references for 1 of 2 predictions"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("y.png"), std::string::npos) << r.output;

  r = f2s_test::run_cli("-q metrics --pred " + pred + " --refs " + root + "/nothere");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nothere: no such file or folder (--refs)"), std::string::npos)
      << r.output;

  r = f2s_test::run_cli("-q metrics --pred " + pred + " --refs " + root +
                        "/refs/x_1.png --identity-weights " + root + "/none.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  if (face_detection_available()) {
    EXPECT_NE(r.output.find("none.safetensors: face descriptor weights not found"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("scripts/install_faceapi.sh"), std::string::npos) << r.output;
  } else {
    EXPECT_NE(r.output.find("built without dlib"), std::string::npos) << r.output;
  }
  // Each error is one line.
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  f2s_test::remove_tree(root);
}

TEST(MetricsIdentity, UndetectedSquareImageIsMeasuredAsAlignedCrop) {
  F2S_REQUIRE_IDENTITY();
  // One thread: on the shared 2-core machine, two torch threads were 7x slower than one here.
  torch::set_num_threads(1);
  auto net = std::make_shared<FaceDescriptor>(
      FaceDescriptor::load(default_faceapi_weights_path(), torch::kCPU));
  const DescriptorFn fn = make_descriptor_fn(net);
  const Image img = read_image(f2s_test::data_path(kA + "/gt.png"));
  // The direct fixed crop, as `face2scene identity --crop ffhq` takes it (less its 8-bit rounding).
  const auto direct =
      net->embed(crop_for_descriptor(image_to_tensor(img, torch::kCPU, torch::kFloat32, true)))[0];

  // A detector that looks only for faces bigger than the image finds none.
  DetectOptions blind;
  blind.min_face = 4000;
  blind.landmarks = false;
  const FaceDetector none(blind);
  const auto fallback = describe_image_identity(img, none, fn);
  EXPECT_EQ(fallback.source, "aligned-crop");
  EXPECT_EQ(fallback.detected, 0u);
  ASSERT_TRUE(fallback.descriptor.defined());
  EXPECT_LT((fallback.descriptor - direct).abs().max().item<float>(), 1e-3f);
  EXPECT_FALSE(
      describe_image_identity(img, none, fn, /*aligned_crop_fallback=*/false).descriptor.defined());
  Image wide(300, 200, 3, 8);
  std::fill(wide.data.begin(), wide.data.end(), uint16_t{90});
  const auto nothing = describe_image_identity(wide, none, fn);
  EXPECT_FALSE(nothing.descriptor.defined());
  EXPECT_EQ(nothing.source, "");

  // The detected face of this FFHQ-aligned photo lands close to the fixed crop.
  DetectOptions o;
  o.min_face = 100;
  const auto detected = describe_image_identity(img, FaceDetector(o), fn);
  EXPECT_EQ(detected.source, "detected");
  ASSERT_TRUE(detected.descriptor.defined());
  EXPECT_LT((detected.descriptor - direct).norm().item<float>(), 0.3f);
}
