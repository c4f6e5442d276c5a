// The main job of face2scene, end to end: find the faces of a degraded photo, restore each from
// photos of the same person (Ref-FR; blind when there are none), read the photo's degradation
// from the (degraded face, restored face) pairs (FaDeX), restore the whole photo conditioned on
// that reading, and paste the restored faces back. The CLI (`face2scene restore`, `restore-face`),
// the benchmarks and any later server use only this API. docs/pipeline.md describes the flow.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "face2scene/degrade.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tiling.hpp"

namespace face2scene {

class FaceDescriptor;
class OracleRestorer;

// ---- the geometry contract ---------------------------------------------------------------------
// The ONE place that says at which size and alignment each model sees a face, and at which scale
// faces are cut from the degraded photo and pasted into the output. Every face is aligned to the
// FFHQ 5-point template (faces.hpp); only the side of the square differs.
struct FaceGeometry {
  // Ref-FR's input and output: the degraded face in the FFHQ frame at its metadata `size` (128),
  // cut at the face's own resolution in the photo and bicubic-resized to this side, as in training
  // (the trainer degrades the 128² face and resizes it back with bicubic).
  int64_t face_size = 128;
  // The largest side the degraded face is cut at for Ref-FR before the bicubic resize to face_size.
  // Training only ever showed Ref-FR faces downscaled by ×2 or more and resized back, so noise and
  // JPEG blocks always spanned ≥ 2 input pixels; a face cut at 128 from a noisy photo (native side
  // ≥ 128) put pixel-scale noise in front of it, which it kept (docs/pipeline.md). 0 = no cap.
  int64_t ref_fr_max_cut = 64;
  // FaDeX's HQ side (its in_size): the restored face, as Ref-FR made it.
  int64_t fadex_hq = 128;
  // FaDeX's LQ side for a ×4 restorer: training degraded a 128² face by ×4 (32²); at ×1 the
  // degraded face was resized back to 128². So the degraded face is cut from the photo at
  // fadex_hq / restorer_scale, the scale at which the photo's degradation relates to the face.
  int64_t fadex_lq(int restorer_scale) const { return restorer_scale == 4 ? fadex_hq / 4 : fadex_hq; }
  // A FaDeX trained on faces of every size (metadata lq_geometry "native", train fadex --teacher)
  // reads the degraded face as it is in the photo: cut at its own side there, `native` (the FFHQ
  // square's side at the photo's resolution), rounded, at least 16 and at most fadex_hq (larger faces
  // are cut at fadex_hq, antialiased: FaDeX's input side). A "fixed" FaDeX gets fadex_lq.
  int64_t fadex_cut(double native, int restorer_scale, bool native_geometry) const;
  // The identity descriptor's alignment (make_descriptor_fn aligns at 512; crop_for_descriptor takes
  // any FFHQ-aligned square, so restored 128² faces are described without a second warp).
  int64_t descriptor_size = 512;
  // Faces whose detector box is smaller than this (pixels of the photo) are skipped. The detector
  // finds faces down to its DetectOptions::min_face by scanning an upsampled copy, and landmarks
  // are fitted on that copy; Ref-FR was trained on faces downscaled up to ×16 (8 px of a 128²
  // face), so a face of 8 px or more is cut at its own resolution and restored (docs/pipeline.md,
  // "Small faces", measures 12–17 px faces of Solvay 1927 degraded ×4).
  int min_face = 8;
  // The largest aligned side a pasted face is built at (output pixels); beyond it the paste itself
  // shrinks it (antialiased): bounds memory for huge faces.
  int64_t max_paste_side = 1024;

