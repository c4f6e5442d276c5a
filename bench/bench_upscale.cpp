// Real-ESRGAN speed (Google Benchmark) and quality (--quality, --noref) on the CPU or CUDA.
//   bench_upscale --benchmark_filter=...        speed: ×4 of Kodak kodim15 at 256×171
//   bench_upscale --quality [--models x4fast,x4plus] [--sets Set14,Kodak24,BSD100] [--limit N]
//                 [--no-lpips] [--lpips-weights DIR] [--save OUT]
//   bench_upscale --noref DIR [--models x4fast,x4plus] [--limit 20] [--save OUT] [--weights DIR]
// Common: [--threads N] (0 = all cores) [--tile N] (CPU default 200, CUDA 0) [--device cpu|cuda].
// Quality follows the SR literature: HR cropped to a multiple of 4, LR = bicubic ×1/4 (antialiased,
// as MATLAB imresize), PSNR and SSIM on BT.601 Y with 4 border pixels cropped; LPIPS (v0.1,
// SqueezeNet, metrics::Lpips: RGB [0,1] -> [-1,1] inside) on the whole 8-bit RGB image, no crop.
// --noref: no-reference NIQE and BRISQUE (metrics::Niqe / metrics::Brisque, whole image, alpha
// ignored) of the first N images of DIR (sorted names): the input as it is, bicubic ×4 and each model ×4.
// Weights: --weights / --lpips-weights, else $F2S_WEIGHTS, else <data>/weights where <data> is
// $F2S_DATA (as the tests) or ../shared/data next to the repository.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "face2scene/core.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

using namespace face2scene;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

// $F2S_DATA (as the tests), else the compiled-in ../shared/data.
std::string data_dir() {
  const char* env = std::getenv("F2S_DATA");
  return env && *env ? env : F2S_DATA_DIR;
}

// Value of "--name VALUE" on the command line, or `fallback`.
std::string arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  }
  return fallback;
}
bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], name)) return true;
  }
  return false;
}

