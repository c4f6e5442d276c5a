// Adversarial fine-tuning of the scene restorer (issue 21) at toy sizes on the CPU: the U-Net
// discriminator, the GAN trainer's resume, the people/bokeh data and the realism interpolation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "face2scene/core.hpp"
#include "face2scene/discriminator.hpp"
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

namespace {
// Smooth random images: faces 40², scenes 72×80, people photos 96×112 (a GAN run draws from all).
std::string make_toy_data(const std::string& dir) {
  namespace F = torch::nn::functional;
  for (const char* sub : {"/faces", "/scenes", "/people"}) std::filesystem::create_directories(dir + sub);
  torch::manual_seed(11);
  auto smooth = [](int64_t h, int64_t w) {
    return F::interpolate(torch::rand({1, 3, 8, 8}),
                          F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false))
        .squeeze(0);
  };
  for (int i = 0; i < 6; ++i) {
    write_image(dir + "/faces/f" + std::to_string(i) + ".png", tensor_to_image(smooth(40, 40)));
    write_image(dir + "/scenes/s" + std::to_string(i) + ".jpg", tensor_to_image(smooth(72, 80)));
    if (i < 3) write_image(dir + "/people/p" + std::to_string(i) + ".png", tensor_to_image(smooth(96, 112)));
  }
  return dir;
}
int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST(UNetDiscriminator, RealEsrganShapesAndProjection) {
  torch::manual_seed(1);
  UNetDiscriminator d;
  // basicsr's UNetDiscriminatorSN(3, 64) has 4,376,897 parameters; our SN convolutions keep a
  // bias each (conv1 … conv8: 128+256+512+256+128+64+64+64 = 1,472 more).
  EXPECT_EQ(count_parameters(*d), 4376897 + 1472);
  UNetDiscriminatorOptions small;
  small.num_feat = 8;
  torch::manual_seed(2);
  UNetDiscriminator u(small);
  auto x = torch::rand({2, 3, 32, 48});
  EXPECT_EQ(u->forward(x).sizes(), (std::vector<int64_t>{2, 1, 32, 48}));  // one logit per pixel
  EXPECT_THROW(u->forward(torch::rand({1, 3, 30, 32})), ArgumentError);
  EXPECT_THROW(u->forward(x, torch::rand({2, 5})), ArgumentError);
  // The projection critic starts as the unconditional one (zero embedding), then the code matters.
  // (A fresh unconditional twin: u's power iteration has moved since.)
  torch::manual_seed(2);
  u = UNetDiscriminator(small);
  small.cond_dim = 5;
  torch::manual_seed(2);
  UNetDiscriminator p(small);
  u->eval();
  p->eval();
  auto cond = torch::randn({2, 5});
  EXPECT_TRUE(torch::allclose(p->forward(x, cond), u->forward(x), 1e-6, 1e-6));
  EXPECT_THROW(p->forward(x), ArgumentError);
  {
    torch::NoGradGuard ng;
    p->embed->weight.normal_();
  }
  auto a = p->forward(x, cond), b = p->forward(x, -cond);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-3);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 1, 32, 48}));
}

TEST(UNetDiscriminator, SpectralNormMakesConvOneToEightScaleFree) {
  // Spectral norm divides each of conv1 … conv8 by its largest singular value, so scaling their
  // weights by 10 changes nothing once the power iteration has converged; a convolution without
  // it (or a wrong σ) changes the output. conv0 and conv9 are plain, as in Real-ESRGAN.
  UNetDiscriminatorOptions o;
  o.num_feat = 8;
  torch::manual_seed(3);
  UNetDiscriminator d(o);
  auto x = torch::rand({1, 3, 16, 16});
  d->train();
  {
    torch::NoGradGuard ng;
    for (int i = 0; i < 200; ++i) d->forward(x);  // power iterations
  }
  d->eval();
  torch::NoGradGuard ng;
  // σ = uᵀ W v matches the largest singular value of every SN layer.
  for (size_t i = 0; i < d->sn.size(); ++i) {
    auto w = d->sn[i]->weight.reshape({d->sn[i]->weight.size(0), -1}).to(torch::kDouble);
    const double top = std::get<1>(torch::svd(w)).max().item<double>();
    auto u = d->sn[i]->u.to(torch::kDouble);
    auto v = torch::nn::functional::normalize(torch::mv(w.t(), u), torch::nn::functional::NormalizeFuncOptions().dim(0));
    const double sigma = torch::dot(u, torch::mv(w, v)).item<double>();
    EXPECT_NEAR(sigma / top, 1.0, 2e-3) << "conv" << i + 1;
  }
  auto before = d->forward(x);
  for (auto& c : d->sn) c->weight.mul_(10);
  auto after = d->forward(x);
  EXPECT_LT((before - after).abs().max().item<float>(), 1e-4 * (1 + before.abs().max().item<float>()));
  d->conv9->weight.mul_(10);  // the plain output layer does scale
  EXPECT_GT((d->forward(x) - after).abs().max().item<float>(), 1e-3);
}

