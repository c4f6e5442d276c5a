// Scene-restorer training: each sample pairs a face and a scene crop degraded by the same sampled
// degradation; frozen FaDeX reads the code from the (degraded, clean) face, MapNet turns it into
// 21 tokens, the conditioned restorer restores the scene. The blind twin (same architecture, null
// tokens only) trains on the very same batches, so the ablation compares like with like.
// With --gan-weight (issue 21) every student also has its own U-Net discriminator: one each, not
// one shared, so that neither generator's adversarial signal depends on how good the other's
// fakes are, and the pair differs in nothing but the face code.
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace {

struct Student {
  std::string name;
  bool blind = false;
  bool params = false;    // conditioned on the true parameters (ParamEncoder), not on FaDeX
  ParamEncoder penc{nullptr};
  SceneRestorer net{nullptr};
  MapNet mapnet{nullptr};
  std::unique_ptr<AdamW> opt;
  UNetDiscriminator disc{nullptr};  // GAN training only
  std::unique_ptr<AdamW> disc_opt;
  std::unique_ptr<dist::GradSync> sync;  // distributed runs only
  std::string weights, optim_file;  // optim_file: only read (resumes a folder from before checkpoints)
};

// What the checkpoint keeps of a student: its trainable weights (float32) and moments.
void add_to_checkpoint(CheckpointGroups& g, const Student& s, torch::Dtype moments) {
  g[s.name + ".net"] = fp32_copy(s.net->trainable_state());
  g[s.name + ".mapnet"] = fp32_copy(state_dict(*s.mapnet));
  if (s.penc) g[s.name + ".penc"] = fp32_copy(state_dict(*s.penc));
  g[s.name + ".opt"] = s.opt->state(moments);
  if (s.disc) {
    g[s.name + ".disc"] = fp32_copy(state_dict(*s.disc));  // with the power-iteration vectors
    g[s.name + ".disc_opt"] = s.disc_opt->state(moments);
  }
}

void restore_from_checkpoint(Student& s, const Checkpoint& ck) {
  s.net->load_trainable_state(ck.group(s.name + ".net"), ck.path);
  load_state_dict_strict(*s.mapnet, ck.group(s.name + ".mapnet"), ck.path);
  if (s.penc) load_state_dict_strict(*s.penc, ck.group(s.name + ".penc"), ck.path);
  s.opt->load_state(ck.group(s.name + ".opt"), ck.path);
  // A GAN run resumed from an L1 checkpoint starts its critics fresh.
  if (s.disc && ck.has(s.name + ".disc")) {
    load_state_dict_strict(*s.disc, ck.group(s.name + ".disc"), ck.path);
    s.disc_opt->load_state(ck.group(s.name + ".disc_opt"), ck.path);
  }
}

// The file a fine-tune starts from when out_dir has none: <init_dir>/restorer*.safetensors, or
// the shipped names (weights/scene_restorer*.safetensors). Empty when there is none.
std::string init_file(const std::string& init_dir, const std::string& name) {
  if (init_dir.empty()) return "";
  for (const std::string& f : {init_dir + "/" + name, init_dir + "/scene_" + name}) {
    if (file_exists(f)) return f;
  }
  throw IoError(init_dir + ": neither " + name + " nor scene_" + name + " to start from (--init)");
}

// disc_cond_dim: FaDeX's global code width (what a projection critic is conditioned on).
void init_student(Student& s, const RestorerTrainOptions& o, const SafeTensors& base, const Checkpoint* ckpt,
                  int64_t disc_cond_dim) {
  const auto& c = o.common;
  s.weights = c.out_dir + "/" + (s.params ? kRestorerParamsFile : s.blind ? kRestorerBlindFile : kRestorerFile);
  s.optim_file = c.out_dir + "/" + s.name + "_optim.safetensors";
  const std::string penc_file = c.out_dir + "/" + kParamEncoderFile;
  // The upper-bound student starts from the conditioned restorer (its adapters already know how
  // to use a code); only its code source changes.
  std::string init = s.params && !file_exists(s.weights) ? c.out_dir + "/" + kRestorerFile : s.weights;
  if (!file_exists(init) && !o.init_dir.empty() && !s.params) {
    init = init_file(o.init_dir, s.blind ? kRestorerBlindFile : kRestorerFile);
  }
  if (file_exists(init)) {
    const RealEsrganModel trained_on = restorer_backbone(init);
    if (trained_on != o.net.backbone) {
      throw ArgumentError(init + ": was trained on the " + model_name(trained_on) + " backbone, not " +
                          model_name(o.net.backbone) + " (use another --out or --backbone)");
    }
    auto loaded = load_restorer(init, o.base_weights, c.device, /*fill_missing_gates=*/true);
    s.net = loaded.net;
    s.mapnet = loaded.mapnet;
    log_info((init == s.weights ? "resuming " : "starting ") + s.name + " from " + init);
  } else {
    s.net = SceneRestorer(o.net);
    s.net->load_base(base.tensors, o.base_weights);
    auto mo = o.mapnet;
    mo.token_dim = o.net.token_dim;
    s.mapnet = MapNet(mo);
  }
  s.net->to(c.device);
  s.mapnet->to(c.device);
  s.net->train();
  s.mapnet->train();
  auto params = s.net->trainable_parameters();
  for (auto& p : s.mapnet->parameters()) params.push_back(p);
  if (s.params) {
    if (file_exists(s.weights) && file_exists(penc_file)) {
      s.penc = load_param_encoder(penc_file, c.device);
    } else {
      ParamEncoderOptions po;
      po.param_dim = kDegradationTargetSize;
      po.code_dim = s.mapnet->options.code_dim;
      s.penc = ParamEncoder(po);
    }
    s.penc->to(c.device);
    s.penc->train();
    for (auto& p : s.penc->parameters()) params.push_back(p);
  }
  s.opt = std::make_unique<AdamW>(params, c.lr, 0.9, 0.99, 0.0);
  if (o.gan_weight > 0) {
    // Every student's own critic, all identically initialised.
    auto dopt = o.disc;
    dopt.cond_dim = o.disc_projection ? disc_cond_dim : 0;
    torch::manual_seed(int64_t(mix_seed(c.seed, 11000) % (uint64_t(1) << 62)));
    s.disc = UNetDiscriminator(dopt);
    s.disc->to(c.device);
    s.disc->train();
    // Real-ESRGAN's critic: Adam, betas (0.9, 0.99), its own learning rate.
    s.disc_opt = std::make_unique<AdamW>(s.disc->parameters(), o.disc_lr, 0.9, 0.99, 0.0);
  }
  if (c.dist) {
    // Whatever each rank loaded, rank 0's weights are the replicas' start.
    auto all = params;
    for (auto& t : s.net->buffers()) all.push_back(t);
    for (auto& t : s.mapnet->buffers()) all.push_back(t);
    dist::broadcast_tensors(*c.dist, all);
    s.sync = std::make_unique<dist::GradSync>(c.dist, params);
  }
  if (ckpt && ckpt->has(s.name + ".opt")) {
    // The checkpoint is the resume point: weights and moments of one step, written in one piece.
    restore_from_checkpoint(s, *ckpt);
  } else if (file_exists(s.optim_file)) {
    s.opt->load_state(load_safetensors(s.optim_file).tensors, s.optim_file);
  }
}

}  // namespace

