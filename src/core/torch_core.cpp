#include <cstdlib>
#include <thread>

#include "face2scene/tensor.hpp"

namespace face2scene {

torch::Dtype parse_dtype(const std::string& name, const torch::Device& device, torch::Dtype cuda_auto) {
  if (name == "auto") return device.is_cuda() ? cuda_auto : torch::kFloat32;
  if (name == "fp32") return torch::kFloat32;
  if (name == "fp16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  throw ArgumentError("unknown --dtype '" + name + "' (auto, fp32, fp16, bf16)");
}

torch::Device parse_device(const std::string& name) {
  if (name.empty() || name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ArgumentError("device '" + name + "': CUDA is not available in this build or machine (use --device cpu)");
    }
    try {
      torch::Device d(name);
      if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw ArgumentError("device '" + name + "': only " +
                            std::to_string(torch::cuda::device_count()) + " CUDA device(s)");
      }
      return d;
    } catch (const c10::Error&) {
      throw ArgumentError("device '" + name + "': not a device name (auto, cpu, cuda, cuda:N)");
    }
  }
  throw ArgumentError("device '" + name + "': not a device name (auto, cpu, cuda, cuda:N)");
}

bool cpu_native_bf16() {
  if (const char* env = std::getenv("F2S_CPU_BF16"); env && *env) return std::string(env) != "0";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

void set_num_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

void set_global_seed(uint64_t seed) { torch::manual_seed(seed); }

torch::Generator make_generator(uint64_t seed, const torch::Device& device) {
  torch::Generator gen;
  if (device.is_cuda()) {
    // Through the global context so this builds against CPU-only LibTorch 1.13 and CUDA 2.x alike.
    const torch::Device d(torch::kCUDA, device.index() < 0 ? 0 : device.index());
    gen = at::globalContext().defaultGenerator(d).clone();
  } else {
    gen = at::detail::createCPUGenerator(seed);
  }
  gen.set_current_seed(seed);
  return gen;
}

std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace face2scene
