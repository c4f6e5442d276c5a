// Ref-FR training: faces degraded on the device by the degradation engine (mild … severe, face
// downscale ×2 … ×16: the sizes of faces in group photos), references drawn from *other* photos of
// the same identity, 30 % of batches without references. Losses: L1 + LPIPS + identity (a frozen
// embedding network that is not the benchmark's judge) + a non-saturating GAN loss against a
// spectrally normalised PatchGAN critic after a warm-up. The blind twin (the same network, never
// given references) trains on the very same batches: it is the control of every comparison.
#include <chrono>
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train_ref_fr.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace F = torch::nn::functional;

namespace {
struct Student {
  std::string name, weights;
  bool blind = false;
  RefFR net{nullptr};
  PatchDiscriminator critic{nullptr};
  std::unique_ptr<AdamW> opt, critic_opt;
  std::unique_ptr<dist::GradSync> sync, critic_sync;  // distributed runs only
};

TensorMap prefixed(const TensorMap& m, const std::string& p) {
  TensorMap out;
  for (const auto& [k, v] : m) out[p + k] = v;
  return out;
}
TensorMap with_prefix_only(const TensorMap& m, const std::string& p) {
  TensorMap out;
  for (const auto& [k, v] : m)
    if (k.rfind(p, 0) == 0) out[k.substr(p.size())] = v;
  return out;
}

// Everything a resumed run needs besides the generators' files: critics and all moments.
void save_state(const std::string& path, const std::vector<Student>& students) {
  TensorMap all;
  for (const auto& s : students) {
    for (auto& [k, v] : prefixed(state_dict(*s.critic), s.name + ".critic.")) all[k] = v.detach().cpu();
    for (auto& [k, v] : prefixed(s.opt->state(), s.name + ".opt.")) all[k] = v;
    for (auto& [k, v] : prefixed(s.critic_opt->state(), s.name + ".critic_opt.")) all[k] = v;
  }
  save_safetensors(path, all, {{"arch", "face2scene-ref-fr-train-state"}, {"version", "1"}});
}

void save_all(const RefFRTrainOptions& o, std::vector<Student>& students, const std::string& state_file,
              int64_t step) {
  if (!o.common.primary()) return;  // replicas are identical: rank 0 writes
  for (auto& s : students) {
    s.net->eval();
    save_ref_fr(s.weights, s.net, s.blind, torch::kFloat32,
                {{"trained_steps", std::to_string(step)},
                 {"identity_loss", o.identity_weights.empty() ? "none" : "faceres"}});
    s.net->train();
  }
  save_state(state_file, students);
}

// Random per-channel gain and offset on references: AdaIN must make colour come from the face.
torch::Tensor jitter_refs(const torch::Tensor& refs, torch::Generator& gen) {
  const auto s = refs.sizes();
  auto gain = (torch::rand({s[0], s[1], 3, 1, 1}, gen) * 0.3 + 0.85).to(refs.device());
  auto shift = ((torch::rand({s[0], s[1], 1, 1, 1}, gen) - 0.5) * 0.1).to(refs.device());
  auto flip = torch::rand({s[0], s[1], 1, 1, 1}, gen).lt(0.5).to(refs.device());
  auto r = torch::where(flip, refs.flip({4}), refs);
  return (r * gain + shift).clamp(0, 1);
}

Image sample_grid(const std::vector<torch::Tensor>& columns, int64_t rows) {
  std::vector<torch::Tensor> r;
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<torch::Tensor> row;
    for (const auto& c : columns) row.push_back(c[i].detach().to(torch::kCPU, torch::kFloat32).clamp(0, 1));
    r.push_back(torch::cat(row, 2));
  }
  return tensor_to_image(torch::cat(r, 1));
}
}  // namespace

