// Identity descriptor: architecture, TF.js weight decoding, crop geometry, and agreement with
// face-api's own network run by TensorFlow.js (reference vectors in tests/fixtures/identity/).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "models/face_recognition_net.hpp"
#include "test_util.hpp"

using namespace face2scene;

namespace {
nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }
}  // namespace

TEST(FaceRecognitionNet, ShapesAndParameterNamesMatchFaceApi) {
  FaceRecognitionNet net;
  auto sd = state_dict(*net);
  // face-api's manifest lists 117 tensors: 29 conv layers x 4 (filters, bias, scale w/b) + fc.
  EXPECT_EQ(sd.size(), 117u);
  EXPECT_EQ(sd.at("conv32_down.conv.weight").sizes(), (std::vector<int64_t>{32, 3, 7, 7}));
  EXPECT_EQ(sd.at("conv64_down.conv1.conv.weight").sizes(), (std::vector<int64_t>{64, 32, 3, 3}));
  EXPECT_EQ(sd.at("conv256_down_out.conv2.scale.bias").sizes(), (std::vector<int64_t>{256}));
  EXPECT_EQ(sd.at("fc.weight").sizes(), (std::vector<int64_t>{128, 256}));
  int64_t n = 0;
  for (const auto& [k, v] : sd) n += v.numel();
  // Bytes of the uint8-quantised face_recognition_model.bin minus its 8 float32 tensors' extra
  // bytes: 6444032 = n + 3 * (float32 elements); checked for real in the fixture test below.
  EXPECT_GT(n, 5000000);
  EXPECT_LT(n, 6444032);
  torch::NoGradGuard ng;
  net->eval();
  auto out = net->forward(torch::rand({2, 3, 150, 150}) * 255);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 128}));
}

TEST(FaceRecognitionNet, ReadsQuantisedTfjsWeightsLikeTfjs) {
  // A two-tensor manifest: uint8 with scale/min, and plain float32; expected values by hand.
  const std::string dir = f2s_test::temp_dir("faceapi_weights");
  nlohmann::json m = nlohmann::json::array();
  m.push_back({{"paths", {"w.bin"}},
               {"weights",
                {{{"name", "conv32_down/conv/filters"}, {"shape", {1, 1, 2, 3}}, {"dtype", "float32"},
                  {"quantization", {{"dtype", "uint8"}, {"scale", 0.5}, {"min", -1.0}}}},
                 {{"name", "conv32_down/conv/bias"}, {"shape", {2}}, {"dtype", "float32"}}}}});
  write_file_atomically(dir + "/m.json", m.dump());
  std::string bin = {0, 1, 2, 3, 4, 5};  // HWIO [1,1,2,3]: in=2, out=3
  float f[2] = {1.5f, -2.25f};
  bin.append(reinterpret_cast<const char*>(f), sizeof f);
  write_file_atomically(dir + "/w.bin", bin);
  auto t = read_faceapi_recognition_weights(dir + "/m.json");
  ASSERT_TRUE(t.count("conv32_down.conv.weight"));
  auto w = t.at("conv32_down.conv.weight");  // OIHW [3,2,1,1]
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{3, 2, 1, 1}));
  // HWIO element (i, o) = q[i*3+o] * 0.5 - 1.
  for (int i = 0; i < 2; ++i)
    for (int o = 0; o < 3; ++o) EXPECT_FLOAT_EQ(w[o][i][0][0].item<float>(), (i * 3 + o) * 0.5f - 1.0f);
  EXPECT_FLOAT_EQ(t.at("conv32_down.conv.bias")[1].item<float>(), -2.25f);
  // A truncated shard is an error naming the file.
  write_file_atomically(dir + "/w.bin", bin.substr(0, 7));
  EXPECT_THROW(read_faceapi_recognition_weights(dir + "/m.json"), FormatError);
}

TEST(FaceDescriptorCrop, FfhqEyesLandOnDlibChipEyes) {
  // White dots at FFHQ-512 template eye centres must land where dlib's 150x150 chip (padding
  // 0.25) puts the eye-corner midpoints: x = (0.25 + 0.2273) / 1.5 * 150 = 47.7 and
  // (0.25 + 0.7528) / 1.5 * 150 = 100.3, y = (0.25 + 0.2213) / 1.5 * 150 = 47.1.
  auto img = torch::zeros({3, 512, 512});
  img.index_put_({torch::indexing::Slice(), torch::indexing::Slice(237, 243), torch::indexing::Slice(190, 196)}, 1.0);
  img.index_put_({torch::indexing::Slice(), torch::indexing::Slice(237, 243), torch::indexing::Slice(316, 322)}, 1.0);
  auto c = crop_for_descriptor(img)[0][0];
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{150, 150}));
  auto centroid = [&](int x_from, int x_to) {
    auto part = c.index({torch::indexing::Slice(), torch::indexing::Slice(x_from, x_to)});
    auto ys = torch::arange(150, torch::kFloat32).view({150, 1}) + 0.5;
    auto xs = torch::arange(x_from, x_to, torch::kFloat32).view({1, -1}) + 0.5;
    const double s = part.sum().item<double>();
    return std::make_pair((part * xs).sum().item<double>() / s, (part * ys).sum().item<double>() / s);
  };
  auto [lx, ly] = centroid(0, 75);
  auto [rx, ry] = centroid(75, 150);
  EXPECT_NEAR(lx, 47.7, 1.0);
  EXPECT_NEAR(rx, 100.3, 1.0);
  EXPECT_NEAR(ly, 47.1, 1.0);
  EXPECT_NEAR(ry, 47.1, 1.0);
}