TEST(GanData, PeopleCropsAndShallowDepthOfField) {
  const std::string dir = make_toy_data(f2s_test::temp_dir("gan_data"));
  TrainDataOptions o;
  o.faces_dir = dir + "/faces";
  o.scenes_dir = dir + "/scenes";
  o.people_dir = dir + "/people";
  o.face_size = o.face_crop = 32;
  const auto d = load_train_data(o, torch::kCPU);
  ASSERT_EQ(d.people.size(), 3u);
  // people_fraction 0 draws exactly the plain crops; 1 cuts every crop from a people photo.
  auto g1 = make_generator(7, torch::kCPU), g2 = make_generator(7, torch::kCPU);
  EXPECT_TRUE(torch::equal(sample_scene_crops(d, 4, 32, g1), sample_scene_crops(d, 4, 32, g2, 0.0)));
  TrainData only_people = d;
  for (auto& s : only_people.scenes) s = torch::zeros_like(s);  // scenes black: people crops are not
  auto g3 = make_generator(8, torch::kCPU);
  auto crops = sample_scene_crops(only_people, 6, 32, g3, 1.0);
  EXPECT_EQ(crops.sizes(), (std::vector<int64_t>{6, 3, 32, 32}));
  for (int64_t i = 0; i < 6; ++i) EXPECT_GT(crops[i].mean().item<float>(), 0.05) << "crop " << i << " is not from a people photo";

  // Bokeh: prob 0 is the identity and draws nothing; a flat image stays flat (a lens blur keeps
  // its mean); a sharp pattern loses contrast in part of the crop but keeps it in focus.
  auto hq = (torch::arange(64).remainder(2).view({1, 1, 1, 64}) * torch::ones({2, 3, 64, 1})).contiguous();
  auto g4 = make_generator(9, torch::kCPU), g5 = make_generator(9, torch::kCPU);
  EXPECT_TRUE(torch::equal(add_shallow_dof(hq, 0.0, g4), hq));
  EXPECT_TRUE(torch::equal(torch::rand({3}, g4), torch::rand({3}, g5)));
  auto flat = torch::full({2, 3, 64, 64}, 0.4f);
  EXPECT_LT((add_shallow_dof(flat, 1.0, g4) - flat).abs().max().item<float>(), 1e-5);
  auto g6 = make_generator(10, torch::kCPU), g7 = make_generator(10, torch::kCPU);
  auto bokeh = add_shallow_dof(hq, 1.0, g6);
  EXPECT_TRUE(torch::equal(bokeh, add_shallow_dof(hq, 1.0, g7)));  // deterministic in the generator
  for (int64_t i = 0; i < 2; ++i) {
    // Local contrast |x − right neighbour| per pixel: 1 where sharp, well below where blurred.
    auto contrast = (bokeh[i].slice(2, 1, 64) - bokeh[i].slice(2, 0, 63)).abs().mean(0);
    EXPECT_GT(contrast.max().item<float>(), 0.99) << "sample " << i << ": no part stayed in focus";
    EXPECT_LT(contrast.min().item<float>(), 0.5) << "sample " << i << ": no part was defocused";
  }
  f2s_test::remove_tree(dir);
}