  // The scene restorer's own scale for an output scale: 4 → 4, 2 → 4 (then area-downscaled), 1 → 1.
  static int restorer_scale(int output_scale);
  // By how much the photo's pixels overstate the detail its faces hold, as the models were trained:
  // every ×1 training photo was degraded at ¼ size and resized back (the ×1 stem pixel-unshuffles by
  // 4, and FaDeX reads "×4 downscale" on any ×1 photo), so at ×1 a face holds detail up to a quarter
  // of its side; at ×4 and ×2 the photo is the small one and its pixels are the detail (1). The
  // consistency step (Face2SceneOptions::blind_face_consistency) divides the face's side by it.
  static double input_detail_divisor(int output_scale) { return restorer_scale(output_scale) == 1 ? 4.0 : 1.0; }
  // Faces are cut from the degraded photo (scale 1) and pasted into the output, which is the photo
  // scaled by `output_scale` (paste_face's image_scale).
  static double paste_scale(int output_scale) { return output_scale; }
  // Side of the FFHQ square around a face at the photo's own resolution (the aligned crop's side
  // divided by the photo→aligned scale).
  static double native_side(const Similarity& photo_to_aligned, int64_t aligned_side);
};

// The photo→aligned transform for a square of side `side` from the one for `from_side` (scaling
// about pixel centres, as ffhq_template does).
Similarity rescale_aligned(const Similarity& photo_to_aligned, int64_t from_side, int64_t side);
// The same transform applied to a copy of the photo scaled by `scale` (output pixels → aligned).
Similarity on_scaled_image(const Similarity& photo_to_aligned, double scale);
// Where a pasted face's own content ends: the ellipse of the paste mask's 0.98 level (inside it
// the pipeline pastes Ref-FR's face, tone-shifted; outside it, in the blend band, the scene
// restorer's output), its edge fading over the last 12 % of its radius (docs/pipeline.md, "The
// paste border").
PasteOptions paste_core_options();
// The face square [C,N,N] the pipeline pastes, from Ref-FR's `face` and the scene restorer's output
// cut at the same place (`scene`, [C,N,N]): the scene in the blend band, the face plus the membrane
// fill of (scene − face) in the core (Face2SceneOptions::match_paste_tone). Not clamped.
torch::Tensor seamless_paste_face(const torch::Tensor& face, const torch::Tensor& scene);

// ---- face restorers ----------------------------------------------------------------------------
// A face model: aligned degraded faces (+ optional aligned references) → restored faces, all in the
// FFHQ frame at size(). Chosen by the `arch` in its weights' safetensors metadata, so a new face
// model is one class plus one register_face_restorer call.
class FaceRestorer {
 public:
  virtual ~FaceRestorer() = default;
  virtual std::string arch() const = 0;
  virtual std::string name() const = 0;  // what reports print: "ref-fr" / "ref-fr-blind"
  virtual int64_t size() const = 0;
  virtual int64_t max_references() const = 0;  // 0 for a blind model
  // faces [B,3,S,S] in [0,1]; refs [R,3,S,S] shared by every face of the batch (one person), or
  // undefined/R = 0 for none. Returns [B,3,S,S] float32 in [0,1] on the CPU.
  virtual torch::Tensor restore(const torch::Tensor& faces, const torch::Tensor& refs) const = 0;
};
struct FaceRestorerLoadOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // on CUDA
  // On the CPU the face model runs in float32, or in bf16 where the CPU computes bf16 natively
  // (cpu_native_bf16(): AVX512-BF16): 2-3× faster, within 51 dB of float32 on a held-out face.
  bool cpu_bf16 = true;
};
using FaceRestorerFactory = std::function<std::unique_ptr<FaceRestorer>(
    const std::string& path, const Metadata& metadata, const FaceRestorerLoadOptions& options)>;
// Registers a model for an arch string (Ref-FR, "face2scene-ref-fr", is built in).
void register_face_restorer(const std::string& arch, FaceRestorerFactory factory);
std::vector<std::string> face_restorer_archs();
// Reads only the file's metadata, picks the factory by arch; FormatError names the file and the
// known archs when none fits.
std::unique_ptr<FaceRestorer> load_face_restorer(const std::string& path, const FaceRestorerLoadOptions& options = {});

