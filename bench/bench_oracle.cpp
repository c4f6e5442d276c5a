// The oracle-core benchmark (issue #10): does a degradation code read from the face restore the
// whole scene better than blind restoration?
//   bench_oracle --ablation [--limit N] [--every K] [--out DIR]   held-out crops × {mild,moderate,severe} × {×4,×1}:
//       (a) bicubic, (b) Real-ESRGAN (the restorer's backbone), (c) ours blind (the blind twin), (d) ours with the
//       code of the ground-truth face pair, (e) ours with the code of the true parameters (FaDeX
//       codes of 8 other faces under the same degradation, averaged), (d0) the conditioned model
//       with null tokens. PSNR / SSIM (RGB) and LPIPS, with 95% CIs and paired differences.
//   [--param-models DIR] adds the upper bound trained on the true parameter vector (param_oracle).
//   [--realism R] (0 < R <= 1) adds the GAN restorers (scene_restorer*_gan.safetensors beside the
//       L1 ones, interpolated at R): gan_blind, gan_face_code, gan_true_params (issue 21).
//   [--x4plus-weights F] adds Real-ESRGAN x4plus itself (the GAN-trained reference of issue 21).
//   NIQE and BRISQUE columns when --metric-weights DIR (default <data>/weights) holds niqe/ and
//   brisque/; --no-nr skips them.
//   bench_oracle --fadex [--out DIR]   content invariance, linear probes, face vs background codes,
//       t-SNE of codes (PNG).
//   bench_oracle --speed [--device cuda] [--dtype bf16]   one step at 1 MP output (and 4 MP).
//   bench_oracle --export-set DIR   writes the held-out crops and faces as PNGs; --set DIR reads them
//       instead of the shared data (for the GPU machine, which has no shared data).
// --device cpu|cuda for --ablation/--fadex (fp32 either way; TF32 off).
// Models: --models DIR (default ./weights), base weights from the cache (scripts/install_models.sh).
// Data: $F2S_DATA or the compiled-in ../shared/data. Held-out images only: every input's sha256 is
// checked against the training pack's absence from bench/heldout.sha256 (it must be listed there).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "oracle_bench_util.hpp"
#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train.hpp"

using namespace face2scene;
using namespace f2s_bench;

namespace {

torch::Tensor up_bicubic(const torch::Tensor& x, int64_t h, int64_t w) {
  return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBicubic).align_corners(false))
      .clamp(0, 1);
}

torch::Tensor down_area(const torch::Tensor& x, int64_t f) { return F::avg_pool2d(x, F::AvgPool2dFuncOptions(f)); }

