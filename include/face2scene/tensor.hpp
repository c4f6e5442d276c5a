// Torch side of the core: devices, seeding, Image <-> tensor, colour conversions, version shims.
#pragma once

#include <torch/torch.h>

#include <string>

#include "face2scene/image.hpp"

namespace face2scene {

// "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N". Throws ArgumentError when the
// device is unknown or CUDA is asked for but absent.
torch::Device parse_device(const std::string& name);
// "fp32", "fp16", "bf16", or "auto": `cuda_auto` on a CUDA device, float32 on the CPU. Throws
// ArgumentError for anything else.
torch::Dtype parse_dtype(const std::string& name, const torch::Device& device, torch::Dtype cuda_auto);
// True when this CPU computes bf16 natively (x86 AVX512-BF16): oneDNN then runs bf16 convolutions
// 2-3× faster than float32 (measured on the 2-core AMD EPYC, docs/RESULTS.md). F2S_CPU_BF16=0 or 1
// overrides the detection.
bool cpu_native_bf16();
// Sets torch's intra-op threads (0 = all hardware threads). LibTorch 1.13 starts with one.
void set_num_threads(int threads);
// Seeds torch's CPU and CUDA generators. Every stochastic part of face2scene draws from torch
// generators or from engines seeded with mix_seed(seed, stream).
void set_global_seed(uint64_t seed);
torch::Generator make_generator(uint64_t seed, const torch::Device& device);

// Image (HWC, integers) -> float tensor [C,H,W] in [0,1] on `device`. `rgb` replicates grey to 3
// channels. Alpha is not included (see alpha_to_tensor).
torch::Tensor image_to_tensor(const Image& image, const torch::Device& device = torch::kCPU,
                              torch::Dtype dtype = torch::kFloat32, bool rgb = false);
// Float tensor [C,H,W] or [1,C,H,W] in [0,1] (clamped) -> Image of `bit_depth`, rounded.
Image tensor_to_image(const torch::Tensor& tensor, int bit_depth = 8);
torch::Tensor alpha_to_tensor(const Image& image, const torch::Device& device = torch::kCPU);
void set_alpha_from_tensor(Image& image, const torch::Tensor& alpha);

// IEC 61966-2-1 transfer functions on tensors in [0,1].
torch::Tensor srgb_to_linear(const torch::Tensor& x);
torch::Tensor linear_to_srgb(const torch::Tensor& x);
// BT.601 luma (Y of YCbCr, "16-235" range scaled to [0,1] as BasicSR's rgb2ycbcr(y_only=True)).
torch::Tensor rgb_to_y_bt601(const torch::Tensor& rgb);

std::string torch_version_string();

}  // namespace face2scene