// ---- references --------------------------------------------------------------------------------
struct ReferencePhoto {
  std::string file;
  torch::Tensor aligned;     // [3,S,S] float32 CPU, FFHQ frame at FaceGeometry::face_size
  torch::Tensor descriptor;  // [128] float32 CPU
};
struct ReferencePersonSet {
  std::string name;
  std::vector<ReferencePhoto> photos;
  torch::Tensor descriptors() const;  // [N,128]
};
struct ReferenceSet {
  std::vector<ReferencePersonSet> people;
  std::vector<std::string> warnings;  // skipped photos and why (they also go to the log)
  bool empty() const { return people.empty(); }
  const ReferencePersonSet* find(const std::string& name) const;
  size_t photo_count() const;
};
// DIR holds photos of one person (the person is named after DIR), or one sub-folder per person
// (DIR/Alice/*.jpg; photos directly in DIR then form one more person named after DIR). In each
// photo the largest face is detected, landmarked, aligned to the FFHQ frame at `face_size` and
// described. A photo without a face, unreadable, or whose descriptor is farther than `threshold`
// from the person's other photos (median distance; the worst is dropped first, so of two photos
// that disagree the later one in name order is dropped) is skipped with a warning. Throws IoError
// for a missing or empty folder and when no photo has a usable face.
ReferenceSet load_reference_set(const std::string& dir, const FaceDetector& detector, const FaceDescriptor& descriptor,
                                int64_t face_size = 128, float threshold = 0.6f);
// Appends the people of `more` (names made unique), e.g. a --face-refs folder.
void merge_reference_sets(ReferenceSet& into, ReferenceSet more);

// ---- the pipeline ------------------------------------------------------------------------------
struct Face2SceneConfig {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // the scene restorer and the face models on CUDA
  std::string models_dir;                // weights/ (OracleModelPaths::locate's search when empty)
  std::string ref_fr, ref_fr_blind;      // default: <models_dir>/ref_fr.safetensors, ref_fr_blind.safetensors
  std::string identity_weights;          // default: default_faceapi_weights_path(); optional
  // FaDeX; default: fadex_sizes.safetensors beside the scene restorer when present (trained on faces
  // of 12–128 px, read at their own size: docs/pipeline.md "Face scale"), else fadex.safetensors (v1).
  std::string fadex;
  TileOptions tiles{256, 32, 12};        // the scene restorer's tiles (input pixels; 0 = whole image)
  // Faces from 12 px up are looked for (the photo is upsampled 80/12 ≈ 6.7× for HOG, within
  // DetectOptions::max_detect_pixels): a group photo degraded ×4 has faces of 12–17 px. Its
  // `device` is replaced by this config's (hog-torch, auto on CUDA, scans there).
  DetectOptions detect = default_detect_options();
  static DetectOptions default_detect_options() {
    DetectOptions d;
    d.min_face = 12;
    return d;
  }
  bool load_scene_restorer = true;  // false: faces only (restore-face)
  // The scene restorer's fidelity ↔ invented detail (OracleOptions::realism): 0 = L1-trained
  // weights (default), 1 = GAN-trained, between = interpolated weights.
  double realism = 0;
};