double psnr_t(const torch::Tensor& a, const torch::Tensor& b) {
  auto qa = (a * 255).round(), qb = (b * 255).round();
  const double mse = (qa - qb).pow(2).mean().item<double>();
  return mse <= 0 ? 100.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

double ssim_t(const torch::Tensor& a, const torch::Tensor& b) {
  return metrics::ssim(tensor_to_image(a.squeeze(0)), tensor_to_image(b.squeeze(0)));
}

int run_ablation(const Args& args) {
  const std::string out = args.get("--out", "out/bench_oracle");
  fs::create_directories(out);
  const int limit = std::stoi(args.get("--limit", "0"));
  auto scenes = heldout_scenes(data_dir(), limit);
  // --every K keeps every K-th crop: a quicker run that still spans every set (the people crops
  // come last, so --limit alone drops them).
  if (const int every = std::stoi(args.get("--every", "1")); every > 1) {
    decltype(scenes) kept;
    for (size_t i = 0; i < scenes.size(); i += size_t(every)) kept.push_back(std::move(scenes[i]));
    scenes = std::move(kept);
  }
  auto faces = heldout_faces(data_dir());
  std::printf("held-out: %zu scene crops, %zu faces\n", scenes.size(), faces.size());
  OracleOptions o;  // fp32 on the chosen device (CPU default)
  o.device = parse_device(args.get("--device", "cpu"));
  if (o.device.is_cuda()) at::globalContext().setAllowTF32CuDNN(false);
  const auto paths = OracleModelPaths::locate(args.get("--models", ""));
  OracleRestorer cond(paths, o, false), blind(paths, o, true);
  UpscaleOptions uo;
  uo.model = cond.backbone();  // (b) is the Real-ESRGAN model our restorer is built on
  uo.device = o.device;
  uo.tiles.tile = 0;
  Upscaler esrgan(uo, args.get("--base", ""));
  const metrics::Lpips lpips(args.get("--lpips-weights", data_dir() + "/weights"), o.device);
  // No-reference judges that are not training losses (issue 21).
  std::optional<metrics::Niqe> niqe;
  std::unique_ptr<metrics::Brisque> brisque;
  const std::string mw = args.get("--metric-weights", data_dir() + "/weights");
  if (!args.has("--no-nr")) {
    if (file_exists(mw + "/niqe/niqe_pris_params.npz")) niqe.emplace(mw + "/niqe/niqe_pris_params.npz");
    if (file_exists(mw + "/brisque/brisque_model_live.yml")) brisque = std::make_unique<metrics::Brisque>(mw + "/brisque");
    if (!niqe || !brisque) std::printf("NIQE/BRISQUE weights not found in %s: those columns stay empty\n", mw.c_str());
  }

  std::vector<std::string> methods{"bicubic", "realesrgan", "blind", "cond_null", "face_code", "true_params"};
  // --param-models DIR: the upper bound trained on the true parameter vector (`train restorer
  // --param-oracle`): restorer_params.safetensors + param_encoder.safetensors.
  const std::string pdir = args.get("--param-models", "");
  std::unique_ptr<OracleRestorer> pcond;
  ParamEncoder penc{nullptr};
  ParamNormaliser pnorm;
  if (!pdir.empty()) {
    auto pp = paths;
    pp.restorer = pdir + "/restorer_params.safetensors";
    pcond = std::make_unique<OracleRestorer>(pp, o, false);
    penc = load_param_encoder(pdir + "/param_encoder.safetensors", o.device);
    pnorm = ParamNormaliser::of(load_fadex(paths.fadex));
    methods.push_back("param_oracle");
  }
  std::unique_ptr<Upscaler> x4plus;
  if (args.has("--x4plus-weights")) {
    UpscaleOptions xo = uo;
    xo.model = RealEsrganModel::kX4Plus;
    x4plus = std::make_unique<Upscaler>(xo, args.get("--x4plus-weights", ""));
    methods.push_back("x4plus");
  }
  const double realism = std::stod(args.get("--realism", "0"));
  std::unique_ptr<OracleRestorer> gcond, gblind;
  if (realism > 0) {
    auto go = o;
    go.realism = realism;
    gcond = std::make_unique<OracleRestorer>(paths, go, false);
    gblind = std::make_unique<OracleRestorer>(paths, go, true);
    for (const char* m : {"gan_blind", "gan_face_code", "gan_true_params"}) methods.push_back(m);
  }
  std::ofstream csv(out + "/ablation.csv");
  csv << "image,preset,scale,method,psnr,ssim,lpips,niqe,brisque\n";
  // values[preset|scale|method] -> per-sample metric vectors (aligned by sample order)
  std::map<std::string, AblationValues> values;
  Progress progress("ablation", int64_t(scenes.size()) * 6);
  for (const std::string preset : {"mild", "moderate", "severe"}) {
    for (const int scale : {4, 1}) {
      DegradationSampler sampler(preset, 2026 + uint64_t(scale));
      sampler.set_out_scale(4);
      sampler.set_keep_size(scale == 1);
      for (size_t i = 0; i < scenes.size(); ++i) {
        const auto& s = scenes[i];
        const auto params = sampler.sample();
        auto lq = apply_degradation(s.scene, params);
        const auto& face = faces[i % faces.size()];
        auto face_lq = apply_degradation(face, params);
        // (e): the same degradation on 8 other held-out faces; their code maps averaged.
        std::vector<torch::Tensor> others;
        for (size_t k = 1; k <= 8; ++k) others.push_back(faces[(i + 7 * k) % faces.size()]);
        auto ob = torch::cat(others, 0);
        auto true_code = cond.code_map(apply_degradation(ob, params), ob).mean(0, true);
        std::map<std::string, torch::Tensor> pred;
        const int64_t H = s.scene.size(2), W = s.scene.size(3);
        pred["bicubic"] = scale == 4 ? up_bicubic(lq, H, W) : lq;
        auto e = esrgan.upscale_x4(lq);
        pred["realesrgan"] = scale == 4 ? e : resize_images(e, H, W, ResizeMode::kBicubic).clamp(0, 1);
        pred["blind"] = blind.restore(lq, blind.tokens(torch::Tensor()), scale);
        pred["cond_null"] = cond.restore(lq, cond.tokens(torch::Tensor()), scale);
        pred["face_code"] = cond.restore(lq, cond.tokens(cond.code_map(face_lq, face)), scale);
        pred["true_params"] = cond.restore(lq, cond.tokens(true_code), scale);
        if (x4plus) {
          auto x = x4plus->upscale_x4(lq);
          pred["x4plus"] = scale == 4 ? x : resize_images(x, H, W, ResizeMode::kBicubic).clamp(0, 1);
        }
        if (gcond) {
          pred["gan_blind"] = gblind->restore(lq, gblind->tokens(torch::Tensor()), scale);
          pred["gan_face_code"] = gcond->restore(lq, gcond->tokens(gcond->code_map(face_lq, face)), scale);
          pred["gan_true_params"] = gcond->restore(lq, gcond->tokens(true_code), scale);
        }
        if (pcond) {
          torch::NoGradGuard ng;
          const auto v = pnorm.normalise({params}, o.device);
          pred["param_oracle"] = pcond->restore(lq, pcond->tokens(penc->forward(v)), scale);
        }
        for (const auto& m : methods) {
          const auto& p = pred[m];
          const double ps = psnr_t(p, s.scene), ss = ssim_t(p, s.scene);
          const double lp = lpips.forward(p.to(o.device), s.scene.to(o.device)).item<double>();
          auto& v = values[preset + "|" + std::to_string(scale) + "|" + m];
          v[0].push_back(ps), v[1].push_back(ss), v[2].push_back(lp);
          double nq = std::nan(""), br = std::nan("");
          if (niqe || brisque) {
            const Image im = tensor_to_image(p.squeeze(0).to(torch::kCPU, torch::kFloat32).clamp(0, 1));
            if (niqe) v[3].push_back(nq = (*niqe)(im));
            if (brisque) v[4].push_back(br = (*brisque)(im));
          }
          csv << s.name << "," << preset << "," << scale << "," << m << "," << ps << "," << ss << "," << lp << "," << nq
              << "," << br << "\n";
        }
        if (i % 40 == 0) save_example_row(out, preset, scale, s.scene, lq, pred, methods, s.name);
        progress.advance();
      }
    }
  }
  progress.finish();
  write_ablation_summary(out + "/ablation.md", values, methods, scenes.size());
  std::printf("%s", read_file(out + "/ablation.md").c_str());
  return 0;
}

int run_fadex(const Args& args) {
  const std::string out = args.get("--out", "out/bench_oracle");
  fs::create_directories(out);
  auto faces = heldout_faces(data_dir());
  OracleOptions o;
  o.device = parse_device(args.get("--device", "cpu"));
  const auto paths = OracleModelPaths::locate(args.get("--models", ""));
  OracleRestorer r(paths, o, false);
  auto global = [&](const torch::Tensor& lq, const torch::Tensor& hq) {
    return F::normalize(r.code_map(lq, hq).mean({2, 3}), F::NormalizeFuncOptions().dim(1)).cpu();
  };
  // 1) content invariance: 24 degradations × 8 faces.
  const int nd = 24, nf = 8;
  std::vector<std::string> presets{"mild", "moderate", "severe", "realesrgan"};
  std::vector<std::vector<torch::Tensor>> codes(nd);
  for (int d = 0; d < nd; ++d) {
    DegradationSampler smp(presets[d % 4], 99 + d);
    smp.set_out_scale(4);
    const auto p = smp.sample();
    for (int f = 0; f < nf; ++f) {
      const auto& face = faces[(d * 3 + f) % faces.size()];
      codes[d].push_back(global(apply_degradation(face, p), face));
    }
  }
  double same_deg = 0, same_face = 0;
  int n1 = 0, n2 = 0;
  for (int d = 0; d < nd; ++d)
    for (int f = 0; f + 1 < nf; ++f) same_deg += 1 - (codes[d][f] * codes[d][f + 1]).sum().item<double>(), ++n1;
  // Same face under two degradations: faces are indexed (d*3+f), so pair (d,f) with (d+1,f-3).
  for (int d = 0; d + 1 < nd; ++d)
    for (int f = 3; f < nf; ++f) same_face += 1 - (codes[d][f] * codes[d + 1][f - 3]).sum().item<double>(), ++n2;
  same_deg /= n1;
  same_face /= n2;
  // 2) linear probes and 3) t-SNE on 480 pairs from the 4 presets, ×4 and ×1.
  std::vector<torch::Tensor> feats;
  std::vector<std::vector<float>> targets;
  std::vector<int> labels;
  for (int i = 0; i < 480; ++i) {
    DegradationSampler smp(presets[i % 4], 5000 + i);
    smp.set_out_scale(4);
    smp.set_keep_size(i % 3 == 0);
    const auto p = smp.sample();
    const auto& face = faces[i % faces.size()];
    feats.push_back(global(apply_degradation(face, p), face));
    targets.push_back(summarize(p).to_vector());
    labels.push_back(i % 4);
  }
  auto X = torch::cat(feats, 0);
  auto Y = torch::tensor(std::vector<float>([&] {
             std::vector<float> v;
             for (auto& t : targets) v.insert(v.end(), t.begin(), t.end());
             return v;
           }()))
               .view({int64_t(targets.size()), DegradationSummary::kSize});
  const auto r2 = ridge_probe_r2(X, Y, 240);
  // 4) face code vs background-patch code of the same degradation, against other degradations.
  auto scenes = heldout_scenes(data_dir(), 48);
  double matched = 0, unmatched = 0;
  std::vector<torch::Tensor> fc, bc;
  for (size_t i = 0; i < scenes.size(); ++i) {
    DegradationSampler smp(presets[i % 3], 777 + i);
    smp.set_out_scale(4);
    const auto p = smp.sample();
    const auto& face = faces[i % faces.size()];
    auto patch = scenes[i].scene.slice(2, 64, 192).slice(3, 64, 192);
    fc.push_back(global(apply_degradation(face, p), face));
    bc.push_back(global(apply_degradation(patch, p), patch));
  }
  auto FC = torch::cat(fc, 0), BC = torch::cat(bc, 0);
  auto sim = torch::matmul(FC, BC.t());
  matched = sim.diag().mean().item<double>();
  unmatched = (sim.sum() - sim.diag().sum()).item<double>() / double(sim.size(0) * (sim.size(0) - 1));
  const double top1 = sim.argmax(1).eq(torch::arange(sim.size(0))).to(torch::kFloat32).mean().item<double>();
  // t-SNE picture.
  write_tsne_png(out + "/fadex_tsne.png", X, labels, {"mild", "moderate", "severe", "realesrgan"});
  std::ofstream md(out + "/fadex.md");
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "| measure | value |\n|---|---|\n| code distance (1 - cos), two faces under one degradation | %.4f |\n"
                "| code distance, one face under two degradations | %.4f |\n| ratio (lower = more content-invariant) | %.3f |\n",
                same_deg, same_face, same_deg / std::max(same_face, 1e-9));
  md << buf;
  const auto names = DegradationSummary::names();
  for (size_t k = 0; k < names.size(); ++k) {
    std::snprintf(buf, sizeof buf, "| linear-probe R² (held-out half), %s | %.3f |\n", names[k].c_str(), r2[k]);
    md << buf;
  }
  std::snprintf(buf, sizeof buf,
                "| face vs background-patch code, same degradation: mean cos | %.4f |\n"
                "| face vs background-patch code, other degradations: mean cos | %.4f |\n"
                "| background patch retrieves its face's degradation (top-1 of %lld) | %.3f |\n",
                matched, unmatched, static_cast<long long>(sim.size(0)), top1);
  md << buf;
  md.close();
  std::printf("%s", read_file(out + "/fadex.md").c_str());
  return 0;
}

