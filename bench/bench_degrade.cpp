// Degradation throughput (images/s at 512x512 RGB) per preset, JPEG codec vs emulation, one image
// per call (CLI path) and batches of 8 with one params per item (training path).
// Google Benchmark owns argv, so: F2S_BENCH_DEVICE=cpu|cuda (default cpu), F2S_BENCH_THREADS
// (default 2, CPU intra-op threads).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "face2scene/degrade.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;

namespace {
torch::Device g_device = torch::kCPU;

torch::Tensor test_image() {
  const std::string path = std::string(F2S_DATA_DIR) + "/natural/Kodak24/kodim23.png";
  if (file_exists(path)) {
    auto t = image_to_tensor(read_image(path), torch::kCPU, torch::kFloat32, true);
    return t.slice(1, 0, 512).slice(2, 0, 512).contiguous();  // Kodak is 768x512
  }
  auto g = make_generator(1, torch::kCPU);
  return torch::rand({3, 512, 512}, g);
}

void sync() {
  if (g_device.is_cuda()) torch::cuda::synchronize();
}

void run(benchmark::State& state, const std::string& preset, JpegMode mode, int batch) {
  torch::NoGradGuard no_grad;
  auto img = test_image().to(g_device);
  auto x = img.unsqueeze(0).expand({batch, 3, 512, 512}).contiguous();
  DegradationSampler sampler(preset, 1234);
  // Cycle through 16 draws so the time averages over the preset's distribution.
  std::vector<std::vector<DegradationParams>> draws;
  for (int i = 0; i < 16; ++i) draws.push_back(sampler.sample_batch(batch));
  apply_degradation(x, draws[0], {mode});  // warm-up (CUDA context, allocator)
  sync();
  size_t k = 0;
  for (auto _ : state) {
    auto y = apply_degradation(x, draws[k++ % draws.size()], {mode});
    sync();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["images/s"] = benchmark::Counter(double(state.iterations()) * batch, benchmark::Counter::kIsRate);
}
// Single steps on one 512x512 RGB image, to see where the time goes.
void step(benchmark::State& state, const std::string& which) {
  torch::NoGradGuard no_grad;
  auto x = test_image().to(g_device).unsqueeze(0);
  auto x256 = resize_images(x, 256, 256, ResizeMode::kArea);
  auto k21 = make_blur_kernel({KernelType::kIsoGaussian, 21, 3.f, 3.f}).unsqueeze(0);
  auto gen = make_generator(1, g_device);
  auto once = [&]() -> torch::Tensor {
    if (which == "blur21") return blur_images(x, k21);
    if (which == "resize_bicubic_div4") return resize_images(x, 128, 128, ResizeMode::kBicubic);
    if (which == "noise_gauss") return x + torch::randn(x.sizes(), gen, x.options()) * 0.05;
    if (which == "jpeg_codec_256") return jpeg_images(x256, {50}, JpegMode::kCodec);
    return jpeg_images(x256, {50}, JpegMode::kEmulated);
  };
  once();
  sync();
  for (auto _ : state) {
    auto y = once();
    sync();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}
}  // namespace

int main(int argc, char** argv) {
  const char* dev = std::getenv("F2S_BENCH_DEVICE");
  g_device = parse_device(dev ? dev : "cpu");
  const char* thr = std::getenv("F2S_BENCH_THREADS");
  set_num_threads(thr ? std::atoi(thr) : 2);
  benchmark::AddCustomContext("device", g_device.str());
  benchmark::AddCustomContext("torch_threads", std::to_string(torch::get_num_threads()));
  for (const char* w : {"blur21", "resize_bicubic_div4", "noise_gauss", "jpeg_codec_256", "jpeg_emulated_256"}) {
    const std::string which = w;
    benchmark::RegisterBenchmark(("step_512/" + which).c_str(), [which](benchmark::State& s) { step(s, which); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (const auto& preset : preset_names()) {
    for (auto [mode, mname] : {std::pair<JpegMode, const char*>{JpegMode::kCodec, "codec"}, {JpegMode::kEmulated, "emulated"}}) {
      for (int batch : {1, 8}) {
        const std::string name = "degrade_512/" + preset + "/" + mname + "/batch" + std::to_string(batch);
        benchmark::RegisterBenchmark(name.c_str(), [preset, mode = mode, batch](benchmark::State& s) { run(s, preset, mode, batch); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(1.0);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