struct Face2SceneOptions {
  int scale = 4;  // 4, 2 (= ×4 then area-downscale by 2) or 1
  // The control: no references and no face code: faces by Ref-FR's blind twin, the photo by the
  // blind scene restorer.
  bool blind = false;
  // Read the code from the largest face only instead of the weighted mean (measures the rule).
  bool largest_face = false;
  // Face index (detection order, largest first, as `face2scene faces` numbers them) → person of
  // the reference set: that face uses that person's photos whatever the descriptor says.
  std::map<int, std::string> face_refs;
  int max_faces = 64;         // the largest faces are restored; the rest are listed and skipped
  float match_threshold = 0.6f;  // identity distance for matching a face to a person
  bool measure_identity = true;  // descriptors before/after (costs one embedding per face)
  // Above Ref-FR's resolution, keep the scene restorer's detail (docs/pipeline.md).
  bool detail_transfer = true;
  bool paste_faces = true;     // false: the scene restorer's output without pasted faces
  // Faces restored blind (no reference person) whose box is under this many pixels (shorter side,
  // in the input photo) are still read by FaDeX but not pasted: from so few pixels Ref-FR invents a
  // plausible face of someone else. On Solvay 1927 (12–19 px faces, moderate ×4) pasting them
  // all put the face farther from the clean face's identity than Real-ESRGAN x4plus for 23 of 29;
  // not pasting them, 13 of 29, at the same whole-photo LPIPS (docs/pipeline.md, "Small blind faces").
  // 0 (default): every restored face is pasted.
  double blind_paste_min = 0;
  // Faces restored blind keep the scene restorer's structure up to the detail the input face holds:
  // face = R + low(scene) − low(R), low = area-down to k × the face's square side in the input
  // photo, then bicubic up (a back-projection of Ref-FR's face onto what the pixels say). From a
  // 16-px face Ref-FR invents eyes, nose and mouth of its own; the scene restorer, trained for
  // fidelity, keeps where the input puts them. 0 = off; 1 = the input's own resolution
  // (docs/pipeline.md, "Faces kept consistent with the input").
  double blind_face_consistency = 1;
  // The same for faces restored from a reference person's photos (0 = off: Ref-FR's face as it is).
  double ref_face_consistency = 1.5;  // chosen on LFW validation people (docs/pipeline.md)
  // Fidelity to the input: after the consistency step a face restored blind becomes
  // (1 − w) × face + w × the input face (the photo's own face, bicubic to the output's scale and
  // aligned there). Not in restore-face (scene = false: Ref-FR alone). Ref-FR's face is one guess
  // at the person and the input is the only evidence; mixing the two keeps what the pixels hold of
  // who it is (docs/pipeline.md, "Fidelity to the input"). 0 = Ref-FR's face; 1 = the degraded face itself. In [0, 1]. 0.5 was
  // chosen on validation data (scenes/group/ photos and the LFW validation people), not on Solvay.
  double blind_face_fidelity = 0.5;
  // The same for faces restored from a reference person's photos (0.5 keeps the references'
  // advantage over blind faces on the LFW validation people, which 0 with a blind 0.5 lost).
  double ref_face_fidelity = 0.5;
  // Paste seamlessly (Poisson-style): the blend band shows the scene restorer's output and the
  // face's core Ref-FR's face, shifted by the membrane fill of its difference to the scene, so the
  // paste leaves no colour or brightness step at its border (docs/pipeline.md, "The paste
  // border"). false: Ref-FR's face cross-faded as it is.
  bool match_paste_tone = true;
  bool scene = true;           // false: faces only, pasted back at ×1 (restore-face)
  // Second look: after the scene restorer, look for faces again in its output (at the output's
  // scale, the same smallest face); faces found there and not before are restored and pasted like
  // the others (FaceResult::found_again) but take no part in the photo's code, unless the photo
  // showed no usable face: then the blind scene restorer ran, these faces read the code, and the
  // conditioned restorer runs again. HOG misses many 12–19 px faces of a blurred, noisy photo that
  // it finds once they are restored. Needs the detector (dlib); off in restore-face.
  bool second_look = true;
  // Called on the calling thread as restore() enters each stage ("detect", "identity", "faces",
  // "oracle", "scene", "second-look", "paste", "done") with done = 0, total = 1, and per scene-restorer tile
  // ("scene", tiles done, tiles in all), so a host (the web server) can show progress. It may
  // throw to abandon the run (the server's cancel and shutdown): the exception leaves restore().
  std::function<void(const std::string& stage, int done, int total)> on_progress;
  // When set: the whole photo already restored by another model at the output scale (e.g.
  // Real-ESRGAN x4plus: the GFPGAN-style "faces only" pipeline that bench_inscene compares with).
  // No degradation code is read and the scene restorer does not run; the restored faces are
  // pasted onto this image (detail transfer taken from it when on). Size must be scale × input.
  Image background;
  // When set: the faces of this image as found elsewhere (FaceDetector::detect with landmarks, e.g.
  // on a machine that has dlib, for a build without it); the detector is not run.
  std::optional<std::vector<DetectedFace>> faces;
};

