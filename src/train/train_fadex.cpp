// FaDeX training: one sampled degradation applied to two different faces is a positive pair for
// a symmetric InfoNCE loss (the other degradations of the batch are the negatives), plus
// regression of the normalised parameter vector so the code can be read out in words.
#include <chrono>
#include <filesystem>
#include <fstream>

#include "face2scene/core.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace F = torch::nn::functional;

TrainReport train_fadex(const FaDeXTrainOptions& o) {
  if (!o.teacher.empty()) {
    // The distillation loop has no gradient averaging yet: refuse rather than train N divergent
    // replicas that all write the same files.
    if (o.common.dist) throw ArgumentError("train fadex --teacher does not support --distributed yet");
    return train_fadex_sizes(o);
  }
  const auto& c = o.common;
  std::filesystem::create_directories(c.out_dir);
  const std::string weights = c.out_dir + "/" + kFaDeXFile, state_file = c.out_dir + "/" + kFaDeXStateFile;
  const std::string old_optim_file = c.out_dir + "/fadex_optim.safetensors";  // before single-file checkpoints
  set_global_seed(c.seed);
  // Distributed: each rank its own data shard and sample streams (rank 0 keeps the run's seed).
  auto data_opts = c.data;
  data_opts.shard_rank = c.rank();
  data_opts.shard_count = c.world_size();
  const uint64_t seed = dist::rank_seed(c.seed, c.rank());
  const TrainData data = load_train_data(data_opts, c.device);

  FaDeXOptions net_options = o.net;
  net_options.param_dim = kDegradationTargetSize;
  FaDeX net(net_options);
  const auto norm = ParamNormaliser::estimate(c.presets, 4.0f, 4096, c.seed);
  if (file_exists(weights)) {
    net = load_fadex(weights, c.device);  // its options (the checkpoint holds only tensors)
    log_info("resuming FaDeX from " + weights);
  } else {
    net->param_mean.copy_(norm.mean);
    net->param_std.copy_(norm.std);
  }
  Checkpoint ckpt;
  if (file_exists(state_file)) {
    // The checkpoint, not the weights file, is the resume point: written in one piece, it holds
    // the weights (float32) of the very step its moments belong to.
    ckpt = load_checkpoint(state_file);
    load_state_dict_strict(*net, ckpt.group("fadex.net"), state_file);
  }
  net->to(c.device);
  net->train();
  // The file's normaliser is the one the head was trained against: use it for the targets too.
  ParamNormaliser used = norm;
  used.mean = net->param_mean.detach().cpu();
  used.std = net->param_std.detach().cpu();
  AdamW opt(net->parameters(), c.lr, 0.9, 0.99, 1e-4);
  if (ckpt.has("fadex.opt")) {
    opt.load_state(ckpt.group("fadex.opt"), state_file);
    log_info("resuming FaDeX from " + state_file + " at step " + std::to_string(opt.steps()));
  } else if (file_exists(old_optim_file)) {
    opt.load_state(load_safetensors(old_optim_file).tensors, old_optim_file);
  }
  std::unique_ptr<dist::GradSync> sync;
  if (c.dist) {
    auto all = net->parameters();
    for (auto& t : net->buffers()) all.push_back(t);
    dist::broadcast_tensors(*c.dist, all);  // rank 0's weights are the replicas' start
    sync = std::make_unique<dist::GradSync>(c.dist, net->parameters());
  }
  const torch::Dtype moments = checkpoint_moments_dtype({&opt}, c.fp32_moments_max_mb);
  auto write_checkpoint = [&]() {
    if (!c.primary()) return;  // replicas are identical: rank 0 writes
    save_checkpoint(state_file, {{"fadex.net", fp32_copy(state_dict(*net))}, {"fadex.opt", opt.state(moments)}}, opt.steps());
    save_fadex(weights, net);  // the deliverable; resuming reads the checkpoint above
  };

  TrainLoop loop(c, "fadex", {"loss", "infonce", "param_mse", "top1"});
  CheckpointClock clock(c.checkpoint_minutes);
  const int64_t k = o.degradations;
  const auto labels = torch::arange(k, torch::TensorOptions().dtype(torch::kInt64).device(c.device));
  std::uniform_real_distribution<double> unit(0, 1);
  while (loop.keep_going(opt.steps())) {
    // Every random draw of a step is a function of (seed, step) alone, so a resumed run takes
    // exactly the batches an uninterrupted one would.
    const uint64_t step = uint64_t(opt.steps());
    auto step_gen = make_generator(mix_seed(seed, mix_seed(1000, step)), torch::kCPU);
    std::mt19937_64 rng(mix_seed(seed, mix_seed(2000, step)));
    DegradationMix mix(c.presets, 4.0f, mix_seed(seed, mix_seed(3000, step)));
    const bool x1 = unit(rng) < c.x1_fraction;
    auto params = mix.sample_batch(int(k), x1, rng);
    auto both = params;
    both.insert(both.end(), params.begin(), params.end());
    // Two disjoint draws of faces: index i and k+i share a degradation but (almost surely) not a face.
    auto hq = sample_faces(data, 2 * k, step_gen);
    torch::Tensor lq;
    {
      torch::NoGradGuard ng;
      lq = apply_degradation(hq, both);
    }
    auto out = net->forward(lq, hq);
    auto za = out.code.narrow(0, 0, k), zb = out.code.narrow(0, k, k);
    auto logits = torch::matmul(za, zb.t()) / o.temperature;
    auto infonce = 0.5 * (F::cross_entropy(logits, labels) + F::cross_entropy(logits.t(), labels));
    auto target = used.normalise(both, c.device);
    auto mask = used.mask.to(c.device);
    auto mse = ((out.params - target).pow(2) * mask).sum() / (mask.sum() * double(2 * k));
    auto loss = infonce + o.param_weight * mse;
    opt.zero_grad();
    loss.backward();
    if (sync) sync->finish();  // all-reduces overlapped backward; this waits and averages
    opt.step();
    const double top1 = logits.argmax(1).eq(labels).to(torch::kFloat32).mean().item<double>();
    loop.record(opt.steps(), 2 * k, {loss.item<double>(), infonce.item<double>(), mse.item<double>(), top1});
    if (clock.due()) write_checkpoint();
  }
  net->eval();
  write_checkpoint();
  return loop.finish(opt.steps());
}

}  // namespace face2scene
