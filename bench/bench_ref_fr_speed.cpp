// Ref-FR speed: one 128² face with R references (CPU) or a batch of faces (GPU), median of N
// timed runs after warm-up, with and without the references' encoding (the pipeline encodes a
// person's references once and reuses them for every face of that person).
//   bench_ref_fr_speed [--weights weights/ref_fr.safetensors] [--device cpu|cuda] [--batch 1]
//                      [--refs 3] [--runs 20] [--dtype fp32|bf16|fp16] [--profile trace.json]
// --profile writes a Chrome trace (chrome://tracing) of 5 calls with the references encoded once:
// where the time goes, op by op (scripts/profile_summary.py sums it by op name).
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "face2scene/degrade.hpp"
#include "face2scene/image.hpp"
#include "face2scene/tensor.hpp"

#include "face2scene/ref_fr.hpp"
#include "oracle_bench_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;

namespace {
void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
template <typename Fn>
double median_ms(const torch::Device& d, int runs, Fn fn) {
  for (int i = 0; i < 3; ++i) fn();
  sync(d);
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    sync(d);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) try {
  const f2s_bench::Args args(argc, argv);
  const std::string weights = args.get("--weights", "weights/ref_fr.safetensors");
  const torch::Device device = parse_device(args.get("--device", "cpu"));
  const int64_t batch = std::stoll(args.get("--batch", "1"));
  const int64_t refs = std::stoll(args.get("--refs", "3"));
  const int runs = std::stoi(args.get("--runs", "20"));
  const torch::Dtype dtype = parse_dtype(args.get("--dtype", "fp32"), device, torch::kBFloat16);
  set_num_threads(0);
  auto net = load_ref_fr(weights, device).net;
  net->to(dtype);
  const int64_t s = net->options.size;
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto lq = torch::rand({batch, 3, s, s}, opts);
  auto r = refs > 0 ? torch::rand({batch, refs, 3, s, s}, opts) : torch::Tensor();
  torch::NoGradGuard ng;
  const double full = median_ms(device, runs, [&] { net->forward(lq, r); });
  auto cached = net->encode_refs(r, batch);
  if (args.has("--profile")) {
    torch::autograd::profiler::RecordProfile guard(args.get("--profile", "trace.json"));
    for (int i = 0; i < 5; ++i) net->forward(lq, cached);
  }
  const double face_only = median_ms(device, runs, [&] { net->forward(lq, cached); });
  if (dtype != torch::kFloat32) {
    // What the lower precision costs in the picture: a real held-out face (London 003, CC BY;
    // never trained on), degraded ×8, with its other photo as the reference: the output in this
    // dtype against the float32 output of the same weights.
    const std::string dir = f2s_bench::data_dir() + "/faces/hq/london/";
    if (fs::exists(dir + "003_neutral.jpg")) {
      auto load = [&](const std::string& f) {
        auto t = image_to_tensor(read_image(dir + f).to_rgb().with_bit_depth(8)).unsqueeze(0);
        return resize_images(t, s, s, ResizeMode::kBicubic).clamp(0, 1);
      };
      const auto gt = load("003_neutral.jpg");
      const auto face = resize_images(resize_images(gt, s / 8, s / 8, ResizeMode::kBicubic), s, s, ResizeMode::kBicubic).clamp(0, 1);
      const auto ref = load("003_smiling.jpg").unsqueeze(1);
      auto ref32 = load_ref_fr(weights, device).net;
      const auto a = ref32->forward(face.to(device), ref.to(device)).to(torch::kCPU, torch::kFloat32).clamp(0, 1);
      const auto b = net->forward(face.to(device, dtype), ref.to(device, dtype)).to(torch::kCPU, torch::kFloat32).clamp(0, 1);
      const double mse = (a - b).pow(2).mean().item<double>();
      std::printf("  %s vs float32 on a held-out face (1 reference): PSNR %.2f dB, max |diff| %.4f; to the ground truth: %.2f vs %.2f dB\n",
                  args.get("--dtype", "fp32").c_str(), 10 * std::log10(1 / std::max(mse, 1e-12)), (a - b).abs().max().item<double>(),
                  -10 * std::log10((b - gt).pow(2).mean().item<double>()), -10 * std::log10((a - gt).pow(2).mean().item<double>()));
    }
  }
  std::printf("ref_fr speed: device %s, dtype %s, batch %lld, refs %lld, %d runs (median)\n", device.str().c_str(),
              args.get("--dtype", "fp32").c_str(), static_cast<long long>(batch), static_cast<long long>(refs), runs);
  std::printf("  with reference encoding: %.2f ms per call, %.3f ms per face\n", full, full / double(batch));
  std::printf("  references encoded once: %.2f ms per call, %.3f ms per face\n", face_only, face_only / double(batch));
  // The FLOP floor: 2 × multiply-adds per face; at a sustained rate R the time cannot go below it.
  const auto gflop = [&](int64_t n, bool encode) { return 2.0 * double(net->macs(n, encode)) / 1e9; };
  std::printf("  FLOP floor: %.2f GFLOP per face (%.2f with references encoded once, %.2f without references)\n",
              gflop(refs, true), gflop(refs, false), gflop(0, true));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_ref_fr_speed: %s\n", e.what());
  return 1;
}
