// Helpers of bench_oracle: arguments, the held-out benchmark set, summaries, probes, t-SNE picture.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "face2scene/core.hpp"
#include "face2scene/image.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

namespace f2s_bench {
using namespace face2scene;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

struct Args {
  Args(int argc, char** argv) : v(argv + 1, argv + argc) {}
  bool has(const std::string& k) const { return std::find(v.begin(), v.end(), k) != v.end(); }
  std::string get(const std::string& k, const std::string& def) const {
    auto it = std::find(v.begin(), v.end(), k);
    return it != v.end() && it + 1 != v.end() ? *(it + 1) : def;
  }
  std::vector<std::string> v;
};

inline std::string data_dir() {
  const char* env = std::getenv("F2S_DATA");
  return env && *env ? env : F2S_DATA_DIR;
}

struct Sample {
  std::string name;
  torch::Tensor scene;  // [1,3,256,256]
};

inline std::vector<std::string> sorted_images(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) throw IoError(dir + ": benchmark folder not found");
  for (const auto& e : fs::directory_iterator(dir)) {
    auto ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every benchmark input must be in bench/heldout.sha256, the list the trainer refuses.
inline const std::set<std::string>& heldout_hashes() {
  static const std::set<std::string> h = [] {
    std::set<std::string> s;
    std::ifstream in(std::string(F2S_REPO_DIR) + "/bench/heldout.sha256");
    if (!in) throw IoError(std::string(F2S_REPO_DIR) + "/bench/heldout.sha256 not found (scripts/pack_training_data.sh)");
    std::string line;
    while (std::getline(in, line))
      if (line.size() >= 64 && line[0] != '#') s.insert(line.substr(0, 64));
    return s;
  }();
  return h;
}

inline torch::Tensor load_checked(const std::string& path) {
  const std::string bytes = read_file(path);
  if (!heldout_hashes().count(sha256_hex(bytes))) {
    throw Error(path + ": not in bench/heldout.sha256, so it may have been trained on; refusing to benchmark on it");
  }
  return image_to_tensor(decode_image(bytes, path), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
}

inline torch::Tensor resize_short(const torch::Tensor& x, int64_t side) {
  const int64_t h = x.size(2), w = x.size(3);
  const double s = double(side) / double(std::min(h, w));
  if (s >= 1) return x;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{std::llround(h * s), std::llround(w * s)})
                               .mode(torch::kBicubic)
                               .align_corners(false)
                               .antialias(true))
      .clamp(0, 1);
}

inline torch::Tensor center_crop(const torch::Tensor& x, int64_t c) {
  const int64_t h = x.size(2), w = x.size(3);
  return x.slice(2, (h - c) / 2, (h - c) / 2 + c).slice(3, (w - c) / 2, (w - c) / 2 + c).contiguous();
}

// Kodak24, the first 50 of BSD100, Urban100, Set14 (sides >= 256) and the held-out people_hq
// photos (every 3rd by name; short side resized to 512 first): one centre 256² crop each.
inline torch::Tensor load_png(const std::string& path) {
  return image_to_tensor(read_image(path), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
}

// A benchmark set exported by `bench_oracle --export-set DIR` (crops already checked against the
// held-out list when exported): DIR/scenes/*.png, DIR/faces/*.png.
inline std::string& set_dir() {
  static std::string dir;
  return dir;
}

inline std::vector<Sample> heldout_scenes(const std::string& data, int limit) {
  std::vector<Sample> out;
  if (!set_dir().empty()) {
    for (const auto& f : sorted_images(set_dir() + "/scenes")) {
      std::string name = fs::path(f).stem().string();
      const auto us = name.find('_');
      name = name.substr(us + 1);
      std::replace(name.begin(), name.end(), '+', '/');
      out.push_back({name, load_png(f)});
    }
    if (limit > 0 && int(out.size()) > limit) out.resize(size_t(limit));
    return out;
  }
  auto add = [&](const std::string& f, bool people) {
    auto x = load_checked(f);
    if (people) x = resize_short(x, 512);
    if (x.size(2) < 256 || x.size(3) < 256) return;
    out.push_back({fs::path(f).parent_path().filename().string() + "/" + fs::path(f).stem().string(), center_crop(x, 256)});
  };
  for (const auto& f : sorted_images(data + "/natural/Kodak24")) add(f, false);
  auto bsd = sorted_images(data + "/natural/BSD100");
  for (size_t i = 0; i < bsd.size() && i < 50; ++i) add(bsd[i], false);
  for (const auto& f : sorted_images(data + "/natural/Urban100")) add(f, false);
  for (const auto& f : sorted_images(data + "/natural/Set14")) add(f, false);
  const auto people = sorted_images(data + "/scenes/people_hq");
  for (size_t i = 0; i < people.size(); i += 3) add(people[i], true);
  if (limit > 0 && int(out.size()) > limit) out.resize(size_t(limit));
  return out;
}

// CelebRef-HQ references (512² aligned, resized to 128) and the first photo of every 10th LFW
// person (held out from training; centre 128² crop of the 250² deep-funneled photo).
inline std::vector<torch::Tensor> heldout_faces(const std::string& data) {
  std::vector<torch::Tensor> out;
  if (!set_dir().empty()) {
    for (const auto& f : sorted_images(set_dir() + "/faces")) out.push_back(load_png(f));
    return out;
  }
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(data + "/faces/celebref/RefsImg")) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs)
    for (const auto& f : sorted_images(d)) {
      auto x = load_checked(f);
      out.push_back(F::interpolate(x, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{128, 128})
                                          .mode(torch::kBicubic)
                                          .align_corners(false)
                                          .antialias(true))
                        .clamp(0, 1));
    }
  std::vector<std::string> persons;
  for (const auto& e : fs::directory_iterator(data + "/faces/lfw"))
    if (e.is_directory()) persons.push_back(e.path().string());
  std::sort(persons.begin(), persons.end());
  for (size_t i = 0; i < persons.size(); i += 10) {
    auto files = sorted_images(persons[i]);
    if (!files.empty()) out.push_back(center_crop(load_checked(files.front()), 128));
  }
  return out;
}