// --weights, else $F2S_WEIGHTS (as `face2scene metrics`), else <data>/weights.
std::string weights_dir(int argc, char** argv) {
  const char* env = std::getenv("F2S_WEIGHTS");
  return arg(argc, argv, "--weights", env && *env ? std::string(env) : data_dir() + "/weights");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::unique_ptr<Upscaler> make_upscaler(const std::string& method, const torch::Device& dev, int tile) {
  UpscaleOptions o;
  o.model = parse_realesrgan_model(method);
  o.device = dev;
  o.dtype = dev.is_cuda() ? torch::kHalf : torch::kFloat32;
  o.tiles.tile = tile >= 0 ? tile : (dev.is_cuda() ? 0 : 200);
  return std::make_unique<Upscaler>(o);
}

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
  auto hr = image_to_tensor(read_image(data_dir() + "/natural/Kodak24/kodim15.png"), torch::kCPU,
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

void setup_threads(int argc, char** argv) {
  set_num_threads(std::atoi(arg(argc, argv, "--threads", "0").c_str()));
  std::fprintf(stderr, "torch threads: %d\n", torch::get_num_threads());
}

int run_quality(int argc, char** argv) {
  const std::string models = arg(argc, argv, "--models", "x4fast,x4plus");
  const std::string sets = arg(argc, argv, "--sets", "Set14,Kodak24,BSD100");
  const int limit = std::atoi(arg(argc, argv, "--limit", "0").c_str());
  const int tile = std::atoi(arg(argc, argv, "--tile", "-1").c_str());
  const std::string save = arg(argc, argv, "--save", "");  // <save>/<set>/{hr,<method>}/<name>.png, for cross-checks
  const auto dev = parse_device(arg(argc, argv, "--device", "cpu"));
  setup_threads(argc, argv);
  std::unique_ptr<metrics::Lpips> lpips;
  if (!flag(argc, argv, "--no-lpips")) {
    const std::string dir = arg(argc, argv, "--lpips-weights", weights_dir(argc, argv));
    lpips = std::make_unique<metrics::Lpips>(dir, dev);
    std::fprintf(stderr, "LPIPS weights: %s\n", dir.c_str());
  }
  std::printf("| set | images | method | PSNR-Y (dB) | SSIM-Y | LPIPS | s/image (upscale) |\n|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (const auto& set : split(sets)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(data_dir() + "/natural/" + set)) {
      if (is_image_path(e.path().string())) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (limit > 0 && static_cast<int>(files.size()) > limit) files.resize(limit);
    std::vector<std::string> methods{"bicubic"};
    for (const auto& m : split(models)) methods.push_back(m);
    for (const auto& method : methods) {
      std::unique_ptr<Upscaler> up;
      if (method != "bicubic") up = make_upscaler(method, dev, tile);
      double p = 0, s = 0, l = 0, t = 0;
      for (const auto& f : files) {
        auto hr = image_to_tensor(read_image(f), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
        const int64_t h = hr.size(2) / 4 * 4, w = hr.size(3) / 4 * 4;
        hr = hr.slice(2, 0, h).slice(3, 0, w);
        auto lr = resize_bicubic(hr, h / 4, w / 4).mul(255).round().div(255);
        const auto t0 = std::chrono::steady_clock::now();
        auto sr = up ? up->upscale_x4(lr) : resize_bicubic(lr, h, w);
        t += seconds_since(t0);
        sr = sr.mul(255).round().div(255);
        p += psnr_y(sr, hr);
        s += ssim_y(sr, hr);
        if (lpips) l += lpips->forward(sr, hr).item<double>();
        if (!save.empty()) {
          const std::string name = fs::path(f).stem().string() + ".png";
          for (const auto& [sub, img] : {std::pair<std::string, torch::Tensor>{"hr", hr}, {method, sr}}) {
            const auto d = fs::path(save) / set / sub;
            fs::create_directories(d);
            write_image((d / name).string(), tensor_to_image(img));
          }
        }
      }
      const double n = static_cast<double>(files.size());
      char lp[32] = "–";
      if (lpips) std::snprintf(lp, sizeof lp, "%.4f", l / n);
      std::printf("| %s | %zu | %s | %.2f | %.4f | %s | %.3f |\n", set.c_str(), files.size(), method.c_str(), p / n, s / n,
                  lp, t / n);
      std::fflush(stdout);
    }
  }
  return 0;
}

// No-reference scores of real photos (no ground truth): the input, bicubic ×4 and each model ×4.
int run_noref(int argc, char** argv) {
  const std::string dir = arg(argc, argv, "--noref", "");
  const std::string models = arg(argc, argv, "--models", "x4fast,x4plus");
  const int limit = std::atoi(arg(argc, argv, "--limit", "20").c_str());
  const int tile = std::atoi(arg(argc, argv, "--tile", "-1").c_str());
  const std::string save = arg(argc, argv, "--save", "");
  const auto dev = parse_device(arg(argc, argv, "--device", "cpu"));
  setup_threads(argc, argv);
  const std::string wdir = weights_dir(argc, argv);
  const metrics::Niqe niqe((fs::path(wdir) / "niqe" / "niqe_pris_params.npz").string());
  const metrics::Brisque brisque((fs::path(wdir) / "brisque").string());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (is_image_path(e.path().string())) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (limit > 0 && static_cast<int>(files.size()) > limit) files.resize(limit);
  std::fprintf(stderr, "%zu images of %s (sorted names%s), metric weights %s\n", files.size(), dir.c_str(),
               limit > 0 ? (", first " + std::to_string(limit)).c_str() : "", wdir.c_str());
  std::vector<std::string> methods{"input", "bicubic"};
  for (const auto& m : split(models)) methods.push_back(m);
  std::string csv = "image,method,width,height,niqe,brisque,seconds\n";
  std::printf("| method | images | NIQE ↓ | BRISQUE ↓ | s/image (upscale) |\n|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (const auto& method : methods) {
    std::unique_ptr<Upscaler> up;
    if (method != "input" && method != "bicubic") up = make_upscaler(method, dev, tile);
    std::vector<double> nv, bv;
    double t = 0;
    for (const auto& f : files) {
      Image in = read_image(f);
      in.alpha.clear();  // the metrics ignore alpha; do not spend a network pass on it
      Image out;
      const auto t0 = std::chrono::steady_clock::now();
      if (method == "input") {
        out = in;
      } else if (up) {
        out = up->upscale(in);
      } else {
        auto x = image_to_tensor(in, torch::kCPU, torch::kFloat32, false).unsqueeze(0);
        out = tensor_to_image(resize_bicubic(x, 4 * x.size(2), 4 * x.size(3)), in.bit_depth);
      }
      const double dt = seconds_since(t0);
      t += dt;
      // NIQE of a photo with a single 96x96 block (e.g. 160x160) has no covariance (n - 1 = 0) and
      // the metrics module throws; such an image is left out of that mean (n says how many count).
      auto score = [&](auto&& fn) {
        try {
          return static_cast<double>(fn());
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s %s: %s\n", fs::path(f).filename().string().c_str(), method.c_str(),
                       std::string(e.what()).substr(0, 120).c_str());
          return std::nan("");
        }
      };
      nv.push_back(score([&] { return niqe(out); }));
      bv.push_back(score([&] { return brisque(out); }));
      const std::string stem = fs::path(f).stem().string();
      if (!save.empty() && method != "input") {
        fs::create_directories(fs::path(save) / method);
        write_image((fs::path(save) / method / (stem + ".png")).string(), out);
      }
      char row[512];
      std::snprintf(row, sizeof row, "%s,%s,%d,%d,%.4f,%.4f,%.3f\n", fs::path(f).filename().string().c_str(),
                    method.c_str(), out.width, out.height, nv.back(), bv.back(), dt);
      csv += row;
      std::fprintf(stderr, "%s", row);
    }
    const auto sn = metrics::summarize(nv), sb = metrics::summarize(bv);
    std::printf("| %s | %zu | %.3f ± %.3f (n=%d) | %.2f ± %.2f (n=%d) | %.2f |\n", method.c_str(), files.size(), sn.mean,
                sn.ci95, sn.n, sb.mean, sb.ci95, sb.n, t / files.size());
    std::fflush(stdout);
  }
  if (!save.empty()) {
    fs::create_directories(save);
    write_file_atomically((fs::path(save) / "noref.csv").string(), csv);
  }
  std::printf("\n± = 95%% confidence half-width of the mean (Student t). input: the photo as it is; others ×4.\n");
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
    if (!std::strcmp(argv[i], "--noref")) return run_noref(argc, argv);
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
