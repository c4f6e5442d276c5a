// `face2scene metrics`: image quality of predictions against ground truth (folder or single pair),
// per-image CSV plus a Markdown summary with mean and 95% confidence interval.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "cli_common.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {

struct MetricsArgs {
  std::vector<std::string> pred;
  std::string gt, refs, out, weights, lpips_weights;
  std::string metrics = "psnr,ssim";
  int crop_border = 0;
  bool y_channel = false;
  std::string export_lpips;  // developer: write the converted LPIPS weights and stop
};

struct MetricInfo {
  const char* name;
  bool needs_gt;
  bool higher_is_better;
  const char* unit;
};
const std::vector<MetricInfo>& known_metrics() {
  static const std::vector<MetricInfo> k = {{"psnr", true, true, "dB"},       {"ssim", true, true, ""},
                                            {"ms-ssim", true, true, ""},      {"lpips", true, false, ""},
                                            {"niqe", false, false, ""},       {"brisque", false, false, ""}};
  return k;
}
const MetricInfo& info_of(const std::string& name) {
  for (const auto& m : known_metrics()) {
    if (name == m.name) return m;
  }
  std::string all;
  for (const auto& m : known_metrics()) all += std::string(all.empty() ? "" : ", ") + m.name;
  throw ArgumentError("--metrics: unknown metric '" + name + "' (known: " + all + ")");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    std::transform(item.begin(), item.end(), item.begin(), ::tolower);
    if (item == "msssim" || item == "ms_ssim") item = "ms-ssim";
    if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  return out;
}