inline void export_set(const std::string& dir, const std::string& data) {
  fs::create_directories(dir + "/scenes");
  fs::create_directories(dir + "/faces");
  const auto scenes = heldout_scenes(data, 0);
  char buf[32];
  for (size_t i = 0; i < scenes.size(); ++i) {
    std::string name = scenes[i].name;
    std::replace(name.begin(), name.end(), '/', '+');
    std::snprintf(buf, sizeof buf, "%03zu_", i);
    write_image(dir + "/scenes/" + buf + name + ".png", tensor_to_image(scenes[i].scene.squeeze(0)));
  }
  const auto faces = heldout_faces(data);
  for (size_t i = 0; i < faces.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%03zu.png", i);
    write_image(dir + "/faces/" + buf, tensor_to_image(faces[i].squeeze(0)));
  }
  std::printf("exported %zu scene crops and %zu faces to %s\n", scenes.size(), faces.size(), dir.c_str());
}

// Mean ± CI per cell, then paired differences for the claims.
// Per-sample metric vectors of one cell: PSNR, SSIM, LPIPS, NIQE, BRISQUE (the last two empty when
// their weights were not found).
using AblationValues = std::array<std::vector<double>, 5>;

// "m ± ci", or "–" for a metric that was not measured.
inline std::string mean_ci(const std::vector<double>& v, const char* fmt) {
  if (v.empty()) return "–";
  const auto s = metrics::summarize(v);
  char buf[96];
  std::snprintf(buf, sizeof buf, fmt, s.mean, s.ci95);
  return buf;
}

