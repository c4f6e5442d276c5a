// FaDeX face-size distillation (issue #19). The first FaDeX saw only 128² clean faces degraded as
// a whole (32² at ×4), so it confuses the size of a face with its downscale: read from a face of
// 128 px in the degraded photo (cut down to 32 px, which hides its noise and blur) or of 16 px
// (blown up), its code makes the conditioned restorer worse than the blind one. The student reads
// the face as it is in the degraded photo, at any side from lq_min to lq_max, and is taught to give
// the code the teacher gives for the same degradation at the teacher's own scale. MapNet and the
// scene restorer were trained on the teacher's codes, so they keep working unchanged.
//
// The same physical degradation: the blur σ, noise σ and JPEG quality of a photo do not depend on
// how large a face is in it, so one parameter draw is applied to the face at the photo's scale
// (clean side 4s for a degraded side s at ×4, s at ×1) and to the teacher's 128² face.
#include <cmath>
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/scene_restorer.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace F = torch::nn::functional;

namespace {
// Clean aligned faces of any size, centre square, resized to side (antialiased), uint8 on the device.
torch::Tensor load_size_faces(const FaDeXTrainOptions& o) {
  const auto& c = o.common;
  std::set<std::string> heldout;
  if (!c.data.heldout_list.empty()) heldout = read_sha256_list(c.data.heldout_list);
  const auto files = list_images(o.size_faces_dir);
  const int64_t side = o.size_source;
  auto faces = decode_all(files, heldout, c.data.threads, [&](torch::Tensor t) {
    const int64_t h = t.size(1), w = t.size(2), m = std::min(h, w);
    t = t.slice(1, (h - m) / 2, (h - m) / 2 + m).slice(2, (w - m) / 2, (w - m) / 2 + m);
    if (m != side) {
      auto f = resize_images(t.unsqueeze(0).to(torch::kFloat32).div(255.0), side, side, ResizeMode::kBicubic);
      t = f.squeeze(0).mul(255.0).round().clamp(0, 255).to(torch::kUInt8);
    }
    return t.contiguous();
  });
  log_info("face-size distillation: " + std::to_string(faces.size()) + " clean faces from " + o.size_faces_dir +
           " at " + std::to_string(side) + "², none in the held-out list (" + std::to_string(heldout.size()) +
           " checksums)");
  return torch::stack(faces).to(c.device);
}

// The frozen restorers of the task loss (FaDeXTrainOptions::task_weight).
struct TaskRestorers {
  LoadedRestorer cond, blind;
  std::unique_ptr<metrics::Lpips> lpips;
};

LoadedRestorer load_frozen(const std::string& path, const std::string& base, const torch::Device& device) {
  auto r = load_restorer(path, base, device);
  r.net->eval();
  r.mapnet->eval();
  for (auto& p : r.net->parameters()) p.set_requires_grad(false);
  for (auto& p : r.mapnet->parameters()) p.set_requires_grad(false);
  return r;
}

TaskRestorers load_task(const FaDeXTrainOptions& o) {
  TaskRestorers t;
  if (o.task_weight <= 0) return t;
  if (o.restorer_weights.empty()) throw ArgumentError("train fadex: --task-weight needs --restorer FILE (the conditioned scene restorer)");
  if (o.lpips_weights.empty()) throw ArgumentError("train fadex: --task-weight needs --lpips-weights DIR");
  if (o.task_batch < 1) throw ArgumentError("train fadex: --task-batch must be at least 1");
  t.cond = load_frozen(o.restorer_weights, o.base_weights, o.common.device);
  if (t.cond.blind) throw ArgumentError(o.restorer_weights + ": the task loss needs the conditioned restorer, not the blind twin");
  if (!o.blind_weights.empty()) {
    t.blind = load_frozen(o.blind_weights, o.base_weights, o.common.device);
    if (!t.blind.blind) throw ArgumentError(o.blind_weights + ": expected the blind twin (metadata blind=1)");
  }
  t.lpips = std::make_unique<metrics::Lpips>(o.lpips_weights, o.common.device);
  log_info("face-size FaDeX: task loss (weight " + std::to_string(o.task_weight) + ") through the frozen " + o.restorer_weights +
           (o.blind_weights.empty() ? std::string() : ", blind twin " + o.blind_weights + " logged"));
  return t;
}
}  // namespace