std::string fmt(double v, int digits = 8) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Ground truth for each prediction: same file stem in the gt folder (any image extension), or the
// gt file itself when a single pair is given.
std::vector<std::string> pair_ground_truth(const std::vector<std::string>& preds, const std::string& gt) {
  std::error_code ec;
  if (!fs::is_directory(gt, ec)) {
    if (!fs::exists(gt, ec)) throw IoError(gt + ": no such file or folder (--gt)");
    if (preds.size() != 1) throw ArgumentError("--gt is a single file but --pred names " + std::to_string(preds.size()) + " images; give a folder");
    return {gt};
  }
  std::map<std::string, std::string> by_stem;
  for (const auto& e : fs::directory_iterator(gt)) {
    if (!e.is_regular_file() || !is_image_path(e.path().string())) continue;
    const std::string stem = e.path().stem().string();
    if (by_stem.count(stem)) throw ArgumentError(gt + ": two ground-truth images share the name '" + stem + "'");
    by_stem[stem] = e.path().string();
  }
  std::vector<std::string> out, missing;
  for (const auto& p : preds) {
    auto it = by_stem.find(fs::path(p).stem().string());
    if (it == by_stem.end()) {
      missing.push_back(fs::path(p).filename().string());
    } else {
      out.push_back(it->second);
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", ...";
    throw IoError(gt + ": no ground truth for " + std::to_string(missing.size()) + " of " + std::to_string(preds.size()) +
                  " predictions (matched by file name without extension): " + list);
  }
  if (by_stem.size() > preds.size()) {
    log_warn(gt + ": " + std::to_string(by_stem.size() - preds.size()) + " ground-truth images have no prediction and are ignored");
  }
  return out;
}

void run_metrics(const MetricsArgs& a, const GlobalOptions& g) {
  const torch::Device device = parse_device(g.device);
  const std::string weights = a.weights.empty() ? (std::getenv("F2S_WEIGHTS") ? std::getenv("F2S_WEIGHTS") : "") : a.weights;
  const std::string lpips_dir = a.lpips_weights.empty() ? weights : a.lpips_weights;
  if (!a.export_lpips.empty()) {
    // Developer aid for scripts/gpu/verify_lpips.sh: the converted weights, plus the 7 backbone
    // taps of each --pred image, so an independent implementation can compare both.
    if (lpips_dir.empty()) throw ArgumentError("--export-lpips needs --lpips-weights DIR");
    const metrics::Lpips model(lpips_dir, torch::kCPU);
    ensure_directory(a.export_lpips);
    model.export_safetensors((fs::path(a.export_lpips) / "lpips_squeeze.safetensors").string());
    for (const auto& p : a.pred.empty() ? std::vector<std::string>{} : collect_images(a.pred)) {
      const auto taps = model.features(image_to_tensor(read_image(p), torch::kCPU, torch::kFloat32, true).unsqueeze(0));
      TensorMap t;
      for (size_t i = 0; i < taps.size(); ++i) t["tap" + std::to_string(i)] = taps[i].contiguous();
      save_safetensors((fs::path(a.export_lpips) / ("taps_" + fs::path(p).stem().string() + ".safetensors")).string(), t);
    }
    log_info("wrote " + a.export_lpips + "/lpips_squeeze.safetensors");
    return;
  }
  if (a.pred.empty()) throw ArgumentError("--pred is required");
  if (!a.refs.empty()) {
    // Hook for identity similarity: the descriptor network is ported separately (docs/metrics.md).
    throw ArgumentError("--refs: identity similarity is not available in this build yet");
  }
  const auto names = split_list(a.metrics);
  if (names.empty()) throw ArgumentError("--metrics: empty list");
  for (const auto& n : names) {
    if (info_of(n).needs_gt && a.gt.empty()) throw ArgumentError("metric '" + n + "' needs --gt (ground truth)");
  }
  auto wants = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  auto need_weights = [&](const std::string& dir, const char* metric, const char* opt) {
    if (dir.empty()) throw ArgumentError(std::string(metric) + " needs " + opt + " DIR (e.g. ../shared/data/weights) or $F2S_WEIGHTS");
  };
  std::unique_ptr<metrics::Lpips> lpips;
  std::optional<metrics::Niqe> niqe;
  std::unique_ptr<metrics::Brisque> brisque;
  if (wants("lpips")) {
    need_weights(lpips_dir, "lpips", "--lpips-weights");
    lpips = std::make_unique<metrics::Lpips>(lpips_dir, device);
  }
  if (wants("niqe")) {
    need_weights(weights, "niqe", "--weights");
    niqe.emplace((fs::path(weights) / "niqe" / "niqe_pris_params.npz").string());
  }
  if (wants("brisque")) {
    need_weights(weights, "brisque", "--weights");
    brisque = std::make_unique<metrics::Brisque>((fs::path(weights) / "brisque").string());
  }

  const auto preds = collect_images(a.pred);
  const auto gts = a.gt.empty() ? std::vector<std::string>{} : pair_ground_truth(preds, a.gt);
  metrics::PixelOptions opt;
  opt.crop_border = a.crop_border;
  opt.y_channel = a.y_channel;

  std::vector<std::vector<double>> values(names.size());
  std::string csv = "image";
  for (const auto& n : names) csv += "," + n;
  csv += "\n";
  Progress progress("metrics", static_cast<int64_t>(preds.size()));
  for (size_t i = 0; i < preds.size(); ++i) {
    const Image pred = read_image(preds[i]);
    Image gt;
    if (!gts.empty()) {
      gt = read_image(gts[i]);
      const std::string what = preds[i] + " vs " + gts[i];
      if (pred.width != gt.width || pred.height != gt.height) {
        throw ArgumentError(what + ": sizes differ (" + std::to_string(pred.width) + "x" + std::to_string(pred.height) +
                            " vs " + std::to_string(gt.width) + "x" + std::to_string(gt.height) + ")");
      }
      if (pred.channels != gt.channels) {
        throw ArgumentError(what + ": " + (pred.channels == 1 ? "the prediction" : "the ground truth") +
                            " is grey and the other RGB; both must have the same colour type");
      }
      metrics::check_pair(pred, gt, opt, what);
    }
    csv += csv_field(fs::path(preds[i]).filename().string());
    for (size_t k = 0; k < names.size(); ++k) {
      const std::string& n = names[k];
      double v = 0;
      try {
        if (n == "psnr") v = metrics::psnr(pred, gt, opt);
        else if (n == "ssim") v = metrics::ssim(pred, gt, opt);
        else if (n == "ms-ssim") v = metrics::ms_ssim(pred, gt, opt);
        else if (n == "lpips") v = (*lpips)(pred, gt);
        else if (n == "niqe") v = (*niqe)(pred, opt.crop_border);
        else if (n == "brisque") v = (*brisque)(pred);
      } catch (const ArgumentError& e) {
        throw ArgumentError(preds[i] + ": " + e.what());
      }
      values[k].push_back(v);
      csv += "," + fmt(v);
    }
    csv += "\n";
    progress.advance();
  }
  progress.finish();

  std::string md = "| metric | n | mean | 95% CI | sd |\n|---|---|---|---|---|\n", notes;
  for (size_t k = 0; k < names.size(); ++k) {
    const auto& mi = info_of(names[k]);
    int skipped = 0;
    const auto s = metrics::summarize(values[k], &skipped);
    const int digits = names[k] == "psnr" || names[k] == "niqe" || names[k] == "brisque" ? 3 : 4;
    std::string label = std::string(mi.name) + (mi.higher_is_better ? " ↑" : " ↓");
    if (*mi.unit) label += std::string(" (") + mi.unit + ")";
    md += "| " + label + " | " + std::to_string(s.n) + " | " + fmt(s.mean, digits) + " | " +
          (s.n >= 2 ? "± " + fmt(s.ci95, digits) : std::string("–")) + " | " + (s.n >= 2 ? fmt(s.sd, digits) : "–") + " |\n";
    if (skipped) notes += "\n" + names[k] + ": " + std::to_string(skipped) + " identical pair(s) with infinite PSNR left out of the mean.";
  }
  md += notes.empty() ? "" : notes + "\n";
  std::string conv = "\nPSNR/SSIM: " + std::string(a.y_channel ? "Y channel (BT.601)" : "RGB") +
                     ", crop border " + std::to_string(a.crop_border) + "; 95% CI: Student t on the per-image values.\n";
  md += conv;
  std::fputs(md.c_str(), stdout);
  if (!a.out.empty()) {
    ensure_directory(a.out);
    write_file_atomically((fs::path(a.out) / "metrics.csv").string(), csv);
    write_file_atomically((fs::path(a.out) / "summary.md").string(), md);
    log_info("wrote " + (fs::path(a.out) / "metrics.csv").string() + " and summary.md");
  }
}

Command setup_metrics(CLI::App& app, GlobalOptions& g) {
  auto args = std::make_shared<MetricsArgs>();
  auto* sub = app.add_subcommand("metrics", "Image quality: PSNR, SSIM, MS-SSIM, LPIPS, NIQE, BRISQUE over a folder of predictions");
  sub->add_option("--pred", args->pred, "Predicted images: files and/or folders (required)");
  sub->add_option("--gt", args->gt,
                  "Ground truth: a folder with the same file names (extension may differ), or one file for one prediction");
  sub->add_option("--refs", args->refs, "Reference faces per image, for identity similarity (reserved; not available yet)");
  sub->add_option("-m,--metrics", args->metrics,
                  "Comma-separated: psnr, ssim, ms-ssim, lpips (need --gt), niqe, brisque (no reference)")
      ->capture_default_str();
  sub->add_flag("-y,--y-channel", args->y_channel, "PSNR/SSIM/MS-SSIM on BT.601 luma Y (BasicSR test_y_channel) instead of RGB");
  sub->add_option("--crop-border", args->crop_border, "Pixels cut from every side before measuring (usually the SR scale)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--weights", args->weights,
                  "Folder with niqe/niqe_pris_params.npz and brisque/*.yml (default $F2S_WEIGHTS), e.g. ../shared/data/weights");
  sub->add_option("--lpips-weights", args->lpips_weights,
                  "Folder with lpips_v0.1/squeeze.pth and squeezenet1_1_torchvision_ncnn_fp16/ (default: --weights)");
  sub->add_option("-o,--out", args->out, "Write OUT/metrics.csv (per image) and OUT/summary.md; the summary is always printed");
  sub->add_option("--device", g.device, "cpu, cuda, cuda:N or auto (LPIPS only)")->capture_default_str();
  sub->add_option("--export-lpips", args->export_lpips,
                  "Developer: write DIR/lpips_squeeze.safetensors (converted SqueezeNet + heads, fp32) and the 7 backbone taps of each --pred image (DIR/taps_<name>.safetensors), then exit");
  sub->footer(
      "Examples:\n"
      "  face2scene metrics --pred out/ --gt ../shared/data/natural/Set5 -m psnr,ssim -y --crop-border 4\n"
      "  face2scene metrics --pred out/ --gt gt/ -m psnr,ssim,ms-ssim,lpips,niqe,brisque \\\n"
      "      --weights ../shared/data/weights -o report/\n"
      "  face2scene metrics --pred photos/ -m niqe,brisque --weights ../shared/data/weights\n"
      "Predictions and ground truth are paired by file name; sizes and colour types must match.\n"
      "Grey pairs are measured on their one channel; LPIPS replicates grey to RGB. See docs/metrics.md.");
  return {sub, [args, &g]() { run_metrics(*args, g); }};
}

}  // namespace
F2S_REGISTER_COMMAND(metrics, setup_metrics);
}  // namespace face2scene::cli