TEST(FaceDescriptorCrop, LfwCentreCropIsExactPixels) {
  auto img = torch::rand({3, 250, 250});
  auto c = crop_lfw_deepfunneled(img, 150, 0);
  auto ref = img.index({torch::indexing::Slice(), torch::indexing::Slice(50, 200), torch::indexing::Slice(50, 200)});
  // Pixel centres coincide, so only float rounding of the sampling grid is left (<< 1/255).
  EXPECT_LT((c[0] - ref).abs().max().item<float>(), 1e-3f);
}

TEST(IdentitySimilarity, IsCosine) {
  auto a = torch::tensor({1.0f, 0.0f, 0.0f}), b = torch::tensor({1.0f, 1.0f, 0.0f});
  EXPECT_NEAR(identity_similarity(a, b), 1.0 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(identity_similarity(a, a * 3), 1.0, 1e-6);
}

TEST(FaceDescriptor, MissingWeightsIsAClearError) {
  try {
    FaceDescriptor::load("/nonexistent/faceapi.safetensors", torch::kCPU);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("install_faceapi.sh"), std::string::npos);
  }
}

// The port against face-api in TF.js. Skips without the converted weights (install them with
// scripts/install_faceapi.sh) or without the shared faces.
TEST(FaceDescriptor, MatchesFaceApiTfjsReference) {
  const std::string weights = default_faceapi_weights_path();
  if (!FaceDescriptor::available(weights)) {
    GTEST_SKIP() << "face descriptor weights not installed (" << weights << "); run scripts/install_faceapi.sh";
  }
  F2S_REQUIRE_DATA("faces/other");
  auto fixtures = read_json(std::string(F2S_SOURCE_DIR) + "/tests/fixtures/identity/faceapi_reference.json");
  auto desc = FaceDescriptor::load(weights, torch::kCPU);
  int checked = 0;
  std::vector<torch::Tensor> ours;
  for (const auto& face : fixtures["faces"]) {
    const std::string rel = face["file"];
    SCOPED_TRACE(rel);
    ASSERT_TRUE(f2s_test::have_data(rel)) << "missing " << rel;
    auto t = image_to_tensor(read_image(f2s_test::data_path(rel)).to_rgb(), torch::kCPU, torch::kFloat32, true);
    auto crop = face["crop"] == "ffhq" ? crop_for_descriptor(t) : crop_lfw_deepfunneled(t, face["lfw_crop"].get<int>(), 0);
    auto u8 = (crop.clamp(0, 1) * 255).round();
    // Same pixels as the ones TF.js saw (else the crop or the decoder changed, not the net).
    EXPECT_EQ(u8.sum().item<double>(), face["input_sum"].get<double>());
    auto d = desc.embed(u8 / 255).squeeze(0);
    auto ref = torch::tensor(face["descriptor"].get<std::vector<float>>());
    const float cos = identity_similarity(d, ref);
    EXPECT_GE(cos, 0.999f);
    std::printf("  %-60s cosine to TF.js %.7f  max |diff| %.2e\n", rel.c_str(), cos, (d - ref).abs().max().item<float>());
    EXPECT_LT((d - ref).abs().max().item<float>(), 1e-3f);  // fp16-stored weights: ~3e-4
    ours.push_back(d);
    ++checked;
  }
  EXPECT_GE(checked, 5);
  // Sanity of the metric itself: the two Abdullah_Gul photos are one person (dlib distance < 0.6).
  auto it = std::find_if(fixtures["faces"].begin(), fixtures["faces"].end(),
                         [](const auto& f) { return f["file"].template get<std::string>().find("Abdullah_Gul_0001") != std::string::npos; });
  if (it != fixtures["faces"].end()) {
    const size_t i = static_cast<size_t>(it - fixtures["faces"].begin());
    ASSERT_LT(i + 1, ours.size());
    EXPECT_LT((ours[i] - ours[i + 1]).norm().item<float>(), 0.6f);
  }
}

// Batching does not change a face's descriptor; other input sizes are resized.
TEST(FaceDescriptor, LoadsThroughRandomInputConsistently) {
  const std::string weights = default_faceapi_weights_path();
  if (!FaceDescriptor::available(weights)) GTEST_SKIP() << "weights not installed; run scripts/install_faceapi.sh";
  auto desc = FaceDescriptor::load(weights, torch::kCPU);
  torch::manual_seed(1);
  auto x = torch::rand({2, 3, 150, 150});
  auto batch = desc.embed(x);
  auto single = desc.embed(x[1]);
  EXPECT_LT((batch[1] - single[0]).abs().max().item<float>(), 1e-5f);
  // Resizing path: 300x300 input is accepted.
  EXPECT_EQ(desc.embed(torch::rand({1, 3, 300, 300})).sizes(), (std::vector<int64_t>{1, 128}));
}
