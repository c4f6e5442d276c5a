// The oracle core's restorer, files and trainers, at toy sizes on the CPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/scene_restorer.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "scene_restorer_test_util.hpp"
#include "test_util.hpp"
#include "train/train_util.hpp"

using namespace face2scene;
using f2s_test::random_base;
using f2s_test::tiny_mapnet_options;
using f2s_test::tiny_options;
using f2s_test::tiny_x4plus_options;
using f2s_test::tiny_rrdb;

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding spills into a second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).substr(0, 16), "41edece42d63e8d9");
}

TEST(SceneRestorer, StartsAsTheBaseModelAndConditioningThenMatters) {
  const auto o = tiny_options();
  SceneRestorer net(o);
  const auto base_w = random_base(o);
  net->load_base(base_w, "random");
  SRVGGNetCompactOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_conv = o.num_conv;
  SRVGGNetCompact base(bo);
  load_state_dict_strict(*base, base_w, "random");
  torch::NoGradGuard ng;
  auto x = torch::rand({2, 3, 12, 16});
  auto tokens = torch::randn({2, 21, 32});
  // Zero-initialised adapters and LoRA: exactly the base at ×4.
  EXPECT_LT((net->forward(x, tokens, 4) - base->forward(x)).abs().max().item<float>(), 1e-5);
  // ×1 starts as "box-downsample ×4, then the base".
  auto low = torch::nn::functional::avg_pool2d(x, torch::nn::functional::AvgPool2dFuncOptions(4));
  EXPECT_LT((net->forward(x, tokens, 1) - base->forward(low)).abs().max().item<float>(), 1e-4);
  // Once the adapters are non-zero, different tokens give different outputs.
  for (auto& p : net->adapters->parameters()) p.normal_(0, 0.1);
  auto a = net->forward(x, tokens, 4), b = net->forward(x, torch::randn({2, 21, 32}), 4);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-3);
  EXPECT_THROW(net->forward(x, tokens, 2), ArgumentError);
  EXPECT_THROW(net->forward(x, torch::randn({2, 21, 8}), 4), ArgumentError);
  // The base is frozen and never part of what is shipped.
  for (const auto& [k, v] : net->trainable_state()) EXPECT_NE(k.rfind("base.", 0), 0u) << k;
  for (auto& p : net->base->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(SceneRestorer, WholeImageStatisticsReproduceGroupNormAndStayPerImage) {
  // Normalising with adapter_stats of the same input is GroupNorm itself (the untiled result does
  // not change), on both backbones and at ×4 and ×1; the statistics of a batch are those of each
  // image alone (no mixing across the batch).
  for (const auto& o : {tiny_options(), tiny_x4plus_options()}) {
    SceneRestorer net(o);
    net->load_base(random_base(o), "random");
    torch::NoGradGuard ng;
    for (auto& p : net->adapters->parameters()) p.normal_(0, 0.3);
    auto x = torch::rand({2, 3, 16, 20});
    auto tokens = torch::randn({2, 21, 32});
    for (int scale : {4, 1}) {
      const auto stats = net->adapter_stats(x, tokens, scale);
      ASSERT_EQ(stats.mean.size(), net->adapters->size());
      const auto plain = net->forward(x, tokens, scale), fixed = net->forward(x, tokens, scale, &stats);
      EXPECT_LT((plain - fixed).abs().max().item<float>(), 1e-4f) << "scale " << scale;
      const auto one = net->adapter_stats(x.narrow(0, 1, 1), tokens.narrow(0, 1, 1), scale);
      for (size_t k = 0; k < stats.mean.size(); ++k) {
        EXPECT_LT((stats.mean[k][1] - one.mean[k][0]).abs().max().item<float>(), 1e-5f) << k;
        EXPECT_LT((stats.var[k][1] - one.var[k][0]).abs().max().item<float>(), 1e-5f) << k;
      }
      // Statistics of another image change the result: they are used, not ignored.
      const auto other = net->adapter_stats(torch::rand({2, 3, 16, 20}) * 0.2, tokens, scale);
      EXPECT_GT((net->forward(x, tokens, scale, &other) - plain).abs().max().item<float>(), 1e-3f);
    }
  }
}

TEST(SceneRestorer, FileRoundTripIsStrict) {
  const auto o = tiny_options();
  const std::string dir = f2s_test::temp_dir("restorer_io");
  SRVGGNetCompactOptions bo;
  bo.num_feat = o.num_feat;
  bo.num_conv = o.num_conv;
  save_safetensors(dir + "/base.safetensors", random_base(o), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  SceneRestorer net(o);
  net->load_base(random_base(o), "random");
  {
    torch::NoGradGuard ng;
    for (auto& p : net->adapters->parameters()) p.normal_(0, 0.1);
  }
  MapNet mapnet(tiny_mapnet_options());
  save_restorer(dir + "/r.safetensors", net, mapnet, /*blind=*/true);
  auto loaded = load_restorer(dir + "/r.safetensors", dir + "/base.safetensors");
  EXPECT_TRUE(loaded.blind);
  torch::NoGradGuard ng;
  auto code = torch::randn({1, 16, 8, 8});
  auto x = torch::rand({1, 3, 8, 8});
  net->eval();
  mapnet->eval();
  auto ref = net->forward(x, mapnet->forward(code), 4);
  auto got = loaded.net->forward(x, loaded.mapnet->forward(code), 4);
  EXPECT_LT((ref - got).abs().max().item<float>(), 1e-6);
  // A file from before the LoRA gates: strict loading names the missing gates; resuming fills them
  // with their neutral zero initialisation, which leaves the function unchanged.
  {
    auto st = load_safetensors(dir + "/r.safetensors");
    for (auto it = st.tensors.begin(); it != st.tensors.end();) {
      it = it->first.find("lora_gate") != std::string::npos ? st.tensors.erase(it) : std::next(it);
    }
    save_safetensors(dir + "/old.safetensors", st.tensors, st.metadata);
    try {
      load_restorer(dir + "/old.safetensors", dir + "/base.safetensors");
      ADD_FAILURE() << "missing gates were accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lora_gate"), std::string::npos) << e.what();
    }
    auto old = load_restorer(dir + "/old.safetensors", dir + "/base.safetensors", torch::kCPU, /*fill_missing_gates=*/true);
    EXPECT_LT((old.net->forward(x, old.mapnet->forward(code), 4) - ref).abs().max().item<float>(), 1e-6);
  }
  // A wrong base (another width) is named in the error.
  auto o2 = o;
  o2.num_feat = 8;
  save_safetensors(dir + "/base8.safetensors", random_base(o2), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  try {
    load_restorer(dir + "/r.safetensors", dir + "/base8.safetensors");
    ADD_FAILURE() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base8.safetensors"), std::string::npos) << e.what();
  }
  f2s_test::remove_tree(dir);
}

TEST(SceneRestorer, X4PlusBackboneStartsAsRRDBNetAndRoundTrips) {
  const auto o = tiny_x4plus_options();
  const auto base_w = random_base(o);
  RRDBNet base(tiny_rrdb(o));
  load_state_dict_strict(*base, base_w, "random");
  SceneRestorer net(o);
  net->load_base(base_w, "random");
  EXPECT_EQ(net->adapters->size(), 3u);
  EXPECT_EQ(net->lora_up->size(), 2u * 3 + 4);  // every dense block's conv5, conv_body, up1, up2, hr
  torch::NoGradGuard ng;
  auto x = torch::rand({2, 3, 8, 12});
  auto tokens = torch::randn({2, 21, 32});
  EXPECT_LT((net->forward(x, tokens, 4) - base->forward(x)).abs().max().item<float>(), 1e-5);
  auto low = torch::nn::functional::avg_pool2d(x, torch::nn::functional::AvgPool2dFuncOptions(4));
  EXPECT_LT((net->forward(x, tokens, 1) - base->forward(low)).abs().max().item<float>(), 1e-4);
  for (auto& p : net->base_parameters()) EXPECT_FALSE(p.requires_grad());
  for (const auto& [k, v] : net->trainable_state()) EXPECT_NE(k.rfind("base.", 0), 0u) << k;
  // The gated LoRA alone (adapters still zero) makes the output follow the tokens.
  for (auto& p : net->lora_up->parameters()) p.normal_(0, 0.1);
  for (auto& p : net->lora_gate->parameters()) p.normal_(0, 0.1);
  auto a = net->forward(x, tokens, 4), b = net->forward(x, torch::randn({2, 21, 32}), 4);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-4);

  // The file names its backbone; loading builds x4plus and checks the base's arch.
  const std::string dir = f2s_test::temp_dir("restorer_x4plus");
  save_safetensors(dir + "/rrdb.safetensors", base_w, {{"arch", "RRDBNet"}, {"version", "1"}});
  save_safetensors(dir + "/srvgg.safetensors", random_base(tiny_options()), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  MapNet mapnet(tiny_mapnet_options());
  mapnet->eval();
  net->eval();
  save_restorer(dir + "/r.safetensors", net, mapnet, /*blind=*/false);
  EXPECT_EQ(restorer_backbone(dir + "/r.safetensors"), RealEsrganModel::kX4Plus);
  auto loaded = load_restorer(dir + "/r.safetensors", dir + "/rrdb.safetensors");
  EXPECT_EQ(loaded.net->options.backbone, RealEsrganModel::kX4Plus);
  EXPECT_EQ(loaded.net->options.num_block, 2);
  auto code = torch::randn({2, 16, 8, 8});
  auto ref = net->forward(x, mapnet->forward(code), 4);
  EXPECT_LT((loaded.net->forward(x, loaded.mapnet->forward(code), 4) - ref).abs().max().item<float>(), 1e-6);
  try {
    load_restorer(dir + "/r.safetensors", dir + "/srvgg.safetensors");
    ADD_FAILURE() << "an SRVGGNetCompact base was accepted for an x4plus restorer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("srvgg.safetensors"), std::string::npos) << e.what();
  }
  f2s_test::remove_tree(dir);
}

namespace {
// A FaDeX small enough for file tests.
FaDeXOptions tiny_fadex_options() {
  FaDeXOptions o;
  o.in_size = 32;
  o.width = 8;
  o.max_width = 16;
  o.code_dim = 16;
  return o;
}
}  // namespace

TEST(FaDeXFile, RoundTripKeepsNormaliser) {
  FaDeX net(tiny_fadex_options());
  net->param_mean.fill_(3.0);
  net->param_std.fill_(2.0);
  const std::string dir = f2s_test::temp_dir("fadex_io");
  save_fadex(dir + "/f.safetensors", net);
  auto back = load_fadex(dir + "/f.safetensors");
  EXPECT_EQ(back->options.max_width, 16);
  auto v = back->denormalize_params(torch::ones({1, 44}));
  EXPECT_FLOAT_EQ(v[0][0].item<float>(), 5.0f);
  f2s_test::remove_tree(dir);
}

// The ablation's true-parameter encoder: a FaDeX-shaped code constant over the grid, a file that
// round-trips exactly, and strict loading that names a missing key and refuses another arch.
TEST(ParamEncoderFile, RoundTripIsExactAndStrict) {
  ParamEncoderOptions o;
  o.param_dim = 12;
  o.hidden = 16;
  o.code_dim = 8;
  o.code_grid = 4;
  ParamEncoder net(o);
  net->eval();
  torch::NoGradGuard ng;
  const auto p = torch::randn({3, 12});
  const auto code = net->forward(p);
  ASSERT_EQ(code.sizes(), (std::vector<int64_t>{3, 8, 4, 4}));
  EXPECT_LT((code - code.select(2, 0).select(2, 0).unsqueeze(-1).unsqueeze(-1)).abs().max().item<float>(), 1e-7);
  EXPECT_GT((code[0] - code[1]).abs().max().item<float>(), 1e-4);  // it does depend on the parameters

  const std::string dir = f2s_test::temp_dir("param_encoder_io");
  save_param_encoder(dir + "/p.safetensors", net);
  auto back = load_param_encoder(dir + "/p.safetensors");
  EXPECT_EQ(back->options.code_grid, 4);
  EXPECT_LT((back->forward(p) - code).abs().max().item<float>(), 1e-7);

  auto st = load_safetensors(dir + "/p.safetensors");
  const std::string dropped = st.tensors.begin()->first;
  st.tensors.erase(st.tensors.begin());
  save_safetensors(dir + "/missing.safetensors", st.tensors, st.metadata);
  try {
    load_param_encoder(dir + "/missing.safetensors");
    ADD_FAILURE() << "a missing key was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dropped), std::string::npos) << e.what();
  }
  FaDeX fadex(tiny_fadex_options());
  save_fadex(dir + "/f.safetensors", fadex);
  EXPECT_THROW(load_param_encoder(dir + "/f.safetensors"), Error);
  f2s_test::remove_tree(dir);
}

TEST(DegradationSummaryTest, CombinesStagesAndReadsOut) {
  DegradationParams p;
  p.order = 2;
  p.out_scale = 4;
  p.stage1.blur.type = KernelType::kIsoGaussian;
  p.stage1.blur.size = 13;
  p.stage1.blur.sigma_x = p.stage1.blur.sigma_y = 2.0f;
  p.stage1.resize = {ResizeMode::kBilinear, 0.5f};
  p.stage1.noise = {NoiseType::kGaussian, false, 6.0f};
  p.stage2.blur.type = KernelType::kIsoGaussian;
  p.stage2.blur.size = 7;
  p.stage2.blur.sigma_x = p.stage2.blur.sigma_y = 0.75f;  // 1.5 input pixels after the ×0.5 resize
  p.stage2.noise = {NoiseType::kGaussian, false, 8.0f};
  p.final_step.jpeg_quality = 40;
  p.stage1.jpeg_quality = 80;
  const auto s = summarize(p);
  EXPECT_NEAR(s.blur_sigma, 2.5, 1e-5);   // sqrt(2² + 1.5²)
  EXPECT_NEAR(s.noise_sigma, 10.0, 1e-5);  // sqrt(6² + 8²)
  EXPECT_EQ(s.jpeg_quality, 40);
  EXPECT_EQ(s.scale, 4);
  EXPECT_EQ(s.describe(), "blur σ≈2.5 px, noise σ≈10/255, JPEG q≈40, ×4.0 downscale");
  EXPECT_EQ(degradation_targets(p).size(), size_t(kDegradationTargetSize));
}

TEST(Training, NormaliserMasksConstantSlots) {
  const auto n = ParamNormaliser::estimate({"mild", "severe"}, 4.0f, 256, 3);
  ASSERT_EQ(n.mean.size(0), kDegradationTargetSize);
  EXPECT_EQ(n.mask[0].item<float>(), 0.0f);  // the version slot never varies
  EXPECT_EQ(n.mask[kDegradationTargetSize - 5].item<float>(), 1.0f);  // blur σ does
  DegradationSampler s("severe", 1);
  s.set_out_scale(4);
  auto t = n.normalise(s.sample_batch(64), torch::kCPU);
  EXPECT_LT(t.abs().mean().item<float>(), 3.0f);
}

TEST(Training, AdamWMinimisesAndItsStateRoundTripsExactly) {
  auto w = torch::full({3}, 5.0).set_requires_grad(true);
  AdamW opt({w}, 0.1);
  auto step = [](AdamW& o, torch::Tensor& p) {
    o.zero_grad();
    (p - torch::tensor({1.0, -2.0, 0.5})).pow(2).sum().backward();
    o.step();
  };
  for (int i = 0; i < 300; ++i) step(opt, w);
  EXPECT_LT((w - torch::tensor({1.0, -2.0, 0.5})).abs().max().item<float>(), 0.05);
  // A copy of the parameter with the float32 state continues bit for bit like the original.
  const auto st = opt.state(torch::kFloat32);
  ASSERT_EQ(st.at("m.0").scalar_type(), torch::kFloat32);
  EXPECT_GT(st.at("v.0").abs().sum().item<double>(), 0.0);
  auto w2 = w.detach().clone().set_requires_grad(true);
  AdamW other({w2}, 0.1);
  other.load_state(st, "state");
  EXPECT_EQ(other.steps(), 300);
  for (int i = 0; i < 5; ++i) step(opt, w), step(other, w2);
  EXPECT_TRUE(torch::equal(w, w2));
  for (const auto& [k, v] : opt.state(torch::kFloat32)) EXPECT_TRUE(torch::equal(v, other.state(torch::kFloat32).at(k))) << k;
  // A saved state is a copy: later steps leave it as it was.
  EXPECT_FALSE(torch::equal(st.at("m.0"), opt.state(torch::kFloat32).at("m.0")));
  EXPECT_EQ(opt.state().at("m.0").scalar_type(), torch::kBFloat16);  // the compact default
  AdamW wrong({torch::zeros({4}).set_requires_grad(true)}, 0.1);
  EXPECT_THROW(wrong.load_state(st, "state"), FormatError);
}

TEST(Training, CheckpointFilesAndClock) {
  const std::string dir = f2s_test::temp_dir("checkpoint_file");
  CheckpointGroups g;
  g["net.a"]["w"] = torch::randn({2, 3});
  g["net.a"]["n"] = torch::tensor({int64_t(7)});
  g["opt"]["m.0"] = torch::randn({4});
  save_checkpoint(dir + "/c.safetensors", g, 42);
  const auto c = load_checkpoint(dir + "/c.safetensors");
  EXPECT_EQ(c.step, 42);
  EXPECT_TRUE(torch::equal(c.group("net.a").at("w"), g["net.a"]["w"]));
  EXPECT_TRUE(torch::equal(c.group("opt").at("m.0"), g["opt"]["m.0"]));
  try {
    c.group("missing");
    ADD_FAILURE() << "a missing group was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("c.safetensors"), std::string::npos) << e.what();
  }
  // Only the file itself is left (written to a temporary and renamed).
  for (const auto& e : std::filesystem::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string(), "c.safetensors");
  CheckpointClock never(0), always(1e-9);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_FALSE(never.due());
  EXPECT_TRUE(always.due());
  f2s_test::remove_tree(dir);
}

namespace {
// A toy training folder: faces and scenes of smooth random colour fields.
std::string make_toy_data(const std::string& dir) {
  std::filesystem::create_directories(dir + "/faces");
  std::filesystem::create_directories(dir + "/scenes");
  torch::manual_seed(11);
  for (int i = 0; i < 6; ++i) {
    auto face = torch::nn::functional::interpolate(
        torch::rand({1, 3, 4, 4}),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{40, 40}).mode(torch::kBilinear).align_corners(false));
    write_image(dir + "/faces/f" + std::to_string(i) + ".png", tensor_to_image(face.squeeze(0)));
    auto scene = torch::nn::functional::interpolate(
        torch::rand({1, 3, 8, 8}),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{72, 80}).mode(torch::kBilinear).align_corners(false));
    write_image(dir + "/scenes/s" + std::to_string(i) + ".jpg", tensor_to_image(scene.squeeze(0)));
  }
  return dir;
}
}  // namespace

