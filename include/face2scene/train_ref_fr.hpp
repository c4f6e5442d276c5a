// Training of Ref-FR (face2scene/ref_fr.hpp): identity-split face data, packing it for the GPU
// machine, and the trainer that fits Ref-FR and its blind twin on the same batches.
//
// The split is by identity and is recorded in the repository (bench/ref_fr_split.tsv): every
// benchmark identity is listed as "test", and training refuses a face folder of a test identity.
// Packing also compares every training image with every held-out image by content (high-passed
// 64×64 grey thumbnails, normalised cross-correlation), because a byte hash misses re-encoded copies.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "face2scene/ref_fr.hpp"
#include "face2scene/train.hpp"

namespace face2scene {

// ---- split ----------------------------------------------------------------------------------
struct FaceSplitEntry {
  std::string split;     // "train" or "test"
  std::string identity;  // "london_001", "canada_003f", "celeba_07201"
  std::string source;    // folder of the aligned faces, relative to the data root
};
// The rule, from the data root (../shared/data): London people whose number's index in sorted
// order is ≡ 2 (mod 3) are test (a third), the rest and Canada are train; CelebA's own split.
std::vector<FaceSplitEntry> make_face_split(const std::string& data_root);
void write_face_split(const std::string& path, const std::vector<FaceSplitEntry>& split);
std::vector<FaceSplitEntry> read_face_split(const std::string& path);

// Every aligned face file of one identity (London: both photos; CelebA: faces/, not scenes/).
std::vector<std::string> identity_face_files(const std::string& data_root, const FaceSplitEntry& e);

// Content guard: high-passed grey 64×64 thumbnails (the 16² area average, upsampled, subtracted),
// zero-mean unit-norm, [N,4096]. Re-encoded, resized copies score ≥ 0.99 against their source;
// different faces of the data sets stay below 0.9 (measured: docs/ref_fr.md).
torch::Tensor content_thumbnails(const std::vector<std::string>& files, int threads = 0);
struct ContentClash {
  std::string train_file, heldout_file;
  double ncc = 0;
};
// Highest NCC of each training file with any held-out file; clashes at or above `threshold`.
std::vector<ContentClash> content_clashes(const std::vector<std::string>& train_files,
                                          const std::vector<std::string>& heldout_files, double threshold,
                                          double* max_ncc = nullptr, int threads = 0);

struct PackReport {
  int64_t identities = 0, faces = 0, heldout_files = 0;
  double max_ncc = 0;  // highest train/held-out thumbnail correlation seen
};
// Writes out_dir/<identity>/<n>.jpg (aligned faces resized to `size`, JPEG q95) for the train
// identities of `split`; refuses (FormatError naming both files) any content clash ≥ 0.95 with
// the held-out images (test identities' faces and scenes, CelebRef, celebref_pairs).
PackReport pack_ref_fr_data(const std::string& data_root, const std::vector<FaceSplitEntry>& split,
                            const std::string& out_dir, int64_t size = 128);

// ---- faces grouped by identity ----------------------------------------------------------------
struct FaceSet {
  torch::Tensor faces;                          // uint8 [N,3,S,S] on the training device
  std::vector<int64_t> identity;                // identity index of each face
  std::vector<std::vector<int64_t>> members;    // faces of each identity
  std::vector<std::string> names, files;
};
// dir/<identity>/*.{jpg,png}: aligned faces, area-resized to `size`. Refuses (FormatError) any
// identity that `split` lists as test or does not list at all.
// shard_count > 1 (distributed training): only identities i (sorted) with i % shard_count ==
// shard_rank are loaded; an identity's photos stay together, so references still come from it.
FaceSet load_face_set(const std::string& dir, int64_t size, const std::vector<FaceSplitEntry>& split,
                      const torch::Device& device, int threads = 0, int shard_rank = 0, int shard_count = 1);

// ---- identity loss ----------------------------------------------------------------------------
// FFHQ-aligned faces [B,3,S,S] in [0,1] -> [B,D] unit-length identity embeddings, differentiable
// (the network is frozen; any S, any device). Built on faceres (face2scene/faceres.hpp): a
// training loss that is never the benchmark's judge (the dlib ResNet descriptor).
using FaceEmbedFn = std::function<torch::Tensor(const torch::Tensor&)>;
FaceEmbedFn make_identity_embed(const std::string& faceres_weights, const torch::Device& device);
// Where the install puts the converted faceres (default_faceres_weights_path()).
std::string default_identity_weights();

// ---- trainer ----------------------------------------------------------------------------------
struct RefFRTrainOptions {
  TrainCommon common;  // common.data is unused: faces come from faces_dir
  RefFROptions net;
  std::string faces_dir;      // packed by pack_ref_fr_data
  std::string split_file;     // bench/ref_fr_split.tsv
  std::string lpips_weights;  // folder for metrics::Lpips
  std::string identity_weights;  // faceres safetensors: identity loss (empty = none)
  int batch = 32;
  double lpips_weight = 1.0;
  double identity_weight = 0.3;
  double adv_weight = 0.02;
  int64_t adv_warmup = 1500;      // steps before the adversarial loss starts
  double no_ref_fraction = 0.3;   // share of batches without references
  int max_train_refs = 3;         // a batch with references draws 1..max_train_refs
  std::vector<float> scales{2, 3, 4, 6, 8, 12, 16};  // face downscale factors, drawn uniformly
  bool train_blind = true;        // the control: same architecture and batches, never references
  double checkpoint_minutes = 2;  // checkpoints written atomically this often, and at the end
  // Warm start when out_dir holds no weights yet: ref_fr(.blind).safetensors of this folder, which
  // may lack modules of the current architecture (they keep their initialisation; the step count
  // continues from the file's trained_steps).
  std::string init_dir;
};

// Files written in out_dir (resumed from when present).
inline const char* kRefFRFile = "ref_fr.safetensors";
inline const char* kRefFRBlindFile = "ref_fr_blind.safetensors";
inline const char* kRefFRStateFile = "ref_fr_state.safetensors";  // critics and optimiser moments

TrainReport train_ref_fr(const RefFRTrainOptions& options);

// One training batch, exposed for tests: targets [B,3,S,S] and references [B,R,3,S,S] drawn from
// other photos of each target's identity (never the target itself; R = 0 gives an undefined
// tensor); identities with a single photo are only drawn when R = 0.
struct RefFRBatch {
  torch::Tensor hq, refs;
  std::vector<int64_t> target_index;
  std::vector<std::vector<int64_t>> ref_index;
};
RefFRBatch sample_ref_fr_batch(const FaceSet& set, int64_t n, int64_t refs, std::mt19937_64& rng);

}  // namespace face2scene
