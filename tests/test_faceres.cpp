// faceres, the training identity network (face2scene/faceres.hpp): shapes and TF "SAME" padding,
// strict loading, agreement with TF.js running Human's own graph (tests/fixtures/faceres/, made
// by scripts/faceres_reference.js), and that the identity-loss embedding tells people apart.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "face2scene/core.hpp"
#include "face2scene/faceres.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train_ref_fr.hpp"
#include "test_util.hpp"

using namespace face2scene;

namespace {

bool have_weights() { return file_exists(default_faceres_weights_path()); }

#define REQUIRE_WEIGHTS()                                                                                \
  do {                                                                                                  \
    if (!have_weights()) GTEST_SKIP() << default_faceres_weights_path() << " missing (scripts/install_models.sh)"; \
  } while (0)

nlohmann::json fixtures() {
  return nlohmann::json::parse(read_file(std::string(F2S_SOURCE_DIR) + "/tests/fixtures/faceres/reference.json"));
}

// The synthetic input of the fixture, as scripts/faceres_reference.js's maker wrote it: NHWC
// element i = 127.5 + 100 sin(0.001 i) cos(0.037 i). Returned NCHW.
torch::Tensor synthetic_input() {
  const int64_t n = 224 * 224 * 3;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(127.5 + 100.0 * std::sin(i * 0.001) * std::cos(i * 0.037));
  return torch::from_blob(v.data(), {1, 224, 224, 3}, torch::kFloat32).permute({0, 3, 1, 2}).contiguous();
}

// A face of the public-domain Solvay group photo (a 112x112 crop of examples/solvay_group.jpg,
// committed as PNG so no JPEG decoder is involved), the whole square in HSE's caffe convention.
torch::Tensor solvay_input() {
  auto img = image_to_tensor(read_image(std::string(F2S_SOURCE_DIR) + "/tests/fixtures/faceres/solvay_face.png").to_rgb(),
                             torch::kCPU, torch::kFloat32, true);
  FaceResCrop crop;  // whole square, 224 px, caffe
  return faceres_input(img, crop);
}

void expect_close(const torch::Tensor& got, const nlohmann::json& want, const std::string& what) {
  auto ref = torch::tensor(want.get<std::vector<float>>());
  ASSERT_EQ(got.numel(), ref.numel()) << what;
  auto g = got.flatten().to(torch::kFloat32).cpu();
  const double cos = (g * ref).sum().item<double>() / (g.norm() * ref.norm()).clamp_min(1e-12).item<double>();
  const double diff = (g - ref).abs().max().item<double>();
  EXPECT_GE(cos, 0.9999) << what;
  EXPECT_LT(diff, 1e-3 * std::max(1.0, ref.abs().max().item<double>())) << what << " max abs diff";
}

}  // namespace

TEST(FaceRes, ShapesAndSamePadding) {
  FaceRes net;
  net->eval();
  torch::NoGradGuard ng;
  auto out = net->forward(torch::rand({2, 3, 224, 224}));
  EXPECT_EQ(out.descriptor.sizes(), (std::vector<int64_t>{2, 1024}));
  EXPECT_EQ(out.age.sizes(), (std::vector<int64_t>{2, 100}));
  EXPECT_EQ(out.gender.sizes(), (std::vector<int64_t>{2, 1}));
  // ReLU6 features averaged: within [0, 6].
  EXPECT_GE(out.descriptor.min().item<float>(), 0.f);
  EXPECT_LE(out.descriptor.max().item<float>(), 6.f);
  // Odd and small sizes run (TF SAME: ceil(n / 2) at each stride-2 layer).
  EXPECT_EQ(net->forward(torch::rand({1, 3, 113, 97}), false).descriptor.sizes(), (std::vector<int64_t>{1, 1024}));
}

TEST(FaceRes, InputConventions) {
  auto x = torch::full({1, 3, 64, 64}, 0.5f);
  x[0][0].fill_(1.0f);  // red channel
  FaceResCrop c = faceres_centre_crop(0.5);
  c.size = 16;
  c.range = FaceResRange::kCaffe;
  auto y = faceres_input(x, c);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 3, 16, 16}));
  // caffe: BGR order, 0..255 minus the BGR means: channel 2 is red.
  EXPECT_NEAR(y[0][2][3][3].item<float>(), 255.f - 123.68f, 1e-3);
  EXPECT_NEAR(y[0][0][3][3].item<float>(), 127.5f - 103.939f, 1e-3);
  c.range = FaceResRange::kPm1;
  EXPECT_NEAR(faceres_input(x, c)[0][0][0][0].item<float>(), 1.f, 1e-6);
  EXPECT_THROW(parse_faceres_range("bgr"), ArgumentError);
  // A crop that leaves the frame replicates the border instead of failing.
  FaceResCrop big = faceres_centre_crop(1.4);
  big.size = 32;
  EXPECT_EQ(faceres_input(x, big).sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
}