inline void write_ablation_summary(const std::string& path, const std::map<std::string, AblationValues>& values,
                                   const std::vector<std::string>& methods, size_t n) {
  std::ofstream md(path);
  char buf[512];
  md << "Held-out crops: " << n << " per cell. Mean ± 95% CI (Student t). PSNR/SSIM on RGB, LPIPS-squeeze;\n"
        "NIQE and BRISQUE (no-reference, lower is better) on the whole 256² crop.\n\n";
  md << "| preset | scale | method | PSNR (dB) | SSIM | LPIPS | NIQE | BRISQUE |\n|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, AblationValues> overall;
  for (const std::string preset : {"mild", "moderate", "severe"})
    for (const int scale : {4, 1})
      for (const auto& m : methods) {
        const auto it = values.find(preset + "|" + std::to_string(scale) + "|" + m);
        if (it == values.end()) continue;
        const auto& v = it->second;
        std::snprintf(buf, sizeof buf, "| %s | ×%d | %s | %s | %s | %s | %s | %s |\n", preset.c_str(), scale, m.c_str(),
                      mean_ci(v[0], "%.2f ± %.2f").c_str(), mean_ci(v[1], "%.4f ± %.4f").c_str(),
                      mean_ci(v[2], "%.4f ± %.4f").c_str(), mean_ci(v[3], "%.3f ± %.3f").c_str(),
                      mean_ci(v[4], "%.2f ± %.2f").c_str());
        md << buf;
        for (int k = 0; k < 5; ++k) {
          auto& o = overall[std::to_string(scale) + "|" + m][size_t(k)];
          o.insert(o.end(), it->second[size_t(k)].begin(), it->second[size_t(k)].end());
        }
      }
  md << "\nPaired differences (first minus second), mean ± 95% CI:\n\n";
  md << "| scope | comparison | ΔPSNR (dB) | ΔLPIPS | ΔNIQE | ΔBRISQUE |\n|---|---|---|---|---|---|\n";
  auto diff = [&](const std::string& scope, const AblationValues& a, const AblationValues& b, const std::string& label) {
    std::array<std::vector<double>, 5> d;
    for (int k : {0, 2, 3, 4})
      for (size_t i = 0; i < a[size_t(k)].size() && i < b[size_t(k)].size(); ++i)
        d[size_t(k)].push_back(a[size_t(k)][i] - b[size_t(k)][i]);
    std::snprintf(buf, sizeof buf, "| %s | %s | %s | %s | %s | %s |\n", scope.c_str(), label.c_str(),
                  mean_ci(d[0], "%+.3f ± %.3f").c_str(), mean_ci(d[2], "%+.4f ± %.4f").c_str(),
                  mean_ci(d[3], "%+.3f ± %.3f").c_str(), mean_ci(d[4], "%+.2f ± %.2f").c_str());
    md << buf;
  };
  const std::vector<std::pair<std::string, std::string>> pairs{{"face_code", "blind"},
                                                               {"face_code", "realesrgan"},
                                                               {"true_params", "face_code"},
                                                               {"face_code", "cond_null"},
                                                               {"param_oracle", "blind"},
                                                               {"param_oracle", "face_code"},
                                                               {"face_code", "x4plus"},
                                                               // the GAN restorers (--realism)
                                                               {"gan_face_code", "gan_blind"},
                                                               {"gan_face_code", "x4plus"},
                                                               {"gan_face_code", "realesrgan"},
                                                               {"gan_face_code", "face_code"},
                                                               {"gan_true_params", "gan_face_code"},
                                                               {"gan_blind", "blind"}};
  for (const int scale : {4, 1}) {
    for (const auto& [a, b] : pairs) {
      const auto ia = overall.find(std::to_string(scale) + "|" + a), ib = overall.find(std::to_string(scale) + "|" + b);
      if (ia != overall.end() && ib != overall.end()) diff("all ×" + std::to_string(scale), ia->second, ib->second, a + " − " + b);
    }
    for (const std::string preset : {"mild", "moderate", "severe"}) {
      for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
               {"face_code", "blind"}, {"param_oracle", "blind"}, {"gan_face_code", "gan_blind"}}) {
        const auto ia = values.find(preset + "|" + std::to_string(scale) + "|" + a);
        const auto ib = values.find(preset + "|" + std::to_string(scale) + "|" + b);
        if (ia != values.end() && ib != values.end()) diff(preset + " ×" + std::to_string(scale), ia->second, ib->second, a + " − " + b);
      }
    }
  }
}

