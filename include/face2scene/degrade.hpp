// face2scene degradation engine: synthetic low-quality images for training and evaluation.
//
// A degradation is fully described by a DegradationParams value: the sampler draws one (from a
// named preset and a seed), apply_degradation() applies it. Kernels are computed from the
// parameters and noise is drawn from a torch generator seeded by params.seed, so the same params
// give bit-identical output on CPU, and one params object applied to a face crop and to its scene
// degrades both the same way (training depends on that). Batched on any torch device.
// Layout of the parameter vector and the presets: docs/degradation.md.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "face2scene/image.hpp"

namespace face2scene {

// Numeric codes are part of the parameter-vector layout: never renumber.
enum class KernelType : int {
  kNone = 0,
  kIsoGaussian = 1,
  kAnisoGaussian = 2,
  kGeneralizedIso = 3,
  kGeneralizedAniso = 4,
  kPlateauIso = 5,
  kPlateauAniso = 6,
  kSinc = 7,     // 2-D circular low-pass (ringing / overshoot)
  kMotion = 8,   // line of `length` pixels at angle `theta`
  kDefocus = 9,  // uniform disk of `radius`
};
enum class ResizeMode : int { kNone = 0, kNearest = 1, kBilinear = 2, kBicubic = 3, kArea = 4 };
enum class NoiseType : int { kNone = 0, kGaussian = 1, kPoisson = 2 };
enum class JpegMode { kAuto, kCodec, kEmulated };  // kAuto: libjpeg on CPU, emulation on CUDA

struct BlurParams {
  KernelType type = KernelType::kNone;
  int size = 0;          // odd kernel side (pixels)
  float sigma_x = 0;     // Gaussian-family widths (pixels)
  float sigma_y = 0;
  float theta = 0;       // rotation (Gaussian family) or motion direction, radians
  float beta = 0;        // shape of generalized (exp(-d^beta)) and plateau (1/(1+d^beta)) kernels
  float cutoff = 0;      // sinc cutoff omega_c, radians/pixel, (0, pi]
  float length = 0;      // motion length, pixels
  float radius = 0;      // defocus disk radius, pixels
  static constexpr int kSlots = 9;
};
struct ResizeParams {
  ResizeMode mode = ResizeMode::kNone;
  // Stage 1: relative to the input size. Stage 2: relative to the final (target) size, as in
  // Real-ESRGAN. 1 keeps the size.
  float scale = 1;
};
struct NoiseParams {
  NoiseType type = NoiseType::kNone;
  bool gray = false;  // one noise plane shared by all channels
  float level = 0;    // Gaussian: sigma in 8-bit units (x/255); Poisson: Real-ESRGAN's scale
};
struct StageParams {
  BlurParams blur;
  ResizeParams resize;
  NoiseParams noise;
  int jpeg_quality = 0;  // 0 = no JPEG in this stage
  static constexpr int kSlots = BlurParams::kSlots + 2 + 3 + 1;
};
// The last step of every pipeline: resize to the target size, optional sinc, optional JPEG, in
// the order given by jpeg_first (Real-ESRGAN draws it 50/50).
struct FinalParams {
  ResizeMode resize_mode = ResizeMode::kBicubic;
  int sinc_size = 0;      // 0 = no final sinc
  float sinc_cutoff = 0;
  int jpeg_quality = 0;   // 0 = no final JPEG
  bool jpeg_first = false;
  static constexpr int kSlots = 5;
};

struct DegradationParams {
  static constexpr int kVersion = 1;
  static constexpr int kVectorSize = 4 + 2 * StageParams::kSlots + FinalParams::kSlots;  // 39
  int order = 1;          // 1 or 2 stages
  float out_scale = 1;    // output is floor(input / out_scale); the restorer needs it
  bool keep_size = false; // x1 mode: after degrading, resize back (bicubic) to the input size
  StageParams stage1, stage2;
  FinalParams final_step;
  uint64_t seed = 0;      // noise generator seed (JSON only: a float cannot hold it)
  std::string preset;     // where it came from (JSON only)