TrainReport train_restorer(const RestorerTrainOptions& o) {
  const auto& c = o.common;
  if (c.dist && o.gan_weight > 0) {
    // The critics' gradients are not averaged over ranks yet: each rank would train its own critic.
    throw ArgumentError("train restorer: --distributed with --gan-weight > 0 is not supported yet");
  }
  std::filesystem::create_directories(c.out_dir);
  set_global_seed(c.seed);
  if (c.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  // Distributed: each rank its own data shard and sample streams (rank 0 keeps the run's seed).
  auto data_opts = c.data;
  data_opts.shard_rank = c.rank();
  data_opts.shard_count = c.world_size();
  const uint64_t seed = dist::rank_seed(c.seed, c.rank());
  const TrainData data = load_train_data(data_opts, c.device);
  FaDeX fadex = load_fadex(o.fadex_weights, c.device);
  for (auto& p : fadex->parameters()) p.set_requires_grad(false);
  const metrics::Lpips lpips(o.lpips_weights, c.device);
  const SafeTensors base = load_safetensors(o.base_weights);
  check_arch(base, model_arch(o.net.backbone), o.base_weights);

  std::vector<Student> students(1);
  students[0].name = "restorer";
  if (o.train_blind) {
    students.emplace_back();
    students.back().name = "restorer_blind";
    students.back().blind = true;
  }
  if (o.param_oracle) {
    students.emplace_back();
    students.back().name = "restorer_params";
    students.back().params = true;
  }
  // The upper bound's input: the parameter vector normalised as FaDeX's head was trained.
  const ParamNormaliser norm = ParamNormaliser::of(fadex);
  const std::string state_file = c.out_dir + "/" + kRestorerStateFile;
  Checkpoint ckpt;
  if (file_exists(state_file)) ckpt = load_checkpoint(state_file);
  for (auto& s : students)
    init_student(s, o, base, file_exists(state_file) ? &ckpt : nullptr, fadex->options.code_dim);
  const int64_t start = students[0].opt->steps();
  for (const auto& s : students) {
    // A student added to a resumed run (e.g. --param-oracle later) starts at 0: steps still count
    // the run's batches, and each student's own moments carry its own bias correction.
    if (s.opt->steps() != start && s.opt->steps() != 0) {
      throw FormatError(state_file + ": " + s.name + " is at step " + std::to_string(s.opt->steps()) + ", " +
                        students[0].name + " at " + std::to_string(start));
    }
  }
  std::vector<const AdamW*> opts;
  for (const auto& s : students) {
    opts.push_back(s.opt.get());
    if (s.disc_opt) opts.push_back(s.disc_opt.get());
  }
  const bool gan = o.gan_weight > 0;
  Metadata trained;
  if (gan) {
    trained = {{"losses", "l1+lpips+gan"},
               {"loss_weights", std::to_string(o.l1_weight) + "/" + std::to_string(o.lpips_weight) + "/" +
                                    std::to_string(o.gan_weight)},
               {"discriminator", std::string("unet-sn") + (o.disc_projection ? "+projection" : "")}};
    if (!o.init_dir.empty()) trained["init"] = o.init_dir;
  }
  const torch::Dtype moments = checkpoint_moments_dtype(opts, c.fp32_moments_max_mb);
  auto write_checkpoint = [&](int64_t step) {
    if (!c.primary()) return;  // replicas are identical: rank 0 writes
    CheckpointGroups g;
    for (const auto& s : students) add_to_checkpoint(g, s, moments);
    save_checkpoint(state_file, g, step);
    // The deliverables; resuming reads the checkpoint above.
    for (auto& s : students) {
      save_restorer(s.weights, s.net, s.mapnet, s.blind, torch::kFloat32, trained);
      if (s.params) save_param_encoder(c.out_dir + "/" + kParamEncoderFile, s.penc);
    }
  };

  std::vector<std::string> cols;
  for (const auto& s : students) {
    const std::string p = s.blind ? "blind_" : s.params ? "params_" : "";
    cols.insert(cols.end(), {p + "loss", p + "l1", p + "lpips"});
    if (gan) cols.insert(cols.end(), {p + "adv", p + "d_loss", p + "d_real", p + "d_fake"});
  }
  TrainLoop loop(c, "restorer", cols);
  CheckpointClock clock(c.checkpoint_minutes);
  std::uniform_real_distribution<double> unit(0, 1);
  const int64_t b = o.batch;
  int64_t step = start;
  std::vector<torch::Tensor> last_pred(students.size());  // the sample grid's columns
  torch::Tensor last_lq, last_hq;
  while (loop.keep_going(step)) {
    // Every random draw of a step is a function of (seed, step) alone, so a resumed run takes
    // exactly the batches an uninterrupted one would.
    auto gen = make_generator(mix_seed(seed, mix_seed(5000, uint64_t(step))), torch::kCPU);
    std::mt19937_64 rng(mix_seed(seed, mix_seed(6000, uint64_t(step))));
    DegradationMix mix(c.presets, 4.0f, mix_seed(seed, mix_seed(7000, uint64_t(step))));
    const bool x1 = unit(rng) < c.x1_fraction;
    const int scale = x1 ? 1 : 4;
    auto params = mix.sample_batch(o.batch, x1, rng);
    auto face_hq = sample_faces(data, b, gen);
    auto scene_hq = sample_scene_crops(data, b, o.crop, gen, o.people_fraction);
    torch::Tensor face_lq, scene_lq, code_map, code, true_params;
    {
      torch::NoGradGuard ng;
      // Bokeh is put into the clean target, then degraded like the rest.
      scene_hq = add_shallow_dof(scene_hq, o.dof_prob, gen);
      face_lq = apply_degradation(face_hq, params);
      scene_lq = apply_degradation(scene_hq, params);
      auto fo = fadex->forward(face_lq, face_hq);
      code_map = fo.code_map;
      code = fo.code;
      if (o.param_oracle) true_params = norm.normalise(params, c.device);
    }
    const bool adversarial = gan && step >= o.gan_warmup;
    const torch::Tensor disc_cond = o.disc_projection ? code : torch::Tensor();
    std::vector<double> values;
    for (auto& s : students) {
      torch::Tensor loss, l1, lp, pred;
      torch::Tensor adv = torch::zeros({});
      {
        // The forward pass (bf16 with --amp); backward runs outside, as with torch.autocast.
        AutocastScope amp(o.amp, c.device);
        torch::Tensor tokens;
        if (s.blind) {
          tokens = s.mapnet->null_tokens(b);
        } else {
          tokens = s.mapnet->forward(s.params ? s.penc->forward(true_params) : code_map);
          auto drop = torch::rand({b, 1, 1}, gen).lt(o.null_token_prob).to(c.device);
          tokens = torch::where(drop, s.mapnet->null_tokens(b), tokens);
        }
        pred = s.net->forward(scene_lq, tokens, scale).to(torch::kFloat32);
        l1 = (pred - scene_hq).abs().mean();
        lp = lpips.distance(pred.clamp(0, 1), scene_hq).mean().to(torch::kFloat32);
        // Without GAN the loss is exactly what it always was (l1_weight 1 multiplies nothing).
        loss = o.l1_weight == 1.0 ? l1 + o.lpips_weight * lp : o.l1_weight * l1 + o.lpips_weight * lp;
        if (adversarial) {
          // The critic judges the raw output (as Real-ESRGAN's); its weights get no gradient here.
          for (auto& p : s.disc->parameters()) p.set_requires_grad(false);
          adv = gan_generator_loss(s.disc->forward(pred, disc_cond));
          for (auto& p : s.disc->parameters()) p.set_requires_grad(true);
          loss = loss + o.gan_weight * adv;
        }
      }
      s.opt->zero_grad();
      loss.backward();
      if (s.sync) s.sync->finish();  // all-reduces overlapped backward; this waits and averages
      s.opt->step();
      values.insert(values.end(), {loss.item<double>(), l1.item<double>(), lp.item<double>()});
      if (s.disc) {
        // The critic learns on every step (also during the generators' warm-up), on this step's
        // clean crops against the generator's output from before its update.
        torch::Tensor real, fake;
        {
          AutocastScope amp(o.amp, c.device);
          real = s.disc->forward(scene_hq, disc_cond).to(torch::kFloat32);
          fake = s.disc->forward(pred.detach(), disc_cond).to(torch::kFloat32);
        }
        auto d_loss = gan_critic_loss(real, fake);
        s.disc_opt->zero_grad();
        d_loss.backward();
        s.disc_opt->step();
        values.insert(values.end(), {adv.item<double>(), d_loss.item<double>(), real.mean().item<double>(),
                                     fake.mean().item<double>()});
      }
      last_pred[size_t(&s - &students[0])] = pred.detach();
    }
    last_lq = scene_lq;
    last_hq = scene_hq;
    ++step;
    loop.record(step, b, values);
    if (clock.due()) write_checkpoint(step);
  }
  for (auto& s : students) {
    s.net->eval();
    s.mapnet->eval();
    if (s.penc) s.penc->eval();
  }
  write_checkpoint(step);
  if (last_hq.defined()) {
    // Rows: degraded (nearest-upscaled) | each student (conditioned, blind, …) | clean: look at
    // this for GAN artefacts before trusting any score.
    const int64_t rows = std::min<int64_t>(4, b), side = last_hq.size(2);
    auto up = torch::nn::functional::interpolate(
        last_lq.slice(0, 0, rows).to(torch::kFloat32),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{side, side}).mode(torch::kNearest));
    std::vector<torch::Tensor> columns{up};
    for (const auto& p : last_pred) columns.push_back(p.slice(0, 0, rows));
    columns.push_back(last_hq.slice(0, 0, rows));
    for (auto& col : columns) col = col.to(torch::kCPU, torch::kFloat32).clamp(0, 1);
    auto grid = torch::cat(columns, 3);                                   // [rows,3,s,cols*s]
    grid = grid.permute({1, 0, 2, 3}).reshape({3, rows * side, grid.size(3)});  // rows stacked
    write_image(c.out_dir + "/restorer_samples.png", tensor_to_image(grid));
  }
  return loop.finish(step);
}

}  // namespace face2scene