TEST(Training, HeldOutImagesAreRefused) {
  const std::string dir = make_toy_data(f2s_test::temp_dir("train_heldout"));
  {
    std::ofstream list(dir + "/heldout.sha256");
    list << sha256_hex(read_file(dir + "/scenes/s3.jpg")) << "  natural/Kodak24/kodim03.png\n";
  }
  TrainDataOptions o;
  o.faces_dir = dir + "/faces";
  o.scenes_dir = dir + "/scenes";
  o.heldout_list = dir + "/heldout.sha256";
  o.face_size = 32;
  o.face_crop = 32;
  try {
    load_train_data(o, torch::kCPU);
    ADD_FAILURE() << "a held-out image was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("s3.jpg"), std::string::npos) << e.what();
  }
  o.heldout_list.clear();
  const auto d = load_train_data(o, torch::kCPU);
  EXPECT_EQ(d.faces.sizes(), (std::vector<int64_t>{6, 3, 32, 32}));
  EXPECT_EQ(d.scenes.size(), 6u);
  f2s_test::remove_tree(dir);
}

TEST(Training, FaDeXStepsRunResumeAndLog) {
  const std::string dir = make_toy_data(f2s_test::temp_dir("train_fadex"));
  FaDeXTrainOptions o;
  o.common.data.faces_dir = dir + "/faces";
  o.common.data.scenes_dir = dir + "/scenes";
  o.common.data.face_size = 32;
  o.common.data.face_crop = 32;
  o.common.out_dir = dir + "/out";
  o.common.max_steps = 3;
  o.common.log_every = 1;
  o.common.presets = {"mild", "severe"};
  o.net.in_size = 32;
  o.net.width = 8;
  o.net.max_width = 16;
  o.net.code_dim = 16;
  o.degradations = 4;
  auto r = train_fadex(o);
  EXPECT_EQ(r.steps, 3);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  ASSERT_TRUE(file_exists(o.common.out_dir + "/fadex.safetensors"));
  o.common.max_steps = 5;  // resumes at step 3
  r = train_fadex(o);
  EXPECT_EQ(r.steps, 2);
  const std::string csv = read_file(o.common.out_dir + "/fadex_loss.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6);  // header + 5 rows

  // The restorer and its blind twin on top of that FaDeX (needs the LPIPS weights).
  if (!f2s_test::have_data("weights/lpips_v0.1")) {
    f2s_test::remove_tree(dir);
    GTEST_SKIP() << "shared data not found: restorer part skipped";
  }
  RestorerTrainOptions ro;
  ro.common = o.common;
  ro.common.max_steps = 2;
  ro.net = tiny_options();
  ro.mapnet = tiny_mapnet_options();  // token_dim is taken from ro.net
  ro.fadex_weights = o.common.out_dir + "/fadex.safetensors";
  ro.base_weights = dir + "/base.safetensors";
  save_safetensors(ro.base_weights, random_base(ro.net), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  ro.lpips_weights = f2s_test::data_path("weights");
  ro.batch = 2;
  ro.crop = 32;
  ro.common.x1_fraction = 0.5;
  r = train_restorer(ro);
  EXPECT_EQ(r.steps, 2);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  auto cond = load_restorer(o.common.out_dir + "/restorer.safetensors", ro.base_weights);
  auto blind = load_restorer(o.common.out_dir + "/restorer_blind.safetensors", ro.base_weights);
  EXPECT_FALSE(cond.blind);
  EXPECT_TRUE(blind.blind);
  // Training moved the conditioned model away from the base.
  double moved = 0;
  for (const auto& [k, v] : cond.net->trainable_state()) {
    if (k.find("lora_up") != std::string::npos) moved += v.abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0.0);
  // Resuming that folder on the other backbone is refused by name, before any step runs.
  auto rx = ro;
  rx.net = tiny_x4plus_options();
  rx.base_weights = dir + "/rrdb.safetensors";
  save_safetensors(rx.base_weights, random_base(rx.net), {{"arch", "RRDBNet"}, {"version", "1"}});
  try {
    train_restorer(rx);
    ADD_FAILURE() << "an x4plus run resumed from general-x4v3 checkpoints";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("restorer.safetensors"), std::string::npos) << e.what();
  }
  // A fresh x4plus run trains (a step each for the conditioned model and the twin).
  rx.common.out_dir = dir + "/out_x4plus";
  rx.fadex_weights = o.common.out_dir + "/fadex.safetensors";
  rx.common.max_steps = 1;
  r = train_restorer(rx);
  EXPECT_EQ(r.steps, 1);
  EXPECT_EQ(restorer_backbone(rx.common.out_dir + "/restorer_blind.safetensors"), RealEsrganModel::kX4Plus);
  f2s_test::remove_tree(dir);
}

namespace {
FaDeXTrainOptions tiny_fadex_training(const std::string& data, const std::string& out) {
  FaDeXTrainOptions o;
  o.common.data.faces_dir = data + "/faces";
  o.common.data.scenes_dir = data + "/scenes";
  o.common.data.face_size = 32;
  o.common.data.face_crop = 32;
  o.common.out_dir = out;
  o.common.log_every = 1;
  o.common.presets = {"mild", "severe"};
  o.common.x1_fraction = 0.5;
  o.net = tiny_fadex_options();
  o.degradations = 4;
  return o;
}

// A tiny fixed-geometry FaDeX trained for `steps` under data/name; returns its weights file.
std::string train_tiny_fadex(const std::string& data, const std::string& name, int64_t steps) {
  auto t = tiny_fadex_training(data, data + "/" + name);
  t.common.max_steps = steps;
  train_fadex(t);
  return data + "/" + name + "/fadex.safetensors";
}

// The face-size student of `teacher` on the toy faces, degraded sides 8-16 px.
FaDeXTrainOptions tiny_size_student(const std::string& data, const std::string& out, const std::string& teacher) {
  auto o = tiny_fadex_training(data, out);
  o.teacher = teacher;
  o.size_faces_dir = data + "/faces";
  o.size_source = 40;
  o.lq_min = 8;
  o.lq_max = 16;
  return o;
}

// A tiny conditioned restorer (and its blind twin) trained over `fadex` on the toy data; the random
// base is written once at data/base.safetensors.
RestorerTrainOptions tiny_restorer_training(const std::string& data, const std::string& out, const std::string& fadex) {
  RestorerTrainOptions ro;
  ro.common = tiny_fadex_training(data, out).common;
  ro.net = tiny_options();
  ro.mapnet = tiny_mapnet_options();
  ro.fadex_weights = fadex;
  ro.base_weights = data + "/base.safetensors";
  if (!file_exists(ro.base_weights))
    save_safetensors(ro.base_weights, random_base(ro.net), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  ro.lpips_weights = f2s_test::data_path("weights");
  ro.batch = 2;
  ro.crop = 32;
  return ro;
}

// Two checkpoint files hold the same step and bit-identical tensors, group by group.
void expect_same_checkpoint(const std::string& a, const std::string& b, const std::vector<std::string>& groups) {
  const auto ca = load_checkpoint(a), cb = load_checkpoint(b);
  EXPECT_EQ(ca.step, cb.step);
  ASSERT_EQ(ca.groups.size(), cb.groups.size());
  for (const auto& name : groups) {
    const auto& ga = ca.group(name);
    const auto& gb = cb.group(name);
    ASSERT_EQ(ga.size(), gb.size()) << name;
    for (const auto& [k, v] : ga) {
      ASSERT_TRUE(gb.count(k)) << name << "/" << k;
      EXPECT_TRUE(torch::equal(v, gb.at(k))) << name << "/" << k << " differs after resuming: max |diff| "
                                             << (v.to(torch::kDouble) - gb.at(k).to(torch::kDouble)).abs().max().item<double>();
    }
  }
}

// The optimiser part of a checkpoint group: float32 moments that training has filled.
void expect_full_precision_moments(const std::string& path, const std::string& group) {
  const auto c = load_checkpoint(path);
  const auto& g = c.group(group);
  ASSERT_TRUE(g.count("m.0") && g.count("v.0") && g.count("t")) << group;
  EXPECT_EQ(g.at("t").item<int64_t>(), c.step);
  double sum = 0;
  for (const auto& [k, v] : g) {
    if (k == "t") continue;
    EXPECT_EQ(v.scalar_type(), torch::kFloat32) << group << "/" << k;
    sum += v.abs().sum().item<double>();
  }
  EXPECT_GT(sum, 0.0) << group;
}
}  // namespace

TEST(Training, FaDeXResumeIsExact) {
  // 4 steps in one go, and 2 + 2 with a checkpoint in between: the same weights AND the same
  // AdamW moments (exp_avg, exp_avg_sq) and step, bit for bit.
  const std::string dir = make_toy_data(f2s_test::temp_dir("fadex_exact"));
  auto whole = tiny_fadex_training(dir, dir + "/whole");
  whole.common.max_steps = 4;
  train_fadex(whole);
  auto split = tiny_fadex_training(dir, dir + "/split");
  split.common.max_steps = 2;
  split.common.checkpoint_minutes = 1e-9;  // the timed checkpoint after every step changes nothing
  train_fadex(split);
  split.common.max_steps = 4;
  EXPECT_EQ(train_fadex(split).steps, 2);
  const std::string file = std::string("/") + kFaDeXStateFile;
  expect_full_precision_moments(dir + "/whole" + file, "fadex.opt");
  expect_same_checkpoint(dir + "/whole" + file, dir + "/split" + file, {"fadex.net", "fadex.opt"});
  EXPECT_EQ(read_file(dir + "/whole/fadex.safetensors"), read_file(dir + "/split/fadex.safetensors"));
  f2s_test::remove_tree(dir);
}

TEST(Training, FaDeXFaceSizeDistillation) {
  // A tiny fixed-geometry teacher, then the student taught to read faces of 8–16 px (the teacher's
  // own LQ side is 8 at ×4): it writes a "native" file, refuses a native teacher, and resumes exactly.
  const std::string dir = make_toy_data(f2s_test::temp_dir("fadex_sizes"));
  const std::string teacher = train_tiny_fadex(dir, "teacher", 2);
  EXPECT_EQ(load_fadex(teacher, torch::kCPU)->options.lq_geometry, "fixed");
  auto make = [&](const std::string& out) { return tiny_size_student(dir, out, teacher); };
  auto whole = make(dir + "/whole");
  whole.common.max_steps = 4;
  const auto r = train_fadex(whole);
  EXPECT_EQ(r.steps, 4);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  const auto student = load_fadex(dir + "/whole/fadex.safetensors", torch::kCPU);
  EXPECT_EQ(student->options.lq_geometry, "native");
  // It learned something: no longer the teacher's weights.
  const auto ts = state_dict(*load_fadex(teacher, torch::kCPU)), ss = state_dict(*student);
  double moved = 0;
  for (const auto& [k, v] : ts) moved += (ss.at(k) - v).abs().sum().item<double>();
  EXPECT_GT(moved, 0.0);
  auto split = make(dir + "/split");
  split.common.max_steps = 2;
  train_fadex(split);
  split.common.max_steps = 4;
  EXPECT_EQ(train_fadex(split).steps, 2);
  const std::string file = std::string("/") + kFaDeXStateFile;
  expect_same_checkpoint(dir + "/whole" + file, dir + "/split" + file, {"fadex.net", "fadex.opt"});
  auto bad = make(dir + "/bad");
  bad.teacher = dir + "/whole/fadex.safetensors";
  EXPECT_THROW(train_fadex(bad), ArgumentError);
  f2s_test::remove_tree(dir);
}

TEST(Training, FaDeXTaskLossTeachesThroughTheFrozenRestorer) {
  // The task loss restores each degraded face with the frozen conditioned restorer from the
  // student's code: the same run with and without it must end in different students (its gradient
  // reaches the student), the restorer file must be left as it was, and a missing or blind
  // restorer is refused.
  if (!f2s_test::have_data("weights/lpips_v0.1")) GTEST_SKIP() << "shared data (LPIPS weights) not found";
  const std::string dir = make_toy_data(f2s_test::temp_dir("fadex_task"));
  const std::string teacher = train_tiny_fadex(dir, "teacher", 1);
  auto ro = tiny_restorer_training(dir, dir + "/restorer", teacher);
  ro.common.max_steps = 1;
  train_restorer(ro);
  const std::string restorer = dir + "/restorer/restorer.safetensors", blind = dir + "/restorer/restorer_blind.safetensors";
  const std::string restorer_bytes = read_file(restorer);
  auto make = [&](const std::string& out, double task_weight) {
    auto o = tiny_size_student(dir, out, teacher);
    o.common.max_steps = 3;
    o.task_weight = task_weight;
    o.task_batch = 2;
    o.restorer_weights = restorer;
    o.blind_weights = blind;
    o.base_weights = ro.base_weights;
    o.lpips_weights = ro.lpips_weights;
    return o;
  };
  train_fadex(make(dir + "/plain", 0));
  train_fadex(make(dir + "/task", 5));
  const auto plain = state_dict(*load_fadex(dir + "/plain/fadex.safetensors", torch::kCPU));
  const auto task = state_dict(*load_fadex(dir + "/task/fadex.safetensors", torch::kCPU));
  double differ = 0;
  for (const auto& [k, v] : plain) differ += (task.at(k) - v).abs().sum().item<double>();
  EXPECT_GT(differ, 0.0) << "the task loss did not reach the student";
  EXPECT_EQ(read_file(restorer), restorer_bytes) << "the frozen restorer was written";
  // The log's task column holds the restorer's loss (> 0) on every row of the task run, 0 without.
  auto last_task = [](const std::string& csv_file) {
    const std::string csv = read_file(csv_file);
    std::string last = csv.substr(csv.rfind('\n', csv.size() - 2) + 1);
    std::vector<std::string> cols;
    std::stringstream ss(last);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
    return std::stod(cols.at(8));
  };
  EXPECT_GT(last_task(dir + "/task/fadex_sizes_loss.csv"), 0.0);
  EXPECT_EQ(last_task(dir + "/plain/fadex_sizes_loss.csv"), 0.0);
  auto no_restorer = make(dir + "/bad1", 5);
  no_restorer.restorer_weights.clear();
  EXPECT_THROW(train_fadex(no_restorer), ArgumentError);
  auto blind_as_restorer = make(dir + "/bad2", 5);
  blind_as_restorer.restorer_weights = blind;
  EXPECT_THROW(train_fadex(blind_as_restorer), ArgumentError);
  f2s_test::remove_tree(dir);
}

TEST(Training, RestorerResumeIsExact) {
  if (!f2s_test::have_data("weights/lpips_v0.1")) GTEST_SKIP() << "shared data (LPIPS weights) not found";
  const std::string dir = make_toy_data(f2s_test::temp_dir("restorer_exact"));
  const std::string fadex = train_tiny_fadex(dir, "fadex", 1);
  auto make = [&](const std::string& out) { return tiny_restorer_training(dir, out, fadex); };
  auto whole = make(dir + "/whole");
  whole.common.max_steps = 3;
  train_restorer(whole);
  auto split = make(dir + "/split");
  split.common.max_steps = 1;
  train_restorer(split);
  split.common.max_steps = 3;
  EXPECT_EQ(train_restorer(split).steps, 2);
  const std::string file = std::string("/") + kRestorerStateFile;
  expect_full_precision_moments(dir + "/whole" + file, "restorer.opt");
  expect_same_checkpoint(dir + "/whole" + file, dir + "/split" + file,
                         {"restorer.net", "restorer.mapnet", "restorer.opt", "restorer_blind.net", "restorer_blind.opt"});
  f2s_test::remove_tree(dir);
}
