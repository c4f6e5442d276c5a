// Training of the oracle core on the GPU machine (or, slowly, on the CPU): FaDeX first, then the
// degradation-conditioned scene restorer and its blind twin, side by side on the same batches.
// Data come packed by scripts/pack_training_data.sh; degradations are made on the training device
// with the degradation engine; every run is resumable and bounded by a wall-clock budget.
#pragma once

#include <torch/torch.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "face2scene/degrade.hpp"
#include "face2scene/discriminator.hpp"
#include "face2scene/distributed.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/scene_restorer.hpp"

namespace face2scene {

// ---- data -------------------------------------------------------------------------------------
struct TrainDataOptions {
  std::string faces_dir;   // face photos (LFW deep-funneled 250², or aligned faces); a centre crop is used
  std::string scenes_dir;  // clean scene photos, short side >= crop
  // Optional: whole photos of people (people_hq training photos, studio faces), short side >= crop;
  // sample_scene_crops draws a share of its crops from them at random scales (scripts/pack_gan_data.sh).
  std::string people_dir;
  int64_t face_size = 128;
  int64_t face_crop = 128;  // side of the centre crop taken from each face photo before resizing
  // Lines "<sha256>  <name>" (sha256sum format) of images that must never be trained on: loading
  // fails if any training file has one of these contents.
  std::string heldout_list;
  int threads = 0;  // decoding threads (0 = hardware)
  // Distributed training: this rank loads only files i with i % shard_count == shard_rank (of the
  // sorted lists; every file while a list is shorter than shard_count).
  int shard_rank = 0, shard_count = 1;
};

struct TrainData {
  torch::Tensor faces;                // uint8 [N,3,S,S] on the training device
  std::vector<torch::Tensor> scenes;  // uint8 [3,H,W] each, on the training device
  std::vector<torch::Tensor> people;  // uint8 [3,H,W] each (TrainDataOptions::people_dir), may be empty
  std::vector<std::string> face_files, scene_files, people_files;
};

std::set<std::string> read_sha256_list(const std::string& path);
TrainData load_train_data(const TrainDataOptions& options, const torch::Device& device);

// Random crops / picks of a batch as float [B,3,s,s] in [0,1], with random horizontal flips.
torch::Tensor sample_faces(const TrainData& data, int64_t n, torch::Generator& gen);
torch::Tensor sample_scene_crops(const TrainData& data, int64_t n, int64_t crop, torch::Generator& gen);
// As above, but a share `people_fraction` of the crops comes from data.people, each cut at a random
// scale: a square of side crop … min(H,W, crop / min_zoom) area-resized to crop, so a crop holds a
// person with their background as a whole photo does, not only a patch of it. people_fraction 0
// (or no people photos) draws exactly what the overload above draws.
torch::Tensor sample_scene_crops(const TrainData& data, int64_t n, int64_t crop, torch::Generator& gen,
                                 double people_fraction, double min_zoom = 0.3);

// Shallow depth of field in the *clean* crop (issue 21): with probability `prob` per sample, a
// disk (lens) blur of radius 1.5 … max_radius px is blended in outside a random focus region (a
// disc around a random point, or a band above/below a random line, with a soft edge). The result
// is the ground truth, degraded on top, so the restorer learns that bokeh is content, not blur to
// remove: only the degradation code tells the two apart. prob 0 returns hq and draws nothing.
torch::Tensor add_shallow_dof(const torch::Tensor& hq, double prob, torch::Generator& gen, double max_radius = 6.0);

// ---- degradations -------------------------------------------------------------------------------
// One sampler per preset, all at the same output scale; each batch draws its preset at random.
class DegradationMix {
 public:
  DegradationMix(const std::vector<std::string>& presets, float out_scale, uint64_t seed);
  // n params sharing resize steps (one preset per batch); keep_size = ×1 restoration.
  std::vector<DegradationParams> sample_batch(int n, bool keep_size, std::mt19937_64& rng);