TrainReport train_ref_fr(const RefFRTrainOptions& o) {
  const auto& c = o.common;
  std::filesystem::create_directories(c.out_dir);
  set_global_seed(c.seed);
  if (c.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const auto split = read_face_split(o.split_file);
  // Distributed: each rank its own identities and sample streams (rank 0 keeps the run's seed).
  const FaceSet set = load_face_set(o.faces_dir, o.net.size, split, c.device, 0, c.rank(), c.world_size());
  const uint64_t seed = dist::rank_seed(c.seed, c.rank());
  const metrics::Lpips lpips(o.lpips_weights, c.device);
  FaceEmbedFn embed;
  if (!o.identity_weights.empty()) embed = make_identity_embed(o.identity_weights, c.device);

  std::vector<Student> students(1);
  students[0].name = "ref_fr";
  students[0].weights = c.out_dir + "/" + kRefFRFile;
  if (o.train_blind) {
    students.emplace_back();
    students.back().name = "ref_fr_blind";
    students.back().weights = c.out_dir + "/" + kRefFRBlindFile;
    students.back().blind = true;
  }
  const std::string state_file = c.out_dir + "/" + kRefFRStateFile;
  // Resume: the generators from their files (fp32, or the bf16 copies that travel back from the
  // GPU machine); critics and moments only when the state file is there too (else they restart).
  const bool have_weights = file_exists(students[0].weights);
  const bool have_state = have_weights && file_exists(state_file);
  const TensorMap state = have_state ? load_safetensors(state_file).tensors : TensorMap{};
  int64_t start = 0;
  for (auto& s : students) {
    if (have_weights) {
      auto loaded = load_ref_fr(s.weights, c.device);
      s.net = loaded.net;
      if (&s == &students[0] && loaded.metadata.count("trained_steps"))
        start = metadata_int(loaded.metadata, "trained_steps", s.weights);
    } else {
      s.net = RefFR(o.net);
      if (!o.init_dir.empty()) {
        const std::string init = o.init_dir + "/" + (s.blind ? kRefFRBlindFile : kRefFRFile);
        const auto warm = warm_start_ref_fr(s.net, init);
        if (&s == &students[0] && warm.metadata.count("trained_steps"))
          start = metadata_int(warm.metadata, "trained_steps", init);
        log_info("warm start of " + s.name + " from " + init + ": " + std::to_string(warm.fresh.size()) +
                 " new tensors keep their initialisation");
      }
    }
    s.net->to(c.device);
    s.net->train();
    s.critic = PatchDiscriminator();
    if (have_state) load_state_dict_strict(*s.critic, with_prefix_only(state, s.name + ".critic."), state_file);
    s.critic->to(c.device);
    s.critic->train();
    s.opt = std::make_unique<AdamW>(s.net->parameters(), c.lr, 0.9, 0.99, 0.0);
    s.critic_opt = std::make_unique<AdamW>(s.critic->parameters(), c.lr, 0.5, 0.99, 0.0);
    if (have_state) {
      s.opt->load_state(with_prefix_only(state, s.name + ".opt."), state_file);
      s.critic_opt->load_state(with_prefix_only(state, s.name + ".critic_opt."), state_file);
    }
    if (c.dist) {
      // Rank 0's weights are the replicas' start, whatever each rank loaded.
      auto all = s.net->parameters();
      for (auto& t : s.net->buffers()) all.push_back(t);
      for (auto& t : s.critic->parameters()) all.push_back(t);
      for (auto& t : s.critic->buffers()) all.push_back(t);
      dist::broadcast_tensors(*c.dist, all);
      s.sync = std::make_unique<dist::GradSync>(c.dist, s.net->parameters());
      s.critic_sync = std::make_unique<dist::GradSync>(c.dist, s.critic->parameters());
    }
  }
  if (have_weights)
    log_info("resuming Ref-FR from " + c.out_dir + " at step " + std::to_string(start) +
             (have_state ? " (weights, critics and moments)" : " (weights only: critics and moments restart)"));
  log_info("Ref-FR: " + std::to_string(students[0].net->num_parameters()) + " parameters");

  std::vector<std::string> cols{"loss", "l1", "lpips", "id", "adv", "d_loss"};
  if (o.train_blind) cols.insert(cols.end(), {"blind_loss", "blind_l1", "blind_lpips", "blind_id", "blind_adv", "blind_d_loss"});
  TrainLoop loop(c, "ref_fr", cols);
  auto gen = make_generator(mix_seed(seed, 8000 + uint64_t(start)), torch::kCPU);
  std::mt19937_64 rng(mix_seed(seed, 9000 + uint64_t(start)));
  std::vector<DegradationMix> mixes;
  // The engine degrades by at most ×8; larger factors area-downscale the face first (the
  // degradation then acts on the small face, as on a small face in a group photo).
  for (size_t i = 0; i < o.scales.size(); ++i)
    mixes.emplace_back(c.presets, std::min(o.scales[i], 8.0f), mix_seed(seed, 10000 + 97 * i + uint64_t(start)));
  std::uniform_real_distribution<double> unit(0, 1);
  const int64_t b = o.batch, size = o.net.size;
  int64_t step = start;
  auto last_ckpt = std::chrono::steady_clock::now();
  torch::Tensor show_lq, show_hq, show_refs;
  std::vector<torch::Tensor> show_out;
  while (loop.keep_going(step)) {
    const int64_t r = unit(rng) < o.no_ref_fraction ? 0 : 1 + int64_t(rng() % uint64_t(o.max_train_refs));
    const size_t si = rng() % mixes.size();
    RefFRBatch batch = sample_ref_fr_batch(set, b, r, rng);
    auto flip = torch::rand({b, 1, 1, 1}, gen).lt(0.5).to(c.device);
    auto hq = torch::where(flip, batch.hq.flip({3}), batch.hq);
    torch::Tensor lq, refs;
    {
      torch::NoGradGuard ng;
      auto params = mixes[si].sample_batch(int(b), false, rng);
      auto src = hq;
      if (o.scales[si] > 8.0f) {
        const auto side = int64_t(std::lround(double(size) * 8.0 / o.scales[si]));
        src = resize_images(hq, side, side, ResizeMode::kArea);
      }
      lq = resize_images(apply_degradation(src, params), size, size, ResizeMode::kBicubic).clamp(0, 1);
      if (r > 0) refs = jitter_refs(batch.refs, gen);
    }
    const bool adversarial = o.adv_weight > 0 && step >= o.adv_warmup;
    std::vector<double> values;
    show_out.clear();
    for (auto& s : students) {
      auto pred = s.net->forward(lq, s.blind ? torch::Tensor() : refs);
      auto l1 = (pred - hq).abs().mean();
      auto predc = pred.clamp(0, 1);
      auto lp = lpips.distance(predc, hq).mean();
      // 1 − cosine of the embeddings; the target's embedding is a constant.
      auto id = embed ? (1 - (embed(predc) * embed(hq).detach()).sum(1)).mean() : torch::zeros({}, pred.options());
      auto adv = torch::zeros({}, pred.options());
      if (adversarial) {
        for (auto& p : s.critic->parameters()) p.set_requires_grad(false);
        adv = F::softplus(-s.critic->forward(predc)).mean();
        for (auto& p : s.critic->parameters()) p.set_requires_grad(true);
      }
      auto loss = l1 + o.lpips_weight * lp + o.identity_weight * id + o.adv_weight * adv;
      s.opt->zero_grad();
      loss.backward();
      if (s.sync) s.sync->finish();  // all-reduces overlapped backward; this waits and averages
      s.opt->step();
      double d_value = 0;
      if (o.adv_weight > 0 && step + 200 >= o.adv_warmup) {  // the critic starts a little earlier
        auto d_loss = F::softplus(-s.critic->forward(hq)).mean() + F::softplus(s.critic->forward(predc.detach())).mean();
        s.critic_opt->zero_grad();
        d_loss.backward();
        if (s.critic_sync) s.critic_sync->finish();
        s.critic_opt->step();
        d_value = d_loss.item<double>();
      }
      values.insert(values.end(), {loss.item<double>(), l1.item<double>(), lp.item<double>(), id.item<double>(),
                                   adv.item<double>(), d_value});
      show_out.push_back(predc.detach());
    }
    show_lq = lq;
    show_hq = hq;
    show_refs = r > 0 ? refs.select(1, 0) : torch::zeros_like(hq);
    ++step;
    loop.record(step, b, values);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_ckpt).count() > 60 * o.checkpoint_minutes) {
      save_all(o, students, state_file, step);
      last_ckpt = std::chrono::steady_clock::now();
    }
  }
  save_all(o, students, state_file, step);
  if (show_lq.defined() && c.primary()) {
    // degraded | blind twin | with references | ground truth | first reference (of the last batch)
    std::vector<torch::Tensor> cols_img{show_lq};
    for (auto it = show_out.rbegin(); it != show_out.rend(); ++it) cols_img.push_back(*it);
    cols_img.push_back(show_hq);
    cols_img.push_back(show_refs);
    write_image(c.out_dir + "/ref_fr_samples.png", sample_grid(cols_img, std::min<int64_t>(6, b)));
  }
  return loop.finish(step);
}

}  // namespace face2scene