  // Fixed-layout float vector (slots documented in docs/degradation.md).
  std::vector<float> to_vector() const;
  static DegradationParams from_vector(const std::vector<float>& v, uint64_t seed = 0);
  std::string to_json() const;  // pretty JSON with named fields and the vector
  static DegradationParams from_json(const std::string& text, const std::string& name_for_errors = "<json>");
  // "blur σ≈2.1, noise σ≈12/255, JPEG q≈40, ×4 downscale"
  std::string describe() const;
  // Throws ArgumentError naming the first field out of range.
  void validate() const;
  static std::vector<std::string> slot_names();
};

// Interpretable summary of a degradation: blur spread in input pixels (stages combined in
// quadrature, stage 2 scaled back to input pixels), Gaussian noise σ (x/255, quadrature), Poisson
// scale (sum), the lowest JPEG quality applied (100 = none) and the downscale factor.
struct DegradationSummary {
  static constexpr int kSize = 5;
  float blur_sigma = 0, noise_sigma = 0, poisson = 0, jpeg_quality = 100, scale = 1;
  std::vector<float> to_vector() const;
  static DegradationSummary from_vector(const float* v);  // kSize values, clamped to valid ranges
  static std::vector<std::string> names();
  // "blur σ≈2.1 px, noise σ≈12/255, JPEG q≈40, ×4.0 downscale"
  std::string describe() const;
};
DegradationSummary summarize(const DegradationParams& params);
// What FaDeX's head regresses: the 39-slot parameter vector followed by the 5 summary values.
constexpr int kDegradationTargetSize = DegradationParams::kVectorSize + DegradationSummary::kSize;
std::vector<float> degradation_targets(const DegradationParams& params);

// ---- building blocks (exposed for tests, the contact sheet and other modules) --------------
// Normalised float32 kernel [size,size] on CPU; kNone gives a 1x1 delta.
torch::Tensor make_blur_kernel(const BlurParams& blur);
// Batched resize of [B,C,H,W] to (out_h,out_w) with separable resampling weights: antialiased
// (support stretched by 1/scale) for bilinear/bicubic/area downscaling, bicubic with a = -0.5.
torch::Tensor resize_images(const torch::Tensor& x, int64_t out_h, int64_t out_w, ResizeMode mode);
// Per-item kernels [B,k,k] (odd k) applied depthwise with reflect padding.
torch::Tensor blur_images(const torch::Tensor& x, const torch::Tensor& kernels);
// JPEG round trip of each item at quality[i] (0 = untouched); C = 1 or 3. kCodec runs libjpeg
// (on CPU, data copied when needed); kEmulated is a batched differentiable DCT quantisation
// (4:2:0 chroma, IJG tables, straight-through rounding) that runs on the tensor's device.
torch::Tensor jpeg_images(const torch::Tensor& x, const std::vector<int>& quality, JpegMode mode);
// IJG quantisation table (64 values, natural order) for `quality`, luminance or chrominance.
std::array<int, 64> jpeg_quant_table(int quality, bool chroma);

// ---- sampling -----------------------------------------------------------------------------
std::vector<std::string> preset_names();  // mild, moderate, severe, realesrgan
class DegradationSampler {
 public:
  // Throws ArgumentError for an unknown preset.
  DegradationSampler(const std::string& preset, uint64_t seed);
  // The k-th draw of this sampler is a pure function of (preset, seed, k).
  DegradationParams sample();
  // n draws sharing the resize modes/scales and step order (so the batch stays one tensor through
  // the pipeline, as Real-ESRGAN does per batch); kernels, noise and JPEG differ per item.
  std::vector<DegradationParams> sample_batch(int n);
  void set_keep_size(bool keep) { keep_size_ = keep; }
  // Overrides the preset's output scale (e.g. ×4 for every preset when training a ×4 restorer);
  // 0 restores the preset's own.
  void set_out_scale(float scale) { out_scale_ = scale; }
  const std::string& preset() const { return preset_; }

 private:
  std::string preset_;
  uint64_t seed_;
  uint64_t count_ = 0;
  bool keep_size_ = false;
  float out_scale_ = 0;
};

// ---- application --------------------------------------------------------------------------
struct ApplyOptions {
  JpegMode jpeg = JpegMode::kAuto;
};
// batch [B,C,H,W] (or [C,H,W]) in [0,1], C = 1 or 3, on any device. The same params for every
// item. Output on the batch's device, quantised to 8-bit levels as a saved image would be.
torch::Tensor apply_degradation(const torch::Tensor& batch, const DegradationParams& params,
                                const ApplyOptions& options = {});
// One params per item (e.g. from sample_batch). Items whose resize steps agree run as one batch;
// item i's result does not depend on the other items.
torch::Tensor apply_degradation(const torch::Tensor& batch, const std::vector<DegradationParams>& params,
                                const ApplyOptions& options = {});
// Output size for an input of (h, w).
std::pair<int64_t, int64_t> degraded_size(const DegradationParams& params, int64_t h, int64_t w);

// ---- contact sheet ------------------------------------------------------------------------
// A labelled grid of each degradation type and preset applied to (a crop of) `source`: the
// visual check of the engine (docs/degradation_contact_sheet.png).
Image make_contact_sheet(const Image& source, uint64_t seed, int tile = 192);

}  // namespace face2scene