struct FaceResult {
  int index = 0;             // detection order (largest first)
  FaceBox box;               // in the input photo
  Similarity transform;      // photo → FFHQ frame at FaceGeometry::face_size (set when aligned)
  float score = 0.f;         // detector score (HOG: SVM margin; SSD: logit of its probability)
  std::string detector;      // which detector found it: "hog", "hog-torch" or "ssd"
  bool landmarks_ok = false;
  std::string status;        // "restored", or "skipped: <why>"
  std::string person;        // matched or pinned person; empty = restored blind
  bool pinned = false;       // person given by face_refs
  float match_distance = -1.f;  // degraded face ↔ nearest person (matched or not); -1 = not measured
  std::vector<std::string> references;  // reference files used
  // Identity distance (dlib descriptor) of the degraded and of the restored face to the references
  // used (their nearest), and between the degraded and the restored face; -1 = not measured.
  float distance_before = -1.f, distance_after = -1.f, identity_shift = -1.f;
  std::string restorer;      // face model that ran: "ref-fr", "ref-fr-blind"
  double native_side = 0;    // FFHQ square side at the photo's resolution (pixels)
  int64_t paste_side = 0;    // side of the pasted face square in the output
  bool detail_transfer = false;
  float code_weight = 0.f;   // this face's share of the photo's code (0 when not used)
  DegradationSummary degradation;  // what FaDeX read from this face (when read)
  bool degradation_read = false;
  bool found_again = false;  // found by the second look, in the restored photo (not in the input)
};

struct StageTimes {
  double detect = 0, align = 0, identity = 0, ref_fr = 0, fadex = 0, restorer = 0, paste = 0, total = 0;
};

struct Face2SceneResult {
  Image image;
  std::vector<FaceResult> faces;  // every detected face, restored or skipped
  int faces_detected = 0, faces_restored = 0;  // faces_detected includes faces_found_again
  int faces_found_again = 0;  // found only in the restored photo (Face2SceneOptions::second_look)
  bool face_code = false;           // the restorer was conditioned on a code read from faces
  std::string code_rule;            // "weighted-mean", "largest-face", "none"
  DegradationSummary degradation;   // the photo's reading (weighted like the code)
  std::string degradation_words;    // describe(), or why there is none
  std::vector<std::string> models;  // files that ran
  StageTimes timings;
  std::vector<std::string> warnings;
  int output_scale = 1;
};

// The weight of a face in the photo's code: box area (photo pixels²) × detector confidence, where
// confidence = logistic(score) of the HOG margin (0.5 at the detector's own threshold 0, 0.73 at 1).
float face_code_weight(const FaceBox& box, float score);

class Face2Scene {
 public:
  // Loads every model once: the face detector (dlib), the identity descriptor (optional: without
  // it there is no reference matching and no identity measurement, and a warning says so), Ref-FR
  // and its blind twin (by arch), FaDeX + MapNet + the conditioned and the blind scene restorers.
  explicit Face2Scene(const Face2SceneConfig& config);
  ~Face2Scene();
  Face2Scene(const Face2Scene&) = delete;
  Face2Scene& operator=(const Face2Scene&) = delete;

  // The whole flow (docs/pipeline.md). Grey, 16-bit and alpha images are accepted; the output has
  // the input's channels and bit depth (alpha resized). Throws ArgumentError for an empty image or a
  // bad option, never for a photo without faces (that runs blind, with a warning).
  Face2SceneResult restore(const Image& image, const ReferenceSet& references, const Face2SceneOptions& options) const;
  // An FFHQ-aligned face crop (square, any size) → the restored crop at max(side, face size).
  // With references: the person matched by descriptor (a set with one person: that person, the
  // distance reported). Result: one face, the image.
  Face2SceneResult restore_aligned(const Image& face, const ReferenceSet& references, const Face2SceneOptions& options) const;

  const FaceDetector& detector() const;
  // restore()'s detection stage alone (faces with landmarks, largest first; none in an image smaller
  // than the smallest restorable face). Thread-safe, so a folder run can find the faces of the next
  // photos on other threads while this one is restored, and pass them as Face2SceneOptions::faces.
  std::vector<DetectedFace> find_faces(const Image& image) const;
  const FaceDescriptor* descriptor() const;  // null when the identity weights are absent
  const FaceGeometry& geometry() const { return geometry_; }
  const Face2SceneConfig& config() const { return config_; }
  std::vector<std::string> load_warnings() const { return load_warnings_; }

 private:
  struct Models;
  Face2SceneConfig config_;
  FaceGeometry geometry_;
  std::unique_ptr<Models> m_;
  std::vector<std::string> load_warnings_;
};

// The report of one image as JSON text (the schema is in docs/pipeline.md).
std::string result_to_json(const Face2SceneResult& result, const std::string& input, const std::string& output,
                           int indent = 1);

}  // namespace face2scene
