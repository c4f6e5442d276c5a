// Image quality metrics: full-reference (PSNR, SSIM, MS-SSIM, LPIPS) and no-reference (NIQE,
// BRISQUE), with the conventions of the super-resolution literature (BasicSR / scikit-image /
// the original MATLAB releases). docs/metrics.md says which convention each option follows.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "face2scene/image.hpp"

namespace face2scene::metrics {

// Options shared by the full-reference pixel metrics.
struct PixelOptions {
  // Pixels removed from every side before measuring (BasicSR's crop_border, usually the SR scale).
  int crop_border = 0;
  // Measure on BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 (R,G,B in [0,255]),
  // unrounded, as BasicSR's test_y_channel and skimage.color.rgb2ycbcr. Grey images are used as
  // they are.
  bool y_channel = false;
};

// One image as float planes on the [0,255] scale (16-bit images are rescaled), after the Y
// conversion and border crop of `opt`. Planes are channel-major: plane c starts at c*width*height.
struct Planes {
  int width = 0, height = 0, channels = 0;
  std::vector<float> data;
  const float* plane(int c) const { return data.data() + static_cast<size_t>(c) * width * height; }
};
Planes to_planes(const Image& image, const PixelOptions& opt);

// Throws ArgumentError naming `what` when the two images differ in size or channel count, or are
// smaller than the crop.
void check_pair(const Image& pred, const Image& gt, const PixelOptions& opt, const std::string& what);

// PSNR in dB with peak 255 over all channels together (MSE averaged over every sample), as
// BasicSR calculate_psnr and skimage peak_signal_noise_ratio(data_range=255). Identical images
// give +infinity.
double psnr(const Image& pred, const Image& gt, const PixelOptions& opt = {});
// SSIM of Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, L=255, population
// (not sample) covariance, mean over the 'valid' region, then mean over channels. Equals BasicSR
// calculate_ssim and skimage structural_similarity(gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False, data_range=255).
double ssim(const Image& pred, const Image& gt, const PixelOptions& opt = {});
// MS-SSIM of Wang, Simoncelli, Bovik 2003 (5 scales, weights 0.0448, 0.2856, 0.3001, 0.2363,
// 0.1333), as the authors' msssim.m: SSIM window as above, 2x2 box downsampling (symmetric edge
// for odd sizes), contrast-structure terms clamped at 0 (as pytorch_msssim), per channel then mean.
// Needs both sides >= 176 px after the crop (the window must fit at the 5th scale).
double ms_ssim(const Image& pred, const Image& gt, const PixelOptions& opt = {});

// Lower-level forms on planes of equal shape (used by the benchmark and tests).
double psnr_planes(const Planes& a, const Planes& b);
double ssim_planes(const Planes& a, const Planes& b);
double ms_ssim_planes(const Planes& a, const Planes& b);

// ---- LPIPS v0.1, SqueezeNet variant ---------------------------------------------------------
// Zhang et al. 2018, "lpips" package with net='squeeze', version='0.1': ScalingLayer, torchvision
// SqueezeNet 1.1 features cut after relu1 and fire 2,3 / 4,5 / 6 / 7 / 8 / 9 (7 taps), channel
// unit-normalisation, squared difference, 1x1 linear heads, spatial mean, sum over taps.
class Lpips {
 public:
  struct Impl;  // public only so that helpers in lpips.cpp can take it
  // `weights_dir` holds either the shared layout (lpips_v0.1/squeeze.pth and
  // squeezenet1_1_torchvision_ncnn_fp16/squeezenet_v1.1.ncnn.{param,bin}) or a converted
  // lpips_squeeze.safetensors (see export_safetensors).
  Lpips(const std::string& weights_dir, const torch::Device& device = torch::kCPU);
  ~Lpips();
  Lpips(Lpips&&) noexcept;
  Lpips& operator=(Lpips&&) noexcept;

  // Distance of two images of equal size (grey is replicated to RGB). Lower is more similar.
  double operator()(const Image& a, const Image& b) const;
  // Batched: a and b are [N,3,H,W] in [0,1]; returns [N] distances.
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b) const;
  // The same distance with autograd through the inputs (the network stays frozen): a training loss.
  torch::Tensor distance(const torch::Tensor& a, const torch::Tensor& b) const;
  // LPIPS over a region: mask [N,1,H,W] (or [1,1,H,W] for all) in [0,1], the images' size. Each
  // tap's distance map is averaged over the mask area-resized to that tap's grid (weights =
  // coverage), then the taps are summed, as forward() does with a plain spatial mean; a mask of
  // ones gives forward(a, b). A mask with no weight at some tap gives NaN. Returns [N].
  torch::Tensor masked(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) const;
  // The 7 backbone taps (before normalisation) for x in [0,1], [N,3,H,W]; for verification.
  std::vector<torch::Tensor> features(const torch::Tensor& x) const;
  // Writes backbone (torchvision names: features.N.*) and heads (lin{i}.model.1.weight) as fp32
  // safetensors, so that an independent implementation can load exactly these values.
  void export_safetensors(const std::string& path) const;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- NIQE --------------------------------------------------------------------------------
// Mittal et al. 2013, as BasicSR calculate_niqe (MATLAB-compatible): Y channel rounded to
// integers, 96x96 blocks at two scales (second by MATLAB bicubic imresize 0.5 with antialiasing),
// 36 AGGD/GGD features per block, distance to the pristine model. Lower is better.
class Niqe {
 public:
  // `npz_path`: niqe_pris_params.npz (mu_pris_param, cov_pris_param, gaussian_window).
  explicit Niqe(const std::string& npz_path);
  double operator()(const Image& image, int crop_border = 0) const;
  // On a Y plane already on the [0,255] scale (rounded by the caller for MATLAB agreement).
  double on_plane(const std::vector<double>& y, int width, int height) const;

