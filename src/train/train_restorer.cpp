// Scene-restorer training: each sample pairs a face and a scene crop degraded by the same sampled
// degradation; frozen FaDeX reads the code from the (degraded, clean) face, MapNet turns it into
// 21 tokens, the conditioned restorer restores the scene. The blind twin (same architecture, null
// tokens only) trains on the very same batches, so the ablation compares like with like.
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
  std::unique_ptr<dist::GradSync> sync;  // distributed runs only
  std::string weights, optim_file;  // optim_file: only read (resumes a folder from before checkpoints)
};

// What the checkpoint keeps of a student: its trainable weights (float32) and moments.
void add_to_checkpoint(CheckpointGroups& g, const Student& s, torch::Dtype moments) {
  g[s.name + ".net"] = fp32_copy(s.net->trainable_state());
  g[s.name + ".mapnet"] = fp32_copy(state_dict(*s.mapnet));
  if (s.penc) g[s.name + ".penc"] = fp32_copy(state_dict(*s.penc));
  g[s.name + ".opt"] = s.opt->state(moments);
}

void restore_from_checkpoint(Student& s, const Checkpoint& ck) {
  s.net->load_trainable_state(ck.group(s.name + ".net"), ck.path);
  load_state_dict_strict(*s.mapnet, ck.group(s.name + ".mapnet"), ck.path);
  if (s.penc) load_state_dict_strict(*s.penc, ck.group(s.name + ".penc"), ck.path);
  s.opt->load_state(ck.group(s.name + ".opt"), ck.path);
}

void init_student(Student& s, const RestorerTrainOptions& o, const SafeTensors& base, const Checkpoint* ckpt) {
  const auto& c = o.common;
  s.weights = c.out_dir + "/" + (s.params ? kRestorerParamsFile : s.blind ? kRestorerBlindFile : kRestorerFile);
  s.optim_file = c.out_dir + "/" + s.name + "_optim.safetensors";
  const std::string penc_file = c.out_dir + "/" + kParamEncoderFile;
  // The upper-bound student starts from the conditioned restorer (its adapters already know how
  // to use a code); only its code source changes.
  const std::string init = s.params && !file_exists(s.weights) ? c.out_dir + "/" + kRestorerFile : s.weights;
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
  for (auto& s : students) init_student(s, o, base, file_exists(state_file) ? &ckpt : nullptr);
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
  for (const auto& s : students) opts.push_back(s.opt.get());
  const torch::Dtype moments = checkpoint_moments_dtype(opts, c.fp32_moments_max_mb);
  auto write_checkpoint = [&](int64_t step) {
    if (!c.primary()) return;  // replicas are identical: rank 0 writes
    CheckpointGroups g;
    for (const auto& s : students) add_to_checkpoint(g, s, moments);
    save_checkpoint(state_file, g, step);
    // The deliverables; resuming reads the checkpoint above.
    for (auto& s : students) {
      save_restorer(s.weights, s.net, s.mapnet, s.blind);
      if (s.params) save_param_encoder(c.out_dir + "/" + kParamEncoderFile, s.penc);
    }
  };

  std::vector<std::string> cols{"loss", "l1", "lpips"};
  if (o.train_blind) cols.insert(cols.end(), {"blind_loss", "blind_l1", "blind_lpips"});
  if (o.param_oracle) cols.insert(cols.end(), {"params_loss", "params_l1", "params_lpips"});
  TrainLoop loop(c, "restorer", cols);
  CheckpointClock clock(c.checkpoint_minutes);
  std::uniform_real_distribution<double> unit(0, 1);
  const int64_t b = o.batch;
  int64_t step = start;
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
    auto scene_hq = sample_scene_crops(data, b, o.crop, gen);
    torch::Tensor face_lq, scene_lq, code_map, true_params;
    {
      torch::NoGradGuard ng;
      face_lq = apply_degradation(face_hq, params);
      scene_lq = apply_degradation(scene_hq, params);
      code_map = fadex->forward(face_lq, face_hq).code_map;
      if (o.param_oracle) true_params = norm.normalise(params, c.device);
    }
    std::vector<double> values;
    for (auto& s : students) {
      torch::Tensor loss, l1, lp;
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
        auto pred = s.net->forward(scene_lq, tokens, scale).to(torch::kFloat32);
        l1 = (pred - scene_hq).abs().mean();
        lp = lpips.distance(pred.clamp(0, 1), scene_hq).mean().to(torch::kFloat32);
        loss = l1 + o.lpips_weight * lp;
      }
      s.opt->zero_grad();
      loss.backward();
      if (s.sync) s.sync->finish();  // all-reduces overlapped backward; this waits and averages
      s.opt->step();
      values.insert(values.end(), {loss.item<double>(), l1.item<double>(), lp.item<double>()});
    }
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
  return loop.finish(step);
}

}  // namespace face2scene
