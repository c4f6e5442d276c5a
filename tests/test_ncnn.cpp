// The ncnn reader against facts stated outside the code: the SqueezeNet files' SOURCES.md counts
// and hand-written .param/.bin snippets whose bytes are built here.
#include <gtest/gtest.h>

#include <cstring>

#include "face2scene/core.hpp"
#include "face2scene/ncnn.hpp"
#include "test_util.hpp"

namespace ncnn = face2scene::ncnn;

namespace {
std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string f32(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string f16(uint16_t bits) { return std::string(reinterpret_cast<const char*>(&bits), 2); }
}  // namespace

TEST(Ncnn, ParsesParamsAndArrays) {
  const std::string param =
      "7767517\n3 3\n"
      "Input in0 0 1 data\n"
      "Convolution conv 1 1 data c 0=2 1=1 5=1 6=2 9=2 -23310=1,2.000000e-01\n"
      "Eltwise add 2 1 c data out 0=1 -23301=2,2.0e-01,1.0\n";
  auto m = ncnn::parse_param(param, "t.param");
  ASSERT_EQ(m.layers.size(), 3u);
  const auto& conv = m.layer("conv");
  EXPECT_EQ(conv.inputs, std::vector<std::string>{"data"});
  EXPECT_EQ(conv.outputs, std::vector<std::string>{"c"});
  EXPECT_EQ(conv.get_int(0, -1), 2);
  EXPECT_EQ(conv.get_int(9, -1), 2);
  ASSERT_EQ(conv.get_array(10).size(), 1u);
  EXPECT_FLOAT_EQ(conv.get_array(10)[0], 0.2f);
  EXPECT_TRUE(conv.params.at(10).is_array);
  const auto add = m.layer("add").get_array(1);
  ASSERT_EQ(add.size(), 2u);
  EXPECT_FLOAT_EQ(add[1], 1.0f);

  // Weights: conv fp16 [2 values: 1.0 (0x3C00), -2.0 (0xC000)] + fp32 bias [0.5, -0.25].
  std::string bin = u32(0x01306B47u) + f16(0x3C00) + f16(0xC000) + f32(0.5f) + f32(-0.25f);
  ncnn::read_weights(m, bin, "t.bin");
  const auto& w = m.layer("conv").weights;
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].stored_as, "fp16");
  EXPECT_FLOAT_EQ(w[0].data[1].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(w[1].data[1].item<float>(), -0.25f);
  EXPECT_EQ(ncnn::conv_weight(m.layer("conv")).sizes(), (std::vector<int64_t>{2, 1, 1, 1}));

  // fp32 storage (zero tag) reads the same layout.
  std::string bin32 = u32(0) + f32(1.0f) + f32(-2.0f) + f32(0.5f) + f32(-0.25f);
  ncnn::read_weights(m, bin32, "t32.bin");
  EXPECT_EQ(m.layer("conv").weights[0].stored_as, "fp32");
  EXPECT_FLOAT_EQ(m.layer("conv").weights[0].data[1].item<float>(), -2.0f);

  // Truncated and over-long files are errors naming the file.
  EXPECT_THROW(ncnn::read_weights(m, bin.substr(0, bin.size() - 1), "t.bin"), face2scene::FormatError);
  EXPECT_THROW(ncnn::read_weights(m, bin + "xxxx", "t.bin"), face2scene::FormatError);
}

TEST(Ncnn, RejectsBrokenParam) {
  EXPECT_THROW(ncnn::parse_param("123\n", "x"), face2scene::FormatError);
  EXPECT_THROW(ncnn::parse_param("7767517\n2 2\nInput in 0 1 data\n", "x"), face2scene::FormatError);
  EXPECT_THROW(ncnn::parse_param("7767517\n1 1\nConvolution c 1 1 a\n", "x"), face2scene::FormatError);
  EXPECT_THROW(ncnn::parse_param("7767517\n1 1\nInput in 0 1 d -23300=3,1,2\n", "x"), face2scene::FormatError);
}

TEST(Ncnn, SqueezeNetCountsMatchSources) {
  const std::string dir = "weights/squeezenet1_1_torchvision_ncnn_fp16/";
  F2S_REQUIRE_DATA(dir + "squeezenet_v1.1.ncnn.param");
  auto m = ncnn::load(f2s_test::data_path(dir + "squeezenet_v1.1.ncnn.param"),
                      f2s_test::data_path(dir + "squeezenet_v1.1.ncnn.bin"));
  // SOURCES.md: 26 convolutions, 1,231,552 fp16 weights and 3,944 fp32 biases.
  auto convs = m.layers_of_type("Convolution");
  ASSERT_EQ(convs.size(), 26u);
  int64_t w = 0, b = 0;
  for (const auto* c : convs) {
    EXPECT_EQ(c->weights.at(0).stored_as, "fp16") << c->name;
    w += c->weights.at(0).data.numel();
    b += c->weights.at(1).data.numel();
  }
  EXPECT_EQ(w, 1231552);
  EXPECT_EQ(b, 3944);
  EXPECT_EQ(ncnn::conv_weight(*convs[0]).sizes(), (std::vector<int64_t>{64, 3, 3, 3}));
  // Trained weights: finite and not all tiny.
  auto first = ncnn::conv_weight(*convs[0]);
  EXPECT_TRUE(torch::isfinite(first).all().item<bool>());
  EXPECT_GT(first.abs().max().item<float>(), 0.1f);
}
