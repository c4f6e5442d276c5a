// Metric speed: PSNR/SSIM/MS-SSIM of a 1 MP pair on one thread (they are plain C++), LPIPS of a
// 512x512 pair on 2 torch threads, NIQE/BRISQUE of a 512x512 image. Data: ../shared/data.
//   build/bin/bench_metrics --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <filesystem>

#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;

namespace {
const std::string kData = F2S_DATA_DIR;

// A deterministic 1024x1024 (or w x h) RGB pair: a real photo tiled, and a noisy copy.
std::pair<Image, Image> pair_of(int w, int h) {
  const Image src = read_image(kData + "/natural/Kodak24/kodim05.png");
  Image a(w, h, 3), b(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = src.at(x % src.width, y % src.height, c);
        a.at(x, y, c) = static_cast<uint16_t>(v);
        b.at(x, y, c) = static_cast<uint16_t>(std::clamp(v + (x * 7 + y * 13 + c * 5) % 17 - 8, 0, 255));
      }
  return {a, b};
}

void BM_Psnr1MP(benchmark::State& st) {
  auto [a, b] = pair_of(1024, 1024);
  for (auto _ : st) benchmark::DoNotOptimize(metrics::psnr(a, b));
}
void BM_Ssim1MP(benchmark::State& st) {
  auto [a, b] = pair_of(1024, 1024);
  metrics::PixelOptions o;
  o.y_channel = st.range(0) != 0;
  for (auto _ : st) benchmark::DoNotOptimize(metrics::ssim(a, b, o));
}
void BM_MsSsim1MP(benchmark::State& st) {
  auto [a, b] = pair_of(1024, 1024);
  for (auto _ : st) benchmark::DoNotOptimize(metrics::ms_ssim(a, b));
}
void BM_Lpips512(benchmark::State& st) {
  set_num_threads(2);
  metrics::Lpips lpips(kData + "/weights");
  auto [a, b] = pair_of(512, 512);
  for (auto _ : st) benchmark::DoNotOptimize(lpips(a, b));
}
void BM_Niqe512(benchmark::State& st) {
  metrics::Niqe niqe(kData + "/weights/niqe/niqe_pris_params.npz");
  auto [a, b] = pair_of(512, 512);
  for (auto _ : st) benchmark::DoNotOptimize(niqe(a));
}
void BM_Brisque512(benchmark::State& st) {
  metrics::Brisque brisque(kData + "/weights/brisque");
  auto [a, b] = pair_of(512, 512);
  for (auto _ : st) benchmark::DoNotOptimize(brisque(a));
}
}  // namespace

BENCHMARK(BM_Psnr1MP)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Ssim1MP)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MsSsim1MP)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Lpips512)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(BM_Niqe512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Brisque512)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