TEST(FaceRes, StrictLoadNamesBadKeys) {
  const std::string dir = f2s_test::temp_dir("faceres");
  FaceRes net;
  auto sd = state_dict(*net);
  sd.erase("blocks.3.dw_scale");
  sd["blocks.3.extra"] = torch::zeros({2});
  const std::string path = dir + "/bad.safetensors";
  save_safetensors(path, sd, {{"arch", kFaceResArch}, {"version", kFaceResVersion}});
  try {
    load_faceres(path, torch::kCPU);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("blocks.3.dw_scale"), std::string::npos) << m;
    EXPECT_NE(m.find("blocks.3.extra"), std::string::npos) << m;
  }
  save_safetensors(path, state_dict(*net), {{"arch", "mobilefacenet"}, {"version", "1"}});
  EXPECT_THROW(load_faceres(path, torch::kCPU), FormatError);
  EXPECT_THROW(load_faceres(dir + "/missing.safetensors", torch::kCPU), IoError);
  f2s_test::remove_tree(dir);
}

TEST(FaceRes, MatchesTfjs) {
  REQUIRE_WEIGHTS();
  auto fx = fixtures();
  FaceRes net = load_faceres(default_faceres_weights_path(), torch::kCPU);
  torch::NoGradGuard ng;
  {
    auto out = net->forward(synthetic_input());
    const auto& want = fx["outputs"]["synthetic"];
    expect_close(out.descriptor, want["descriptor"], "synthetic descriptor");
    expect_close(out.age, want["age"], "synthetic age");
    expect_close(out.gender, want["gender"], "synthetic gender");
  }
  {
    auto x = solvay_input();
    auto out = net->forward(x);
    const auto& want = fx["outputs"]["solvay"];
    // The input itself first, so a resize change is told apart from a network change.
    EXPECT_NEAR(x.sum().item<double>(), fx["solvay_input_sum"].get<double>(), 1e-3 * x.numel());
    expect_close(out.descriptor, want["descriptor"], "solvay descriptor");
    expect_close(out.age, want["age"], "solvay age");
  }
}

// The identity-loss embedding on FFHQ-aligned London faces (neutral vs smiling photo of each
// person, read at 128 px as Ref-FR trains): for most of a handful of people, their other photo is
// nearer than every other person's; and the embedding is differentiable with respect to the faces.
TEST(FaceRes, IdentityEmbedSeparatesPeople) {
  REQUIRE_WEIGHTS();
  F2S_REQUIRE_DATA("faces/hq/london/001_neutral.jpg");
  auto embed = make_identity_embed(default_identity_weights(), torch::kCPU);
  const std::vector<std::string> ids{"001", "002", "003", "005", "006", "007", "008", "009"};
  auto load = [](const std::string& id, const std::string& kind) {
    auto t = image_to_tensor(read_image(f2s_test::data_path("faces/hq/london/" + id + "_" + kind + ".jpg")).to_rgb(),
                             torch::kCPU, torch::kFloat32, true);
    namespace F = torch::nn::functional;
    return F::interpolate(t.unsqueeze(0), F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{128, 128})
                                              .mode(torch::kBilinear)
                                              .align_corners(false)
                                              .antialias(true));
  };
  std::vector<torch::Tensor> a, b;
  for (const auto& id : ids) a.push_back(load(id, "neutral")), b.push_back(load(id, "smiling"));
  auto ea = embed(torch::cat(a));
  auto eb = embed(torch::cat(b));
  ASSERT_EQ(ea.sizes(), (std::vector<int64_t>{8, 1024}));
  EXPECT_NEAR(ea.norm(2, 1).min().item<float>(), 1.f, 1e-4);
  auto sim = torch::mm(ea, eb.t());  // [i][j]: neutral i vs smiling j
  int correct = 0;
  for (int64_t i = 0; i < sim.size(0); ++i) {
    auto row = sim[i].clone();
    const float same = row[i].item<float>();
    row[i] = -2;
    auto col = sim.select(1, i).clone();
    col[i] = -2;
    if (same > row.max().item<float>() && same > col.max().item<float>()) ++correct;
  }
  EXPECT_GE(correct, 6) << "people whose other photo was nearest: " << correct << " of 8\n" << sim;
  // Gradients reach the input (the frozen network is not detached).
  auto x = torch::cat(a).slice(0, 0, 2).clone().set_requires_grad(true);
  auto loss = 1 - (embed(x) * eb.slice(0, 0, 2)).sum(1).mean();
  loss.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}