namespace {
RestorerTrainOptions tiny_gan_training(const std::string& data, const std::string& out) {
  RestorerTrainOptions ro;
  auto& c = ro.common;
  c.data.faces_dir = data + "/faces";
  c.data.scenes_dir = data + "/scenes";
  c.data.people_dir = data + "/people";
  c.data.face_size = c.data.face_crop = 32;
  c.out_dir = out;
  c.log_every = 1;
  c.presets = {"mild", "severe"};
  c.x1_fraction = 0.5;
  ro.net = tiny_options();
  ro.mapnet = tiny_mapnet_options();
  ro.fadex_weights = data + "/fadex.safetensors";
  ro.base_weights = data + "/base.safetensors";
  ro.lpips_weights = f2s_test::data_path("weights");
  ro.batch = 2;
  ro.crop = 32;
  ro.lpips_weight = 1.0;
  ro.gan_weight = 0.1;
  ro.gan_warmup = 1;
  ro.disc.num_feat = 8;
  ro.disc_projection = true;
  ro.people_fraction = 0.5;
  ro.dof_prob = 0.5;
  return ro;
}
// A toy FaDeX whose code width matches tiny_mapnet_options (what the trainer loads, frozen).
void write_toy_fadex(const std::string& path) {
  FaDeXOptions fo;
  fo.in_size = 32;
  fo.width = 8;
  fo.max_width = 16;
  fo.code_dim = 16;
  torch::manual_seed(4);
  FaDeX f(fo);
  save_fadex(path, f);
}
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST(GanTraining, TrainsFiniteAndResumesExactlyWithTheCritics) {
  if (!f2s_test::have_data("weights/lpips_v0.1")) GTEST_SKIP() << "shared data (LPIPS weights) not found";
  const std::string dir = make_toy_data(f2s_test::temp_dir("gan_train"));
  write_toy_fadex(dir + "/fadex.safetensors");
  save_safetensors(dir + "/base.safetensors", random_base(tiny_options()), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  // Starting point of the fine-tune: an "L1-trained" pair in a folder with the shipped names.
  {
    torch::manual_seed(6);
    SceneRestorer net(tiny_options());
    net->load_base(random_base(tiny_options()), "base");
    MapNet mapnet(tiny_mapnet_options());
    std::filesystem::create_directories(dir + "/init");
    save_restorer(dir + "/init/scene_restorer.safetensors", net, mapnet, false);
    save_restorer(dir + "/init/scene_restorer_blind.safetensors", net, mapnet, true);
  }
  auto whole = tiny_gan_training(dir, dir + "/whole");
  whole.init_dir = dir + "/init";
  whole.common.max_steps = 3;
  EXPECT_EQ(train_restorer(whole).steps, 3);
  // 3 + 2 + 2×4 + 2×4 values per row: losses finite; the critics trained from step 1 and the
  // generators' adversarial term started at step 2 (gan_warmup 1).
  const auto lines = read_lines(dir + "/whole/restorer_loss.csv");
  ASSERT_GE(lines.size(), 4u);
  EXPECT_NE(lines[0].find("blind_d_loss"), std::string::npos) << lines[0];
  std::vector<std::string> header;
  {
    std::stringstream hs(lines[0]);
    for (std::string col; std::getline(hs, col, ',');) header.push_back(col);
  }
  for (size_t r = 1; r < lines.size(); ++r) {
    std::stringstream ls(lines[r]);
    size_t col = 0;
    for (std::string cell; std::getline(ls, cell, ','); ++col) {
      const double v = std::stod(cell);
      EXPECT_TRUE(std::isfinite(v)) << header[col] << " in row " << r;
      if (header[col] == "d_loss" || header[col] == "blind_d_loss") EXPECT_GT(v, 0.0) << header[col];
      if (header[col] == "adv" || header[col] == "blind_adv") {
        if (r == 1) EXPECT_EQ(v, 0.0) << "GAN term before the warm-up ended";
        else EXPECT_GT(v, 0.0) << "no GAN term after the warm-up";
      }
    }
  }
  const auto meta = load_safetensors(dir + "/whole/restorer.safetensors").metadata;
  EXPECT_EQ(meta.at("losses"), "l1+lpips+gan");
  EXPECT_EQ(meta.at("discriminator"), "unet-sn+projection");
  // The critics moved from their (shared) initialisation, and both started alike.
  const auto ck = load_checkpoint(dir + "/whole/" + kRestorerStateFile);
  UNetDiscriminatorOptions dopt;
  dopt.num_feat = 8;
  dopt.cond_dim = 16;
  torch::manual_seed(int64_t(mix_seed(whole.common.seed, 11000) % (uint64_t(1) << 62)));
  const TensorMap fresh = state_dict(*UNetDiscriminator(dopt));
  for (const std::string g : {"restorer.disc", "restorer_blind.disc"}) {
    EXPECT_FALSE(torch::equal(ck.group(g).at("conv3.weight"), fresh.at("conv3.weight"))) << g << " never updated";
    EXPECT_EQ(ck.group(g + "_opt").at("t").item<int64_t>(), 3) << g;
  }

  // 1 step, then 2 more from the checkpoint: bit for bit what 3 in one go gave, critics included.
  auto split = tiny_gan_training(dir, dir + "/split");
  split.init_dir = dir + "/init";
  split.common.max_steps = 1;
  train_restorer(split);
  split.common.max_steps = 3;
  EXPECT_EQ(train_restorer(split).steps, 2);
  const auto cs = load_checkpoint(dir + "/split/" + kRestorerStateFile);
  EXPECT_EQ(ck.step, cs.step);
  for (const std::string g : {"restorer.net", "restorer.mapnet", "restorer.opt", "restorer.disc", "restorer.disc_opt",
                              "restorer_blind.net", "restorer_blind.opt", "restorer_blind.disc",
                              "restorer_blind.disc_opt"}) {
    const auto& a = ck.group(g);
    const auto& b = cs.group(g);
    ASSERT_EQ(a.size(), b.size()) << g;
    for (const auto& [k, v] : a) {
      if (k.rfind("m.", 0) != 0 && k.rfind("v.", 0) != 0 && k != "t") {
        EXPECT_EQ(v.scalar_type(), torch::kFloat32) << g << "/" << k;
      }
      EXPECT_TRUE(torch::equal(v, b.at(k))) << g << "/" << k << " differs after resuming";
    }
  }
  EXPECT_EQ(ck.group("restorer.disc_opt").at("m.0").scalar_type(), torch::kFloat32);  // exact resume
  f2s_test::remove_tree(dir);
}

TEST(Realism, InterpolatesTheL1AndGanWeights) {
  const std::string dir = f2s_test::temp_dir("realism");
  save_safetensors(dir + "/base.safetensors", random_base(tiny_options()), {{"arch", "SRVGGNetCompact"}, {"version", "1"}});
  auto make = [&](const std::string& name, int seed, bool blind, SceneRestorerOptions o = tiny_options()) {
    const TensorMap base_weights = random_base(o);  // reseeds the global generator: draw it first
    torch::manual_seed(seed);
    SceneRestorer net(o);
    net->load_base(base_weights, "base");
    MapNet mapnet(tiny_mapnet_options());
    {
      torch::NoGradGuard ng;  // LoRA ups and adapter outputs start at zero: make every tensor count
      for (auto& p : net->trainable_parameters()) p.normal_(0, 0.1);
    }
    save_restorer(dir + "/" + name, net, mapnet, blind);
  };
  make("l1.safetensors", 1, false);
  make("gan.safetensors", 2, false);
  const std::string base = dir + "/base.safetensors";
  auto l1 = load_restorer(dir + "/l1.safetensors", base);
  auto gan = load_restorer(dir + "/gan.safetensors", base);
  auto r0 = load_restorer_realism(dir + "/l1.safetensors", dir + "/gan.safetensors", 0.0, base);
  auto r1 = load_restorer_realism(dir + "/l1.safetensors", dir + "/gan.safetensors", 1.0, base);
  auto rh = load_restorer_realism(dir + "/l1.safetensors", dir + "/gan.safetensors", 0.25, base);
  const auto a = l1.net->trainable_state(), b = gan.net->trainable_state();
  const auto s0 = r0.net->trainable_state(), s1 = r1.net->trainable_state(), sh = rh.net->trainable_state();
  int differing = 0;
  for (const auto& [k, v] : a) {
    EXPECT_TRUE(torch::equal(s0.at(k), v)) << k << ": realism 0 is not the L1 weights";
    EXPECT_TRUE(torch::equal(s1.at(k), b.at(k))) << k << ": realism 1 is not the GAN weights";
    EXPECT_TRUE(torch::allclose(sh.at(k), 0.75 * v + 0.25 * b.at(k), 1e-6, 1e-6)) << k;
    differing += !torch::equal(v, b.at(k));
  }
  EXPECT_GT(differing, 10);
  for (const auto& [k, v] : state_dict(*l1.mapnet)) {
    if (!v.is_floating_point()) continue;
    EXPECT_TRUE(torch::allclose(state_dict(*rh.mapnet).at(k), 0.75 * v + 0.25 * state_dict(*gan.mapnet).at(k), 1e-6, 1e-6))
        << "mapnet." << k;
  }
  // The frozen base is never blended.
  for (const auto& [k, v] : state_dict(*l1.net))
    if (k.rfind("base.", 0) == 0) EXPECT_TRUE(torch::equal(state_dict(*rh.net).at(k), v)) << k;
  // Only a model and its own kind: a blind twin or another architecture is refused.
  make("blind.safetensors", 3, true);
  auto other = tiny_options();
  other.lora_rank = 4;
  make("rank4.safetensors", 4, false, other);
  EXPECT_THROW(load_restorer_realism(dir + "/l1.safetensors", dir + "/blind.safetensors", 0.5, base), ArgumentError);
  EXPECT_THROW(load_restorer_realism(dir + "/l1.safetensors", dir + "/rank4.safetensors", 0.5, base), ArgumentError);
  EXPECT_THROW(load_restorer_realism(dir + "/l1.safetensors", dir + "/gan.safetensors", 1.5, base), ArgumentError);
  EXPECT_THROW(load_restorer_realism(dir + "/l1.safetensors", dir + "/missing.safetensors", 0.5, base), IoError);
  f2s_test::remove_tree(dir);
}
