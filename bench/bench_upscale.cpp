// Real-ESRGAN speed (Google Benchmark) and quality (--quality) on the CPU or CUDA.
//   bench_upscale --benchmark_filter=...        speed: ×4 of Kodak kodim15 at 256×171
//   bench_upscale --quality [--models x4fast,x4plus] [--sets Set14,Kodak24,BSD100] [--limit N]
// Quality follows the SR literature: HR cropped to a multiple of 4, LR = bicubic ×1/4 (antialiased,
// as MATLAB imresize), PSNR and SSIM on BT.601 Y with 4 border pixels cropped.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "face2scene/core.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

torch::Tensor resize_bicubic(const torch::Tensor& x, int64_t h, int64_t w) {
  const bool down = h < x.size(2);
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{h, w})
                               .mode(torch::kBicubic)
                               .align_corners(false)
                               .antialias(down))
      .clamp(0, 1);
}

// 256×171 kodim15, the input of the peer measurements in docs.
torch::Tensor kodim15_small() {
  auto hr = image_to_tensor(read_image(std::string(F2S_DATA_DIR) + "/natural/Kodak24/kodim15.png"), torch::kCPU,
                            torch::kFloat32, true)
                .unsqueeze(0);
  // Quantise to 8 bits as a saved PNG would be.
  return resize_bicubic(hr, 171, 256).mul(255).round().div(255);
}

// FLOPs (2 per multiply-add) of one ×4 pass per input pixel, counted from the architectures.
double flops_per_pixel(RealEsrganModel m) {
  auto conv = [](double cin, double cout) { return 2.0 * cin * cout * 9.0; };
  if (m == RealEsrganModel::kGeneralX4V3) return conv(3, 64) + 32 * conv(64, 64) + conv(64, 48);
  double rdb = conv(64, 32) + conv(96, 32) + conv(128, 32) + conv(160, 32) + conv(192, 64);
  return conv(3, 64) + 69 * rdb + conv(64, 64) + 4 * conv(64, 64) + 16 * conv(64, 64) + 16 * conv(64, 64) +
         16 * conv(64, 3);
}

void BM_Upscale(benchmark::State& state, RealEsrganModel m, int tile) {
  UpscaleOptions o;
  o.model = m;
  o.tiles.tile = tile;
  Upscaler up(o);
  auto x = kodim15_small();
  for (auto _ : state) benchmark::DoNotOptimize(up.upscale_x4(x));
  const double f = flops_per_pixel(m) * x.size(2) * x.size(3);
  state.counters["GFLOP"] = f / 1e9;
  state.counters["GFLOP/s"] = benchmark::Counter(f / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = torch::get_num_threads();
}

torch::Tensor y_channel(const torch::Tensor& rgb) {  // [1,3,H,W] -> [1,1,H,W], BT.601 in [0,1] range of 16..235
  return (16.0 + 65.481 * rgb.select(1, 0) + 128.553 * rgb.select(1, 1) + 24.966 * rgb.select(1, 2)).unsqueeze(1) / 255.0;
}

double psnr_y(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (y_channel(a) - y_channel(b)).slice(2, 4, -4).slice(3, 4, -4);
  return 10.0 * std::log10(1.0 / d.pow(2).mean().item<double>());
}

double ssim_y(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = (y_channel(a) * 255).slice(2, 4, -4).slice(3, 4, -4).to(torch::kFloat64);
  auto y = (y_channel(b) * 255).slice(2, 4, -4).slice(3, 4, -4).to(torch::kFloat64);
  auto g = torch::arange(11, torch::kFloat64).sub(5).pow(2).div(-2 * 1.5 * 1.5).exp();
  g = g / g.sum();
  auto k = (g.unsqueeze(1) * g.unsqueeze(0)).view({1, 1, 11, 11});
  auto blur = [&](const torch::Tensor& t) { return F::conv2d(t, k); };  // 'valid', as Wang et al.
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  auto mx = blur(x), my = blur(y);
  auto sxx = blur(x * x) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(x * y) - mx * my;
  auto s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  return s.mean().item<double>();
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

int run_quality(int argc, char** argv) {
  std::string models = "x4fast,x4plus", sets = "Set14,Kodak24,BSD100", device = "cpu";
  int limit = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--models")) models = argv[i + 1];
    if (!std::strcmp(argv[i], "--sets")) sets = argv[i + 1];
    if (!std::strcmp(argv[i], "--limit")) limit = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--device")) device = argv[i + 1];
  }
  const auto dev = parse_device(device);
  std::printf("| set | images | method | PSNR-Y (dB) | SSIM-Y |\n|---|---|---|---|---|\n");
  for (const auto& set : split(sets)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(std::string(F2S_DATA_DIR) + "/natural/" + set)) {
      if (is_image_path(e.path().string())) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (limit > 0 && static_cast<int>(files.size()) > limit) files.resize(limit);
    std::vector<std::string> methods{"bicubic"};
    for (const auto& m : split(models)) methods.push_back(m);
    for (const auto& method : methods) {
      std::unique_ptr<Upscaler> up;
      if (method != "bicubic") {
        UpscaleOptions o;
        o.model = parse_realesrgan_model(method);
        o.device = dev;
        o.dtype = dev.is_cuda() ? torch::kHalf : torch::kFloat32;
        o.tiles.tile = dev.is_cuda() ? 0 : 200;
        up = std::make_unique<Upscaler>(o);
      }
      double p = 0, s = 0;
      for (const auto& f : files) {
        auto hr = image_to_tensor(read_image(f), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
        const int64_t h = hr.size(2) / 4 * 4, w = hr.size(3) / 4 * 4;
        hr = hr.slice(2, 0, h).slice(3, 0, w);
        auto lr = resize_bicubic(hr, h / 4, w / 4).mul(255).round().div(255);
        auto sr = up ? up->upscale_x4(lr) : resize_bicubic(lr, h, w);
        sr = sr.mul(255).round().div(255);
        p += psnr_y(sr, hr);
        s += ssim_y(sr, hr);
      }
      std::printf("| %s | %zu | %s | %.2f | %.4f |\n", set.c_str(), files.size(), method.c_str(), p / files.size(),
                  s / files.size());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

BENCHMARK_CAPTURE(BM_Upscale, x4fast_256x171_whole, RealEsrganModel::kGeneralX4V3, 0)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Upscale, x4fast_256x171_tile200, RealEsrganModel::kGeneralX4V3, 200)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Upscale, x4plus_256x171_whole, RealEsrganModel::kX4Plus, 0)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Upscale, x4plus_256x171_tile200, RealEsrganModel::kX4Plus, 200)->Unit(benchmark::kSecond)->UseRealTime();

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quality")) return run_quality(argc, argv);
    if (!std::strcmp(argv[i], "--flops")) {
      for (auto m : {RealEsrganModel::kGeneralX4V3, RealEsrganModel::kX4Plus}) {
        const double f = flops_per_pixel(m) * 256 * 171;
        std::printf("%s: %.3f MFLOP per input pixel, %.1f GFLOP for 256x171, floor at 100 GFLOP/s %.2f s\n",
                    model_name(m).c_str(), flops_per_pixel(m) / 1e6, f / 1e9, f / 1e11);
      }
      return 0;
    }
  }
  set_num_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