 private:
  std::vector<double> mu_;    // 36
  std::vector<double> cov_;   // 36x36 row-major
  std::vector<double> window_;  // 7x7 row-major
};

// ---- BRISQUE -----------------------------------------------------------------------------
// Mittal et al. 2012, as OpenCV contrib's quality::QualityBRISQUE: 36 MSCN features at two scales
// of the grey image, scaled by the range file, then the LIVE-trained epsilon-SVR (RBF). Lower is
// better (roughly 0..100).
class Brisque {
 public:
  // `dir` holds brisque_model_live.yml and brisque_range_live.yml (OpenCV FileStorage YAML).
  explicit Brisque(const std::string& dir);
  ~Brisque();
  Brisque(Brisque&&) noexcept;
  double operator()(const Image& image) const;
  std::vector<double> features(const Image& image) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- statistics --------------------------------------------------------------------------
struct Summary {
  int n = 0;
  double mean = 0, sd = 0;
  double ci95 = 0;  // half-width of the 95% confidence interval of the mean (Student t); 0 if n<2
};
// Non-finite values (PSNR of identical images) are skipped and counted in `skipped`.
Summary summarize(const std::vector<double>& values, int* skipped = nullptr);
// Quantile of Student's t distribution with `df` degrees of freedom (p in (0,1)).
double student_t_quantile(double p, int df);

// Percentile bootstrap of the mean: `resamples` resamples with replacement (a fixed seed, so a
// report is reproducible), the (1-level)/2 and (1+level)/2 quantiles of the resampled means.
// No normality assumption: identity matches are 0/1 and LPIPS is skewed. Non-finite values are
// skipped; n = 0 gives NaNs, n = 1 a zero-width interval.
struct BootstrapCI {
  int n = 0;
  double mean = 0, lo = 0, hi = 0;
};
BootstrapCI bootstrap_mean_ci(const std::vector<double>& values, int resamples = 2000, double level = 0.95,
                              uint64_t seed = 1);
// The paired difference a[i] - b[i] (equal lengths, else ArgumentError); pairs with a non-finite
// side are skipped. Resampling the pairs keeps what is shared by both sides (the face, its
// degradation) out of the interval.
BootstrapCI paired_bootstrap_ci(const std::vector<double>& a, const std::vector<double>& b, int resamples = 2000,
                                double level = 0.95, uint64_t seed = 1);

// ---- KID (SqueezeNet features) ------------------------------------------------------------
// Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² between two sets of
// features with the cubic polynomial kernel k(x,y) = (x·y/d + 1)³. NOT FID's/KID's Inception-v3
// (its weights are not available here): the features are the LPIPS SqueezeNet 1.1 backbone's last
// tap (fire9, 512 channels), global-average-pooled, scaled to a fixed norm, on 224² patches of each image. Values compare
// methods measured the same way; they are not comparable with published KID numbers.
// Patches: a grid of non-overlapping 224² tiles centred in the image, at most `max_patches`
// (evenly spread); an image under 224 px on a side is bicubic-upscaled to 224 on that side first.
// The pooled SqueezeNet activations are unbounded (ReLU), which made the cubic kernel explode, so
// each vector is scaled to norm sqrt(d) (kid_normalise): x·y/d is then their cosine and the kernel
// (cos + 1)³ lies in [1, 8]. Returns [P,512] float32 on the CPU. image: [3,H,W] in [0,1].
torch::Tensor kid_features(const Lpips& net, const torch::Tensor& image, int patch = 224, int max_patches = 16);
// Rows of [P,d] scaled to norm sqrt(d) (idempotent).
torch::Tensor kid_normalise(const torch::Tensor& features);
// Unbiased MMD² of two feature sets [m,d] and [n,d] (m, n >= 2).
double kid(const torch::Tensor& a, const torch::Tensor& b);
// KID between per-image feature sets (image i of `a` is the same scene as image i of `b`, as for a
// method's outputs and their ground truths) with a percentile-bootstrap interval over images:
// resampled images take all their patches along. Computed from per-image kernel block sums, so a
// resample costs O(images²). mean = the KID of all images (not the bootstrap mean).
BootstrapCI kid_bootstrap(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, int resamples = 1000,
                          double level = 0.95, uint64_t seed = 1);

}  // namespace face2scene::metrics