 private:
  std::vector<DegradationSampler> samplers_;
};

// Per-slot mean/std of the parameter vector over many draws of the mix (both ×4 and ×1), so the
// regression target is normalised; slots that never vary get std 1 and mask 0.
struct ParamNormaliser {
  torch::Tensor mean, std, mask;  // [39] float32, CPU
  static ParamNormaliser estimate(const std::vector<std::string>& presets, float out_scale, int draws, uint64_t seed);
  // The normaliser a FaDeX file holds (its head was trained against it); no slot masked, since the
  // file stores std 1 for constant slots.
  static ParamNormaliser of(const FaDeX& fadex);
  torch::Tensor normalise(const std::vector<DegradationParams>& params, const torch::Device& device) const;
};

// ---- optimisation ------------------------------------------------------------------------------
// AdamW written out (not torch::optim) so its moments can be checkpointed in bf16 with the same
// code on LibTorch 1.13 and 2.x, whose optimizer-state keys differ.
class AdamW {
 public:
  AdamW(std::vector<torch::Tensor> params, double lr, double beta1 = 0.9, double beta2 = 0.99, double weight_decay = 0);
  void step();
  void zero_grad();
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return t_; }
  // The moments ("m.<i>", "v.<i>": exp_avg, exp_avg_sq) in `moments` precision and the step count
  // ("t"). float32 resumes exactly; bf16 halves the file.
  TensorMap state(torch::Dtype moments = torch::kBFloat16) const;
  // Takes moments of any floating dtype (converted to the parameters').
  void load_state(const TensorMap& state, const std::string& source);
  int64_t numel() const;  // parameters (= elements of each moment set)

 private:
  std::vector<torch::Tensor> params_, m_, v_;
  double lr_, b1_, b2_, wd_;
  int64_t t_ = 0;
};

// ---- trainers -----------------------------------------------------------------------------------
struct TrainCommon {
  TrainDataOptions data;
  std::string out_dir;  // checkpoints, loss CSV, sample grid; resumed from when present
  torch::Device device = torch::kCPU;
  double max_minutes = 8;  // stops itself, checkpoint written, before this wall-clock budget
  int64_t max_steps = 0;   // 0 = until the budget is spent
  uint64_t seed = 1;
  int log_every = 25;
  std::vector<std::string> presets{"mild", "moderate", "severe", "realesrgan"};
  double x1_fraction = 0.3;  // share of batches degraded at ×1 (keep size) instead of ×4
  double lr = 2e-4;
  // A resume checkpoint is written atomically this often during training (and at the end).
  double checkpoint_minutes = 2;
  // Optimiser moments are checkpointed in float32 (exact resume) while all of them together fit
  // this size, else in bf16 (the GPU machine's carry limits what a checkpoint may weigh).
  double fp32_moments_max_mb = 48;
  // Data-parallel training (face2scene/distributed.hpp) when set: this process is one rank; each
  // rank draws its own samples (per-rank seeds, its data shard) with `batch` per rank, gradients
  // are averaged over ranks, rank 0 alone writes checkpoints, the loss CSV and log lines (losses
  // averaged over ranks). Checkpoints hold nothing per rank: a run resumes with any world size.
  std::shared_ptr<dist::ProcessGroup> dist;
  int rank() const { return dist ? dist->rank() : 0; }
  int world_size() const { return dist ? dist->size() : 1; }
  bool primary() const { return rank() == 0; }
};

struct FaDeXTrainOptions {
  TrainCommon common;
  FaDeXOptions net;
  int degradations = 32;  // per batch; each is applied to two different faces (the positive pair)
  double temperature = 0.1;
  double param_weight = 1.0;
  // Face-size distillation (train fadex --teacher): a face comes at any size in a photo, but the
  // teacher only ever saw 128² clean faces degraded as a whole (32² at ×4). The student (started
  // from the teacher) reads the face as it is in the degraded photo, at any side in
  // [lq_min, lq_max], and learns to give the code the teacher gives for the same degradation at its
  // training scale, so MapNet and the scene restorer, trained on the teacher's codes, stay as they
  // are. Clean sources are aligned faces of any size (size_faces_dir), held at size_source.
  std::string teacher;
  std::string size_faces_dir;
  int64_t size_source = 256;
  int64_t lq_min = 12, lq_max = 128;
  double code_weight = 1.0;  // weight of the code-map match (the global code's 1 - cos has weight 1)
  // The task loss ("never worse than blind", issue #19): distillation alone left the student's codes
  // where the frozen conditioned restorer does worse than its blind twin at severe degradations.
  // With task_weight > 0, the first task_batch degraded faces of each batch are also restored by
  // the frozen conditioned restorer (restorer_weights, with its MapNet; base_weights its backbone)
  // from the student's code, and L1 + task_lpips_weight * LPIPS against the clean face at the
  // photo's scale is added with this weight, so the student learns the codes that help the
  // restorer. blind_weights (optional): the blind twin on the same faces, logged only (task_gain =
  // conditioned − blind loss; below 0 = the code helps).
  double task_weight = 0;
  int64_t task_batch = 16;
  double task_lpips_weight = 0.2;
  std::string restorer_weights, blind_weights, base_weights, lpips_weights;
};

