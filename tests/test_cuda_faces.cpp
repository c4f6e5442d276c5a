// Alignment and paste-back are pure torch: on CUDA they must give what the CPU gives.
#include <gtest/gtest.h>

#include <cmath>

#include "face2scene/faces.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/tensor.hpp"
#include "faces/hog_torch.hpp"
#include "faces_test_util.hpp"

using namespace face2scene;

TEST(CudaFaces, AlignAndPasteMatchCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto gen = make_generator(7, torch::kCPU);
  auto img = torch::rand({3, 700, 900}, gen);
  FivePoints pts = ffhq_template(512);
  Similarity m;  // template -> photo: a rotated face about 150 px wide
  m.a = 0.3 * std::cos(0.2);
  m.b = 0.3 * std::sin(0.2);
  m.tx = 300;
  m.ty = 250;
  for (auto& p : pts) p = m.apply(p);
  auto cpu = align_face(img, pts, 512);
  auto gpu = align_face(img.to(torch::kCUDA), pts, 512);
  ASSERT_TRUE(gpu.image.is_cuda());
  EXPECT_LT((gpu.image.cpu() - cpu.image).abs().max().item<float>(), 1e-4f);
  auto face = 1.0 - cpu.image;  // any "restored" face
  auto pc = paste_face(img, face, cpu.transform);
  auto pg = paste_face(img.to(torch::kCUDA), face.to(torch::kCUDA), gpu.transform);
  ASSERT_TRUE(pg.is_cuda());
  EXPECT_LT((pg.cpu() - pc).abs().max().item<float>(), 1e-4f);
}

// The pipeline pastes on the scene restorer's device (OracleRestorer::restore_on_device): the
// seamless paste's membrane fill (solved on the CPU at 48²) must give on CUDA what it gives on the CPU.
TEST(CudaFaces, SeamlessPasteMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto gen = make_generator(11, torch::kCPU);
  auto face = torch::rand({3, 384, 384}, gen);
  auto scene = (face * 0.8 + 0.15).clamp(0, 1);
  auto cpu = seamless_paste_face(face, scene);
  auto gpu = seamless_paste_face(face.to(torch::kCUDA), scene.to(torch::kCUDA));
  ASSERT_TRUE(gpu.is_cuda());
  EXPECT_LT((gpu.cpu() - cpu).abs().max().item<float>(), 1e-4f);
}

// hog-torch, the GPU's face detector: on CUDA it must find what it finds on the CPU and what
// dlib finds (boxes identical, scores within rounding). Needs dlib (its filters) and the landmark
// model ($F2S_FACE_MODELS on the GPU machine: scripts/gpu/pipeline_speed.sh stages both).
TEST(CudaFaces, TorchHogMatchesCpuAndDlib) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  F2S_REQUIRE_DETECTOR();
  const Image img = read_image(std::string(F2S_SOURCE_DIR) + "/examples/solvay_group.jpg");
  DetectOptions o;
  o.min_face = 12;
  o.detector = "hog";
  o.ssd = "off";  // HOG on both devices (the SSD has tests of its own)
  const auto dlib_faces = FaceDetector(o).detect(img);
  o.detector = "hog-torch";
  const auto cpu = FaceDetector(o).detect(img);
  o.device = torch::kCUDA;
  o.detector = "auto";  // hog-torch on CUDA
  const FaceDetector gpu_det(o);
  EXPECT_EQ(gpu_det.options().detector, "hog-torch");
  const auto gpu = gpu_det.detect(img);
  ASSERT_GE(dlib_faces.size(), 10u);
  ASSERT_EQ(gpu.size(), cpu.size());
  ASSERT_EQ(gpu.size(), dlib_faces.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    EXPECT_GT(box_iou(gpu[i].box, cpu[i].box), 0.99f) << i;
    EXPECT_NEAR(gpu[i].score, cpu[i].score, 1e-3f) << i;
    EXPECT_GT(box_iou(gpu[i].box, dlib_faces[i].box), 0.9f) << i;
    EXPECT_NEAR(gpu[i].score, dlib_faces[i].score, 0.06f) << i;
  }
}

// The fHOG features alone, on a random image: CUDA = CPU.
TEST(CudaFaces, FhogFeaturesMatchCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto gen = make_generator(3, torch::kCPU);
  auto img = (torch::rand({203, 157}, gen) * 255).round();
  auto cpu = face2scene::detail::fhog_features(img);
  auto gpu = face2scene::detail::fhog_features(img.to(torch::kCUDA));
  ASSERT_EQ(cpu.sizes(), gpu.sizes());
  EXPECT_EQ(cpu.size(0), 31);
  EXPECT_LT((gpu.cpu() - cpu).abs().max().item<float>(), 1e-4f);
}
