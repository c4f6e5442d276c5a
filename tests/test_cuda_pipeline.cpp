// Face2Scene::restore on CUDA must give what it gives on the CPU, end to end: Ref-FR, FaDeX, the
// scene restorer and the paste (with the fidelity mix, whose input face is cut on the CPU and
// resampled on the device). The GPU build has no dlib, so the faces come from a fixture: dlib's HOG
// + 68 landmarks on examples/solvay_group.jpg (tests/fixtures/solvay_group_faces.json), scaled
// with the photo.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "face2scene/image.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;
namespace F = torch::nn::functional;

namespace {

std::string src(const std::string& rel) { return std::string(F2S_SOURCE_DIR) + "/" + rel; }

bool file_ok(const std::string& p) { return std::ifstream(p).good(); }

// The example at ¼ size (area) and its fixture faces in that photo's pixels.
std::pair<Image, std::vector<DetectedFace>> quarter_example() {
  const Image full = read_image(src("examples/solvay_group.jpg"));
  const auto t = F::interpolate(image_to_tensor(full, torch::kCPU).unsqueeze(0),
                                F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{full.height / 4, full.width / 4})
                                    .mode(torch::kArea))[0];
  const Image small = tensor_to_image(t.clamp(0, 1), 8);
  std::vector<DetectedFace> faces;
  const auto j = nlohmann::json::parse(std::ifstream(src("tests/fixtures/solvay_group_faces.json")));
  for (const auto& f : j.at("faces")) {
    DetectedFace d;
    const auto b = f.at("box");
    d.box = {b[0].get<float>() / 4, b[1].get<float>() / 4, b[2].get<float>() / 4, b[3].get<float>() / 4};
    d.score = f.at("score").get<float>();
    d.detector = "fixture";
    for (size_t i = 0; i < 5; ++i)
      d.points5[i] = {f.at("points5")[i][0].get<float>() / 4, f.at("points5")[i][1].get<float>() / 4};
    d.has_points5 = true;
    faces.push_back(d);
  }
  return {small, faces};
}

}  // namespace

TEST(CudaPipeline, RestoreMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!file_ok(src("weights/ref_fr.safetensors")) || !file_ok(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3)))
    GTEST_SKIP() << "weights/ or the Real-ESRGAN base missing";
  torch::NoGradGuard ng;
  const auto [small, faces] = quarter_example();
  Face2SceneOptions o;
  o.measure_identity = false;
  o.faces = faces;
  o.blind_face_fidelity = 0.5;
  // The same faces on both devices: the second look needs dlib, which a GPU build may lack.
  o.second_look = false;
  std::map<std::string, torch::Tensor> out;
  for (const bool cuda : {false, true}) {
    Face2SceneConfig c;
    c.models_dir = src("weights");
    if (cuda) c.device = torch::Device(torch::kCUDA, 0);
    Face2Scene f2s(c);
    const auto r = f2s.restore(small, {}, o);
    EXPECT_GE(r.faces_restored, 8) << (cuda ? "cuda" : "cpu");
    out[cuda ? "cuda" : "cpu"] = image_to_tensor(r.image, torch::kCPU);
    if (cuda) {
      o.blind_face_fidelity = 0;
      out["cuda-w0"] = image_to_tensor(f2s.restore(small, {}, o).image, torch::kCPU);
      // Not a benchmark (one small photo, 12 faces, after the runs above warmed the kernels up):
      // what the mix adds to the paste stage, for the log.
      double with = 0, without = 0;
      for (int i = 0; i < 3; ++i) {
        o.blind_face_fidelity = 0.5;
        with += f2s.restore(small, {}, o).timings.paste / 3;
        o.blind_face_fidelity = 0;
        without += f2s.restore(small, {}, o).timings.paste / 3;
      }
      std::printf("CUDA paste stage (mean of 3): %.1f ms with the fidelity mix, %.1f ms without\n", 1e3 * with, 1e3 * without);
    }
  }
  ASSERT_EQ(out["cpu"].sizes(), out["cuda"].sizes());
  // TF32 convolutions and another order of sums: 8-bit outputs agree closely, not to the bit.
  const auto d = (out["cuda"] - out["cpu"]).abs();
  const double mean = d.mean().item<double>(), p999 = std::get<0>(d.flatten().kthvalue(d.numel() * 999 / 1000)).item<double>();
  std::printf("CUDA vs CPU: mean |diff| %.5f, 99.9th percentile %.4f, max %.4f\n", mean, p999, d.max().item<double>());
  EXPECT_LT(mean, 0.004);
  EXPECT_LT(p999, 0.06);
  // The fidelity mix ran on CUDA: without it the faces differ.
  EXPECT_GT((out["cuda"] - out["cuda-w0"]).abs().max().item<double>(), 0.05);
}