TrainReport train_fadex_sizes(const FaDeXTrainOptions& o) {
  const auto& c = o.common;
  if (o.size_faces_dir.empty()) throw ArgumentError("train fadex --teacher needs --size-faces DIR (clean aligned faces)");
  if (o.lq_min < 8 || o.lq_max < o.lq_min) throw ArgumentError("train fadex: --lq-sides must be 8 <= min <= max");
  std::filesystem::create_directories(c.out_dir);
  const std::string weights = c.out_dir + "/" + kFaDeXFile, state_file = c.out_dir + "/" + kFaDeXStateFile;
  set_global_seed(c.seed);

  FaDeX teacher = load_fadex(o.teacher, c.device);
  if (teacher->options.lq_geometry != "fixed") {
    throw ArgumentError(o.teacher + ": the teacher must be a fixed-geometry FaDeX (metadata lq_geometry=fixed)");
  }
  teacher->eval();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  const torch::Tensor faces = load_size_faces(o);
  const int64_t teacher_side = teacher->options.in_size;

  // The student starts as the teacher (same options, same normaliser): at step 0 it already gives
  // the teacher's code for faces at the teacher's scale.
  FaDeX net = load_fadex(file_exists(weights) ? weights : o.teacher, c.device);
  net->options.lq_geometry = "native";
  Checkpoint ckpt;
  if (file_exists(state_file)) {
    ckpt = load_checkpoint(state_file);
    load_state_dict_strict(*net, ckpt.group("fadex.net"), state_file);
  }
  net->to(c.device);
  net->train();
  const ParamNormaliser used = ParamNormaliser::of(net);
  AdamW opt(net->parameters(), c.lr, 0.9, 0.99, 1e-4);
  if (ckpt.has("fadex.opt")) {
    opt.load_state(ckpt.group("fadex.opt"), state_file);
    log_info("resuming the face-size FaDeX from " + state_file + " at step " + std::to_string(opt.steps()));
  }
  const torch::Dtype moments = checkpoint_moments_dtype({&opt}, c.fp32_moments_max_mb);
  auto write_checkpoint = [&]() {
    save_checkpoint(state_file, {{"fadex.net", fp32_copy(state_dict(*net))}, {"fadex.opt", opt.state(moments)}}, opt.steps());
    save_fadex(weights, net);
  };

  TaskRestorers task = load_task(o);
  TrainLoop loop(c, "fadex_sizes", {"loss", "code_map", "code_cos", "param_mse", "lq_side", "task", "task_gain"});
  CheckpointClock clock(c.checkpoint_minutes);
  const int64_t n = o.degradations;
  std::uniform_real_distribution<double> unit(0, 1);
  while (loop.keep_going(opt.steps())) {
    // Every draw is a function of (seed, step): a resumed run takes the batches an uninterrupted one would.
    const uint64_t step = uint64_t(opt.steps());
    auto gen = make_generator(mix_seed(c.seed, mix_seed(4000, step)), torch::kCPU);
    std::mt19937_64 rng(mix_seed(c.seed, mix_seed(5000, step)));
    DegradationMix mix(c.presets, 4.0f, mix_seed(c.seed, mix_seed(6000, step)));
    const bool x1 = unit(rng) < c.x1_fraction;
    // Log-uniform side of the face in the degraded photo: as many small faces as large ones.
    const double lo = std::log(double(x1 ? std::max<int64_t>(o.lq_min, 16) : o.lq_min)), hi = std::log(double(o.lq_max));
    const int64_t s = std::llround(std::exp(lo + (hi - lo) * unit(rng)));
    const int64_t clean_side = x1 ? s : 4 * s;
    const auto params = mix.sample_batch(int(n), x1, rng);

    auto idx = torch::randint(faces.size(0), {n}, gen, torch::TensorOptions().dtype(torch::kInt64)).to(c.device);
    auto src = faces.index_select(0, idx).to(torch::kFloat32).div_(255.0);
    auto flip = torch::rand({n}, gen).lt(0.5).to(c.device).view({n, 1, 1, 1});
    src = torch::where(flip, src.flip({3}), src);
    torch::Tensor hq, lq_photo, clean_photo, target_map, target_code;
    {
      torch::NoGradGuard ng;
      hq = resize_images(src, teacher_side, teacher_side, ResizeMode::kBicubic).clamp(0, 1);
      clean_photo = resize_images(src, clean_side, clean_side, ResizeMode::kBicubic).clamp(0, 1);
      lq_photo = apply_degradation(clean_photo, params);
      const auto t = teacher->forward(apply_degradation(hq, params), hq);
      target_map = t.code_map;
      target_code = t.code;
    }
    auto out = net->forward(lq_photo, hq);
    // The code map is what MapNet reads: match it relative to its own energy; the global code
    // (contrastive space) by angle.
    auto map_loss = (out.code_map - target_map).pow(2).mean() / target_map.pow(2).mean().clamp_min(1e-8);
    auto cos_loss = (1 - (out.code * target_code).sum(1)).mean();
    auto target = used.normalise(params, c.device);
    auto mse = (out.params - target).pow(2).mean();
    auto loss = o.code_weight * map_loss + cos_loss + o.param_weight * mse;
    double task_value = 0, task_gain = 0;
    if (task.lpips) {
      // The degraded face at the photo's scale is the restorer's input, the clean one its target
      // (at ×1 both cut to a multiple of 4, as the restorer needs); gradients reach only the student.
      const int64_t tb = std::min<int64_t>(o.task_batch, n), side = x1 ? s / 4 * 4 : s;
      const int scale = x1 ? 1 : 4;
      auto lq = lq_photo.slice(0, 0, tb).slice(2, 0, side).slice(3, 0, side);
      auto target = clean_photo.slice(0, 0, tb).slice(2, 0, side * scale).slice(3, 0, side * scale);
      auto restore_loss = [&](LoadedRestorer& r, const torch::Tensor& tokens) {
        auto pred = r.net->forward(lq, tokens, scale).to(torch::kFloat32);
        auto l1 = (pred - target).abs().mean();
        // LPIPS's SqueezeNet pools a side under 48 px away to nothing: L1 alone there (×1, tiny faces).
        if (side * scale < 48) return l1;
        return l1 + o.task_lpips_weight * task.lpips->distance(pred.clamp(0, 1), target).mean();
      };
      auto task_loss = restore_loss(task.cond, task.cond.mapnet->forward(out.code_map.slice(0, 0, tb)));
      loss = loss + o.task_weight * task_loss;
      task_value = task_loss.item<double>();
      if (task.blind.net) {
        torch::NoGradGuard ng;
        task_gain = task_value - restore_loss(task.blind, task.blind.mapnet->null_tokens(tb)).item<double>();
      }
    }
    opt.zero_grad();
    loss.backward();
    opt.step();
    loop.record(opt.steps(), n,
                {loss.item<double>(), map_loss.item<double>(), cos_loss.item<double>(), mse.item<double>(), double(s), task_value, task_gain});
    if (clock.due()) write_checkpoint();
  }
  net->eval();
  write_checkpoint();
  return loop.finish(opt.steps());
}

}  // namespace face2scene
