// `face2scene metrics`: image quality of predictions against ground truth (folder or single pair),
// and identity similarity to reference faces (--refs), per-image CSV plus a Markdown summary with
// mean and 95% confidence interval.
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
#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {

struct MetricsArgs {
  std::vector<std::string> pred;
  std::string gt, refs, out, weights, lpips_weights, identity_weights;
  std::string metrics = "psnr,ssim";
  bool metrics_given = false;  // -m on the command line (else the default depends on --gt/--refs)
  int crop_border = 0;
  int min_face = 24;
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

// ---- identity similarity (--refs) ----------------------------------------------------------

// Does the file stem `name` belong to the prediction `stem`: equal, or `stem` followed by a
// separator. The separator keeps img1's references from taking img10_ref.png.
bool stem_owns(const std::string& name, const std::string& stem) {
  if (name == stem) return true;
  return name.size() > stem.size() && name.compare(0, stem.size(), stem) == 0 &&
         std::string("_-. ").find(name[stem.size()]) != std::string::npos;
}

std::vector<std::string> images_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && is_image_path(e.path().string())) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The reference images of each prediction (docs/metrics.md, "Identity"): DIR/<stem>/*, else
// DIR/<stem>.* and DIR/<stem>{_,-,.}*; when no prediction has either, every image directly in DIR
// is one person, the reference of every prediction. A single image file serves all predictions.
std::vector<std::vector<std::string>> pair_references(const std::vector<std::string>& preds,
                                                      const std::string& refs,
                                                      std::string* layout) {
  std::error_code ec;
  if (!fs::is_directory(refs, ec)) {
    if (!fs::exists(refs, ec)) throw IoError(refs + ": no such file or folder (--refs)");
    if (!is_image_path(refs))
      throw ArgumentError(refs + ": --refs must be a folder or an image file");
    *layout = "one reference image for every prediction";
    return std::vector<std::vector<std::string>>(preds.size(), {refs});
  }
  const std::vector<std::string> files = images_in(refs);
  std::vector<std::string> subdirs;
  for (const auto& e : fs::directory_iterator(refs)) {
    if (e.is_directory()) subdirs.push_back(e.path().filename().string());
  }
  std::sort(subdirs.begin(), subdirs.end());
  std::vector<std::vector<std::string>> out(preds.size());
  std::vector<bool> has_own(preds.size(), false);
  bool any_own = false;
  for (size_t i = 0; i < preds.size(); ++i) {
    const std::string stem = fs::path(preds[i]).stem().string();
    if (std::binary_search(subdirs.begin(), subdirs.end(), stem)) {
      out[i] = images_in(fs::path(refs) / stem);
      if (out[i].empty())
        throw IoError((fs::path(refs) / stem).string() +
                      ": no reference images (png/jpg) in this folder");
    } else {
      for (const auto& f : files) {
        if (stem_owns(fs::path(f).stem().string(), stem)) out[i].push_back(f);
      }
    }
    has_own[i] = !out[i].empty();
    any_own = any_own || has_own[i];
  }
  if (any_own) {
    std::vector<std::string> missing;
    for (size_t i = 0; i < preds.size(); ++i) {
      if (!has_own[i]) missing.push_back(fs::path(preds[i]).filename().string());
    }
    if (!missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
      if (missing.size() > 5) list += ", ...";
      throw IoError(refs + ": no references for " + std::to_string(missing.size()) + " of " +
                    std::to_string(preds.size()) + " predictions (expected " + refs +
                    "/<stem>/*.png or " + refs + "/<stem>_*.png for each): " + list);
    }
    *layout = "per prediction";
    return out;
  }
  if (files.empty()) {
    std::string why;
    if (!subdirs.empty()) {
      why = "; its sub-folders (";
      for (size_t i = 0; i < subdirs.size() && i < 3; ++i) why += (i ? ", " : "") + subdirs[i];
      why += subdirs.size() > 3 ? ", ...)" : ")";
      why += " match no prediction's file name";
    }
    throw IoError(refs +
                  ": no reference images (expected <stem>/*.png, <stem>_*.png per prediction, or "
                  "images of one person directly in the folder" +
                  why + ")");
  }
  *layout = "one person (" + std::to_string(files.size()) + " images) for every prediction";
  return std::vector<std::vector<std::string>>(preds.size(), files);
}

// Face descriptors of predictions, references and ground truth, cached by file (references are
// usually shared between predictions).
class IdentityMeter {
 public:
  IdentityMeter(const std::string& weights, int min_face, torch::Device device) {
    // Both checks come first, so a missing piece costs one clear line, not a run.
    if (!face_detection_available()) {
      throw Error(
          "--refs: identity similarity needs face detection, and this face2scene was built "
          "without dlib (install libdlib-dev and libdlib-data, then re-run cmake)");
    }
    if (!FaceDescriptor::available(weights)) {
      throw IoError(weights + ": face descriptor weights not found (--identity-weights); run "
                              "scripts/install_faceapi.sh");
    }
    DetectOptions o;
    o.min_face = min_face;
    detector_ = std::make_unique<FaceDetector>(o);
    descriptor_ =
        make_descriptor_fn(std::make_shared<FaceDescriptor>(FaceDescriptor::load(weights, device)));
  }

  // `image` may be given when the caller has already read the file.
  const ImageIdentity& describe(const std::string& path, const Image* image = nullptr) {
    auto it = cache_.find(path);
    if (it != cache_.end()) return it->second;
    const ImageIdentity id =
        image ? describe_image_identity(*image, *detector_, descriptor_)
              : describe_image_identity(read_image(path), *detector_, descriptor_);
    if (id.source == "aligned-crop")
      log_info(path + ": no face detected; measured as an FFHQ-aligned face crop");
    return cache_.emplace(path, id).first->second;
  }

  // Mean descriptor of the references that have a face; undefined when none has.
  torch::Tensor mean_reference(const std::vector<std::string>& files) {
    std::vector<torch::Tensor> rows;
    for (const auto& f : files) {
      const bool seen = cache_.count(f) > 0;
      const auto& id = describe(f);
      if (id.descriptor.defined()) {
        rows.push_back(id.descriptor);
      } else if (!seen) {
        log_warn(f + ": no face found in this reference image; it is left out");
      }
    }
    return rows.empty() ? torch::Tensor() : torch::stack(rows).mean(0);
  }

 private:
  std::unique_ptr<FaceDetector> detector_;
  DescriptorFn descriptor_;
  std::map<std::string, ImageIdentity> cache_;
};

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
  const bool identity = !a.refs.empty();
  // Without -m, --refs alone measures identity only (the default psnr,ssim would need --gt).
  const auto names = identity && a.gt.empty() && !a.metrics_given ? std::vector<std::string>{} : split_list(a.metrics);
  if (names.empty() && !identity) throw ArgumentError("--metrics: empty list");
  for (const auto& n : names) {
    if (info_of(n).needs_gt && a.gt.empty()) throw ArgumentError("metric '" + n + "' needs --gt (ground truth)");
  }
  auto wants = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  // Size and colour checks guard the pixel metrics; identity alone compares faces, not pixels.
  const bool pixel_pairs =
      !a.gt.empty() && (!identity || std::any_of(names.begin(), names.end(),
                                                 [](const std::string& n) { return info_of(n).needs_gt; }));
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
  std::unique_ptr<IdentityMeter> id_meter;
  std::vector<std::vector<std::string>> refs;
  std::string refs_layout;
  if (identity) {
    refs = pair_references(preds, a.refs, &refs_layout);
    id_meter = std::make_unique<IdentityMeter>(
        a.identity_weights.empty() ? default_faceapi_weights_path() : a.identity_weights,
        a.min_face, device);
  }
  // Identity columns: cosine to the mean reference descriptor, Euclidean distance to it, and
  // cosine to the ground truth's face. An image without a face leaves its cell empty.
  std::vector<std::string> id_names;
  if (identity) id_names = {"id_sim_refs", "id_dist_refs"};
  if (identity && !gts.empty()) id_names.push_back("id_sim_gt");
  std::vector<std::vector<double>> id_values(id_names.size());
  int no_face_pred = 0, crop_pred = 0, no_face_refs = 0, no_face_gt = 0;
  metrics::PixelOptions opt;
  opt.crop_border = a.crop_border;
  opt.y_channel = a.y_channel;

  std::vector<std::vector<double>> values(names.size());
  std::string csv = "image";
  for (const auto& n : names) csv += "," + n;
  for (const auto& n : id_names) csv += "," + n;
  csv += "\n";
  Progress progress("metrics", static_cast<int64_t>(preds.size()));
  for (size_t i = 0; i < preds.size(); ++i) {
    const Image pred = read_image(preds[i]);
    Image gt;
    if (!gts.empty()) gt = read_image(gts[i]);
    if (pixel_pairs) {
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
    if (identity) {
      const auto& p = id_meter->describe(preds[i], &pred);
      crop_pred += p.source == "aligned-crop";
      std::vector<std::optional<double>> cell(id_names.size());
      if (!p.descriptor.defined()) {
        ++no_face_pred;
        log_warn(preds[i] + ": no face found; its identity cells are left empty");
      } else {
        const torch::Tensor ref = id_meter->mean_reference(refs[i]);
        if (ref.defined()) {
          cell[0] = identity_similarity(p.descriptor, ref);
          cell[1] = (p.descriptor - ref).norm().item<double>();
        } else {
          ++no_face_refs;
          log_warn(preds[i] + ": none of its " + std::to_string(refs[i].size()) +
                   " reference images has a face; id_sim_refs and id_dist_refs are left empty");
        }
        if (!gts.empty()) {
          const auto& t = id_meter->describe(gts[i], &gt);
          if (t.descriptor.defined()) {
            cell[2] = identity_similarity(p.descriptor, t.descriptor);
          } else {
            ++no_face_gt;
            log_warn(gts[i] + ": no face found in the ground truth; id_sim_gt is left empty");
          }
        }
      }
      for (size_t k = 0; k < cell.size(); ++k) {
        if (cell[k]) id_values[k].push_back(*cell[k]);
        csv += "," + (cell[k] ? fmt(*cell[k]) : std::string());
      }
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
  for (size_t k = 0; k < id_names.size(); ++k) {
    const auto s = metrics::summarize(id_values[k]);
    md += "| " + id_names[k] + (k == 1 ? " ↓" : " ↑") + " | " + std::to_string(s.n) + " | " +
          fmt(s.mean, 4) + " | " + (s.n >= 2 ? "± " + fmt(s.ci95, 4) : std::string("–")) + " | " +
          (s.n >= 2 ? fmt(s.sd, 4) : "–") + " |\n";
  }
  if (identity) {
    const std::string of = " of " + std::to_string(preds.size()) + " predictions";
    if (no_face_pred)
      notes += "\nidentity: no face found in " + std::to_string(no_face_pred) + of +
               " (empty cells, left out of the means).";
    if (no_face_refs)
      notes += "\nidentity: no reference face for " + std::to_string(no_face_refs) + of +
               " (empty id_sim_refs/id_dist_refs).";
    if (no_face_gt)
      notes += "\nidentity: no face in the ground truth of " + std::to_string(no_face_gt) + of +
               " (empty id_sim_gt).";
    if (crop_pred)
      notes += "\nidentity: " + std::to_string(crop_pred) + of +
               " had no detected face and were measured as FFHQ-aligned crops.";
  }
  md += notes.empty() ? "" : notes + "\n";
  std::string conv = "\n";
  if (!names.empty()) {
    conv += "PSNR/SSIM: " + std::string(a.y_channel ? "Y channel (BT.601)" : "RGB") +
            ", crop border " + std::to_string(a.crop_border) + "; ";
  }
  conv += "95% CI: Student t on the per-image values.\n";
  if (identity) {
    conv +=
        "Identity: 128-D descriptor (dlib ResNet, face-api weights) of the largest face; id_sim = "
        "cosine\n"
        "(unrelated faces still score ~0.8); id_dist_refs = Euclidean distance to the mean "
        "reference\n"
        "descriptor (same person below ~0.6, dlib's threshold). References: " +
        refs_layout + ".\n";
  }
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
  auto* sub = app.add_subcommand("metrics",
                                 "Image quality (PSNR, SSIM, MS-SSIM, LPIPS, NIQE, BRISQUE) and identity similarity over a folder of predictions");
  sub->add_option("--pred", args->pred, "Predicted images: files and/or folders (required)");
  sub->add_option("--gt", args->gt,
                  "Ground truth: a folder with the same file names (extension may differ), or one file for one prediction");
  sub->add_option("--refs", args->refs,
                  "Reference faces for identity similarity (id_sim_refs, id_dist_refs; id_sim_gt with --gt): "
                  "DIR/<stem>/*.png or DIR/<stem>_*.png per prediction, else all images in DIR are one person");
  auto* m_opt = sub->add_option("-m,--metrics", args->metrics,
                                "Comma-separated: psnr, ssim, ms-ssim, lpips (need --gt), niqe, brisque (no reference); "
                                "with --refs and no --gt the default is none (identity only)")
                    ->capture_default_str();
  sub->add_flag("-y,--y-channel", args->y_channel, "PSNR/SSIM/MS-SSIM on BT.601 luma Y (BasicSR test_y_channel) instead of RGB");
  sub->add_option("--crop-border", args->crop_border, "Pixels cut from every side before measuring (usually the SR scale)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--weights", args->weights,
                  "Folder with niqe/niqe_pris_params.npz and brisque/*.yml (default $F2S_WEIGHTS), e.g. ../shared/data/weights");
  sub->add_option("--lpips-weights", args->lpips_weights,
                  "Folder with lpips_v0.1/squeeze.pth and squeezenet1_1_torchvision_ncnn_fp16/ (default: --weights)");
  sub->add_option("--identity-weights", args->identity_weights,
                  "Converted face-api recognition weights for --refs (default: " + default_faceapi_weights_path() + ")");
  sub->add_option("--min-face", args->min_face,
                  "--refs: smallest face side in pixels the detector looks for (larger is faster: 24 upsamples 3.3x)")
      ->check(CLI::Range(8, 100000))
      ->capture_default_str();
  sub->add_option("-o,--out", args->out, "Write OUT/metrics.csv (per image) and OUT/summary.md; the summary is always printed");
  sub->add_option("--device", g.device, "cpu, cuda, cuda:N or auto (LPIPS and the identity descriptor)")->capture_default_str();
  sub->add_option("--export-lpips", args->export_lpips,
                  "Developer: write DIR/lpips_squeeze.safetensors (converted SqueezeNet + heads, fp32) and the 7 backbone taps of each --pred image (DIR/taps_<name>.safetensors), then exit");
  sub->footer(
      "Examples:\n"
      "  face2scene metrics --pred out/ --gt ../shared/data/natural/Set5 -m psnr,ssim -y --crop-border 4\n"
      "  face2scene metrics --pred out/ --gt gt/ -m psnr,ssim,ms-ssim,lpips,niqe,brisque \\\n"
      "      --weights ../shared/data/weights -o report/\n"
      "  face2scene metrics --pred photos/ -m niqe,brisque --weights ../shared/data/weights\n"
      "  face2scene metrics --pred out/ --gt gt/ --refs refs/ -o report/   # + id_sim_refs, id_dist_refs, id_sim_gt\n"
      "Predictions and ground truth are paired by file name; sizes and colour types must match.\n"
      "Grey pairs are measured on their one channel; LPIPS replicates grey to RGB.\n"
      "--refs layouts, for a prediction x.png: refs/x/*.png (one folder per prediction), or refs/x.png,\n"
      "refs/x_1.jpg, refs/x-b.png ... (files named after it); when no prediction has either, every image\n"
      "directly in refs/ is the same person, used for all. Identity takes the largest detected face (a\n"
      "square image with none is read as an FFHQ-aligned crop); no face: empty cell and a warning.\n"
      "See docs/metrics.md.");
  return {sub, [args, &g, m_opt]() {
            args->metrics_given = m_opt->count() > 0;
            run_metrics(*args, g);
          }};
}

}  // namespace
F2S_REGISTER_COMMAND(metrics, setup_metrics);
}  // namespace face2scene::cli