// Ridge regression from codes to each target column, fit on the first `n_fit` rows, R² on the rest.
inline std::vector<double> ridge_probe_r2(const torch::Tensor& X_in, const torch::Tensor& Y, int64_t n_fit) {
  auto X = torch::cat({X_in.to(torch::kFloat64), torch::ones({X_in.size(0), 1}, torch::kFloat64)}, 1);
  auto Yd = Y.to(torch::kFloat64);
  auto Xf = X.narrow(0, 0, n_fit), Yf = Yd.narrow(0, 0, n_fit);
  auto Xt = X.narrow(0, n_fit, X.size(0) - n_fit), Yt = Yd.narrow(0, n_fit, X.size(0) - n_fit);
  auto A = torch::matmul(Xf.t(), Xf) + 1e-2 * torch::eye(X.size(1), torch::kFloat64);
  auto W = torch::matmul(torch::inverse(A), torch::matmul(Xf.t(), Yf));
  auto pred = torch::matmul(Xt, W);
  std::vector<double> r2;
  for (int64_t k = 0; k < Y.size(1); ++k) {
    auto y = Yt.select(1, k), p = pred.select(1, k);
    const double ss_res = (y - p).pow(2).sum().item<double>(), ss_tot = (y - y.mean()).pow(2).sum().item<double>();
    r2.push_back(ss_tot > 0 ? 1 - ss_res / ss_tot : std::nan(""));
  }
  return r2;
}

// Exact t-SNE (perplexity 30, 600 iterations, early exaggeration) of the rows of X, drawn as dots
// coloured by label with a legend of coloured squares.
inline void write_tsne_png(const std::string& path, const torch::Tensor& X_in, const std::vector<int>& labels,
                           const std::vector<std::string>& names) {
  auto X = X_in.to(torch::kFloat64);
  const int64_t n = X.size(0);
  auto D = torch::cdist(X, X).pow(2);
  // Binary search of each row's precision for perplexity 30.
  auto P = torch::zeros({n, n}, torch::kFloat64);
  const double target = std::log(30.0);
  for (int64_t i = 0; i < n; ++i) {
    double lo = 1e-10, hi = 1e10, beta = 1;
    auto d = D[i].clone();
    d[i] = 1e300;
    torch::Tensor p;
    for (int it = 0; it < 60; ++it) {
      p = torch::exp(-(d - d.min()) * beta);
      p[i] = 0;
      const double sum = p.sum().item<double>();
      p = p / sum;
      const double h = -(p * torch::log(p + 1e-300)).sum().item<double>();
      if (h > target) lo = beta, beta = hi >= 1e10 ? beta * 2 : (beta + hi) / 2;
      else hi = beta, beta = (beta + lo) / 2;
    }
    P[i] = p;
  }
  P = (P + P.t()) / (2.0 * double(n));
  auto gen = make_generator(42, torch::kCPU);
  auto Ymap = torch::randn({n, 2}, gen, torch::TensorOptions().dtype(torch::kFloat64)) * 1e-2;
  auto vel = torch::zeros_like(Ymap);
  for (int it = 0; it < 600; ++it) {
    const double ex = it < 150 ? 12.0 : 1.0;
    auto num = 1.0 / (1.0 + torch::cdist(Ymap, Ymap).pow(2));
    num.fill_diagonal_(0);
    auto Q = num / num.sum();
    auto W = (ex * P - Q) * num;  // [n,n]
    auto grad = 4.0 * (torch::diag(W.sum(1)) - W).matmul(Ymap);
    vel = (it < 250 ? 0.5 : 0.8) * vel - 100.0 * grad;
    Ymap = Ymap + vel;
  }
  const int S = 512, pad = 24;
  Image img(S, S + 20 * int(names.size()), 3);
  std::fill(img.data.begin(), img.data.end(), uint16_t(255));
  const int colors[4][3] = {{31, 119, 180}, {255, 127, 14}, {214, 39, 40}, {44, 160, 44}};
  auto mn = std::get<0>(Ymap.min(0)), mx = std::get<0>(Ymap.max(0));
  auto dot = [&](int cx, int cy, const int* c, int r) {
    for (int y = cy - r; y <= cy + r; ++y)
      for (int x = cx - r; x <= cx + r; ++x)
        if (x >= 0 && y >= 0 && x < img.width && y < img.height)
          for (int k = 0; k < 3; ++k) img.at(x, y, k) = uint16_t(c[k]);
  };
  for (int64_t i = 0; i < n; ++i) {
    const double u = (Ymap[i][0].item<double>() - mn[0].item<double>()) / (mx[0].item<double>() - mn[0].item<double>() + 1e-12);
    const double v = (Ymap[i][1].item<double>() - mn[1].item<double>()) / (mx[1].item<double>() - mn[1].item<double>() + 1e-12);
    dot(pad + int(u * (S - 2 * pad)), pad + int(v * (S - 2 * pad)), colors[labels[size_t(i)] % 4], 2);
  }
  // Legend: one square per class in order (mild, moderate, severe, realesrgan), left to right.
  for (size_t k = 0; k < names.size() && k < 4; ++k) dot(pad + int(k) * 40, S + 10, colors[k], 6);
  write_image(path, img);
}

