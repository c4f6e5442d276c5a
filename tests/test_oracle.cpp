#include <gtest/gtest.h>

#include <cmath>

#include "face2scene/core.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/safetensors.hpp"
#include "test_util.hpp"

using namespace face2scene;

TEST(Attention, MatchesPerHeadLoop) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 5, 8}), k = torch::randn({2, 7, 8}), v = torch::randn({2, 7, 8});
  auto out = multi_head_attention(q, k, v, 2);
  // Independent form: loop over heads, softmax(q k^T / sqrt(d)) v on slices.
  std::vector<torch::Tensor> heads;
  for (int h = 0; h < 2; ++h) {
    auto qs = q.slice(2, 4 * h, 4 * h + 4), ks = k.slice(2, 4 * h, 4 * h + 4), vs = v.slice(2, 4 * h, 4 * h + 4);
    auto a = torch::softmax(torch::bmm(qs, ks.transpose(1, 2)) / 2.0, -1);
    heads.push_back(torch::bmm(a, vs));
  }
  auto ref = torch::cat(heads, 2);
  EXPECT_LT((out - ref).abs().max().item<float>(), 1e-5);
  EXPECT_THROW(multi_head_attention(q, k, v, 3), ArgumentError);
}

TEST(FaDeX, ShapesAndNormalisedCode) {
  FaDeXOptions o;
  o.in_size = 64;
  o.width = 16;
  o.code_dim = 32;
  o.code_grid = 8;
  FaDeX net(o);
  auto lq = torch::rand({3, 3, 16, 16});  // a x4-downscaled face: resized inside
  auto hq = torch::rand({3, 3, 64, 64});
  auto out = net->forward(lq, hq);
  EXPECT_EQ(out.code_map.sizes(), (std::vector<int64_t>{3, 32, 8, 8}));
  EXPECT_EQ(out.code.sizes(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(out.params.sizes(), (std::vector<int64_t>{3, 44}));
  EXPECT_LT((out.code.norm(2, 1) - 1).abs().max().item<float>(), 1e-5);
  EXPECT_THROW(net->forward(lq, torch::rand({3, 3, 32, 32})), ArgumentError);
}

TEST(MapNet, TwentyOneTokensAndNullTokens) {
  MapNetOptions o;
  o.code_dim = 32;
  o.embed_dim = 32;
  o.token_dim = 48;
  MapNet net(o);
  EXPECT_EQ(net->num_tokens(), 21);
  auto tokens = net->forward(torch::randn({2, 32, 8, 8}));
  EXPECT_EQ(tokens.sizes(), (std::vector<int64_t>{2, 21, 48}));
  EXPECT_EQ(net->null_tokens(5).sizes(), (std::vector<int64_t>{5, 21, 48}));
  // The 1x1 token must see the whole code: changing one corner of the code changes it.
  auto code = torch::randn({1, 32, 8, 8});
  auto a = net->forward(code);
  auto code2 = code.clone();
  code2.index_put_({0, torch::indexing::Slice(), 7, 7}, 5.0);
  auto b = net->forward(code2);
  EXPECT_GT((a[0][0] - b[0][0]).abs().max().item<float>(), 1e-4);
  // The 4x4 token of the opposite corner is farther away than the 3x3 patch + one attention hop
  // can hide: it changes too (attention is global), but less than the corner's own token.
  const float own = (a[0][20] - b[0][20]).abs().mean().item<float>();
  const float far = (a[0][5] - b[0][5]).abs().mean().item<float>();
  EXPECT_GT(own, far);
}

TEST(OracleModels, SafetensorsRoundTripIsStrict) {
  MapNetOptions o;
  o.code_dim = 16;
  o.embed_dim = 16;
  o.token_dim = 16;
  MapNet a(o), b(o);
  const std::string dir = f2s_test::temp_dir("oracle");
  save_safetensors(dir + "/m.safetensors", state_dict(*a), {{"arch", "mapnet"}, {"version", "1"}});
  auto st = load_safetensors(dir + "/m.safetensors");
  check_arch(st, "mapnet", "m");
  load_state_dict_strict(*b, st.tensors, "m.safetensors");
  auto code = torch::randn({1, 16, 8, 8});
  EXPECT_TRUE(torch::allclose(a->forward(code), b->forward(code)));
  MapNetOptions other = o;
  other.token_dim = 8;
  MapNet c(other);
  EXPECT_THROW(load_state_dict_strict(*c, st.tensors, "m.safetensors"), FormatError);
}