struct RestorerTrainOptions {
  TrainCommon common;
  SceneRestorerOptions net;
  MapNetOptions mapnet;
  std::string fadex_weights;  // trained FaDeX (frozen here)
  std::string base_weights;   // the backbone's Real-ESRGAN safetensors (net.backbone; from the weights cache)
  std::string lpips_weights;  // folder for metrics::Lpips
  int batch = 16;
  int64_t crop = 256;          // HR scene crop
  double lpips_weight = 0.2;   // loss = L1 + w * LPIPS
  double null_token_prob = 0.1;  // the conditioned model also sees null tokens, so it degrades gracefully
  bool train_blind = true;     // the fair blind baseline: same architecture and batches, null tokens only
  // Ablation upper bound: a third student conditioned on the true (normalised) parameter vector
  // through a ParamEncoder instead of FaDeX, on the same batches. It starts from the conditioned
  // restorer's file when there is one (so it costs a short fine-tune, not a full training).
  bool param_oracle = false;
  bool amp = false;  // bf16 autocast for the students' forward passes (CUDA, LibTorch >= 2.4)

  // ---- adversarial fine-tuning (issue 21; docs/models.md, "GAN restorer") ----
  // loss = l1_weight·L1 + lpips_weight·LPIPS + gan_weight·GAN. gan_weight > 0 gives every student
  // its own U-Net discriminator (spectral norm), trained on every step; the generators get the GAN
  // term from step gan_warmup on (the critics learn first). Real-ESRGAN: 1 / 1 / 0.1.
  double l1_weight = 1.0;
  double gan_weight = 0;
  int64_t gan_warmup = 0;
  double disc_lr = 1e-4;
  UNetDiscriminatorOptions disc;  // cond_dim is set by disc_projection
  // Projection discriminators on FaDeX's frozen global code (all students' critics alike: the
  // critic is training-only, so the blind twin stays blind at inference; its critic knowing the
  // degradation only makes it a stronger, conservative baseline).
  bool disc_projection = false;
  // Start from the restorer files of this folder (restorer*.safetensors or the shipped
  // scene_restorer*.safetensors names) when out_dir has none: a fine-tune of trained weights.
  std::string init_dir;
  double people_fraction = 0;  // share of scene crops from TrainDataOptions::people_dir
  double dof_prob = 0;         // share of clean crops given a synthetic shallow depth of field
};

struct TrainReport {
  int64_t steps = 0;
  double seconds = 0;
  double samples_per_s = 0;  // of this process (per GPU when distributed)
  int world_size = 1;
  double peak_gpu_mb = 0;
  double last_loss = 0;
};

TrainReport train_fadex(const FaDeXTrainOptions& options);
// The distillation above (options.teacher set); train_fadex calls it.
TrainReport train_fadex_sizes(const FaDeXTrainOptions& options);
TrainReport train_restorer(const RestorerTrainOptions& options);

// Files written by the trainers (in out_dir).
inline const char* kFaDeXFile = "fadex.safetensors";
inline const char* kFaDeXStateFile = "fadex_state.safetensors";        // resume: weights fp32 + moments
inline const char* kRestorerStateFile = "restorer_state.safetensors";  // resume: every student
inline const char* kRestorerFile = "restorer.safetensors";          // conditioned: restorer + mapnet
inline const char* kRestorerBlindFile = "restorer_blind.safetensors";  // blind twin
inline const char* kRestorerParamsFile = "restorer_params.safetensors";  // true-parameter upper bound
inline const char* kParamEncoderFile = "param_encoder.safetensors";      // its ParamEncoder

}  // namespace face2scene