// FLOPs (multiply-adds × 2) of the conditioned restorer at ×4 on an h×w input: the frozen base,
// LoRA, the cross-attention adapters.
inline double restorer_gflops(int64_t h, int64_t w, RealEsrganModel backbone = RealEsrganModel::kGeneralX4V3) {
  const double px = double(h) * double(w);
  const double f = 64, r = 8, lora = f * r * 9 + r * f;
  double macs = 0;
  if (backbone == RealEsrganModel::kX4Plus) {
    const double g = 32, dense = 9 * (f * g + (f + g) * g + (f + 2 * g) * g + (f + 3 * g) * g + (f + 4 * g) * f);
    macs += px * (3 * f * 9 + 69 * dense + f * f * 9);           // conv_first, 23 RRDB × 3 dense blocks, conv_body
    macs += px * (4 + 16 + 16) * f * f * 9 + px * 16 * f * 3 * 9;  // conv_up1 (2×), conv_up2 + conv_hr (4×), conv_last
    macs += px * 69 * ((f + 4 * g) * r * 9 + r * f);             // LoRA on the dense blocks' conv5
    macs += px * (1 + 4 + 16 + 16) * lora;                       // LoRA on conv_body, up1, up2, hr
  } else {
    macs += px * (3 * f * 9 + 32 * f * f * 9 + f * 48 * 9);  // base
    macs += px * 33 * lora;                                  // LoRA (last one to 48, close enough)
  }
  macs += 8 * px * (f * f * 2 + 2 * 21 * f);  // adapters: q/out 1x1 + attention over 21 tokens
  return 2 * macs / 1e9;
}

// One row of example crops: LQ (nearest-upscaled for ×4), each method, GT; written as PNG.
inline void save_example_row(const std::string& out, const std::string& preset, int scale, const torch::Tensor& gt,
                             const torch::Tensor& lq, const std::map<std::string, torch::Tensor>& pred,
                             const std::vector<std::string>& methods, const std::string& name) {
  std::vector<torch::Tensor> row;
  const int64_t H = gt.size(2), W = gt.size(3);
  row.push_back(F::interpolate(lq, F::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kNearest)));
  for (const auto& m : methods) row.push_back(pred.at(m));
  row.push_back(gt);
  std::string safe = name;
  std::replace(safe.begin(), safe.end(), '/', '_');
  write_image(out + "/example_" + preset + "_x" + std::to_string(scale) + "_" + safe + ".png",
              tensor_to_image(torch::cat(row, 3).squeeze(0)));
}

}  // namespace f2s_bench
