// The scene restorer on CUDA must give what it gives on the CPU: on CUDA its adapters normalise
// with statistics from a plain reduction instead of GroupNorm's kernel (scene_restorer.cpp).
#include <gtest/gtest.h>

#include "scene_restorer_test_util.hpp"

using namespace face2scene;
using namespace f2s_test;

TEST(CudaModels, SceneRestorerMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard ng;
  for (const auto& o : {tiny_options(), tiny_x4plus_options()}) {
    SceneRestorer net(o);
    net->load_base(random_base(o), "random");
    for (auto& p : net->adapters->parameters()) p.normal_(0, 0.3);
    auto x = torch::rand({2, 3, 16, 20});
    auto tokens = torch::randn({2, 21, 32});
    for (int scale : {4, 1}) {
      const auto cpu = net->forward(x, tokens, scale);
      net->to(torch::kCUDA);
      const auto gpu = net->forward(x.cuda(), tokens.cuda(), scale);
      net->to(torch::kCPU);
      ASSERT_TRUE(gpu.is_cuda());
      // TF32 convolutions on the GPU: agreement to ~1e-3, not to the last bit.
      EXPECT_LT((gpu.cpu() - cpu).abs().max().item<float>(), 5e-3f) << "scale " << scale;
    }
  }
}