int run_speed(const Args& args) {
  OracleOptions o;
  o.device = parse_device(args.get("--device", "cpu"));
  const std::string dt = args.get("--dtype", o.device.is_cuda() ? "bf16" : "fp32");
  o.dtype = parse_dtype(dt, o.device, torch::kBFloat16);
  o.tiles.tile = std::stoi(args.get("--tile", "0"));
  const auto paths = OracleModelPaths::locate(args.get("--models", ""));
  OracleRestorer r(paths, o, false);
  auto tokens = r.tokens(r.code_map(torch::rand({1, 3, 32, 32}), torch::rand({1, 3, 128, 128})));
  for (const int64_t side : {256, 512}) {  // ×4 -> 1 MP and 4 MP outputs
    auto x = torch::rand({1, 3, side, side});
    r.restore(x, tokens, 4);  // warm-up (cuDNN autotune)
    const int reps = o.device.is_cuda() ? 20 : 2;
    double best = 1e30, sum = 0;
    for (int k = 0; k < reps; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      auto y = r.restore(x, tokens, 4);  // includes the copy back to the host
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s), sum += s;
    }
    const double gflop = restorer_gflops(side, side, r.backbone());
    std::printf("%s %s %s: %lldx%lld -> x4 (%.1f MP): best %.1f ms, mean %.1f ms; %.0f GFLOP per image\n",
                model_name(r.backbone()).c_str(), o.device.str().c_str(), dt.c_str(), static_cast<long long>(side), static_cast<long long>(side),
                16.0 * side * side / 1e6, best * 1e3, sum / reps * 1e3, gflop);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args(argc, argv);
    set_num_threads(std::stoi(args.get("--threads", "0")));
    torch::NoGradGuard ng;
    set_dir() = args.get("--set", "");
    if (args.has("--export-set")) return export_set(args.get("--export-set", "out/oracle_set"), data_dir()), 0;
    if (args.has("--to-bf16")) {
      // Checkpoint shrinking (carrying to the GPU machine, shipping): floats to bf16 (or --fp16),
      // FaDeX's normaliser kept in fp32.
      const std::string in = args.get("--to-bf16", ""), out = args.get("--out", "");
      const auto dtype = args.has("--fp16") ? torch::kHalf : torch::kBFloat16;
      auto st = load_safetensors(in);
      for (auto& [k, v] : st.tensors)
        if (v.is_floating_point() && k != "param_mean" && k != "param_std") v = v.to(dtype);
      save_safetensors(out, st.tensors, st.metadata);
      return 0;
    }
    if (args.has("--ablation")) return run_ablation(args);
    if (args.has("--fadex")) return run_fadex(args);
    if (args.has("--speed")) return run_speed(args);
    std::fprintf(stderr, "usage: bench_oracle --ablation|--fadex|--speed [options] (see the header of bench_oracle.cpp)\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_oracle: %s\n", e.what());
    return 1;
  }
}
