// Helpers of bench_ref_fr (issue #18): the benchmark's cases (which photo is the ground truth, which
// are the references, whose references are the "wrong person" control), the per-face result rows
// (CSV), the markdown report and the picture grid. Header-only, so tests/test_bench_ref_fr.cpp
// tests the writers without running the benchmark.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/image.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train_ref_fr.hpp"

#include "bench_text_util.hpp"

namespace f2s_rfb {
using namespace face2scene;
namespace fs = std::filesystem;

inline constexpr int64_t kSize = 128;  // Ref-FR's face side: every image is compared at 128²

// ---- cases ----------------------------------------------------------------------------------
// One benchmark face. Paths are relative to the data root (the shared data, or a --pack folder).
struct Case {
  std::string set;                 // london, celeba, celebref_pairs, synlq
  std::string name;                // london_003, celeba_07206, instantrestore_00001, 00005_17
  std::string gt;                  // ground truth ("" = none: synlq)
  std::string lq;                  // a given degraded image ("" = synthesised from gt)
  std::vector<std::string> refs;   // other photos of the same person (at most 3 are used)
  std::vector<std::string> wrong;  // another person's photos (a fixed derangement of the set)
};

inline const std::vector<std::string>& all_sets() {
  static const std::vector<std::string> s{"london", "celeba", "celebref_pairs", "synlq"};
  return s;
}
inline bool synthetic_set(const std::string& set) { return set == "london" || set == "celeba"; }

inline std::vector<std::string> images_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_path(e.path().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string rel(const fs::path& p, const fs::path& root) { return fs::relative(p, root).generic_string(); }

// The cyclic shift i -> i+1 is a derangement (no one gets their own references) and stays fixed
// whatever --limit later keeps.
inline void assign_wrong_refs(std::vector<Case>& cases) {
  for (size_t i = 0; i < cases.size(); ++i) cases[i].wrong = cases.size() > 1 ? cases[(i + 1) % cases.size()].refs : std::vector<std::string>{};
}

// The cases of one set from the shared data's layout. London and CelebA come from the test
// identities of the split file only (a train identity is never read).
inline std::vector<Case> cases_from_data(const std::string& root, const std::vector<FaceSplitEntry>& split,
                                         const std::string& set) {
  std::vector<Case> out;
  const fs::path r(root);
  if (synthetic_set(set)) {
    for (const auto& e : split) {
      if (e.split != "test" || e.identity.rfind(set + "_", 0) != 0) continue;
      auto files = identity_face_files(root, e);
      Case c{set, e.identity, "", "", {}, {}};
      if (set == "london") {
        // Neutral photo = ground truth, smiling photo = the reference (the expression differs, so a
        // copied reference shows).
        for (const auto& f : files) {
          const auto stem = fs::path(f).stem().string();
          if (stem.size() > 8 && stem.substr(stem.size() - 8) == "_neutral") c.gt = rel(f, r);
          if (stem.size() > 8 && stem.substr(stem.size() - 8) == "_smiling") c.refs.push_back(rel(f, r));
        }
        if (c.gt.empty() || c.refs.empty()) throw FormatError(root + "/" + e.source + ": " + e.identity + " lacks a neutral or a smiling photo");
      } else {
        if (files.size() < 2) {  // nothing to use as a reference: said, and left out
          log_warn(root + "/" + e.source + ": " + e.identity + " has fewer than 2 faces; not benchmarked");
          continue;
        }
        c.gt = rel(files[0], r);  // the first photo by name is the ground truth, the next three the references
        for (size_t k = 1; k < files.size() && k <= 3; ++k) c.refs.push_back(rel(files[k], r));
      }
      out.push_back(c);
    }
  } else if (set == "celebref_pairs") {
    const fs::path dir = r / "faces/celebref_pairs";
    if (!fs::is_directory(dir)) throw IoError(dir.string() + ": folder not found");
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      Case c{set, n, rel(dir / n / "gt.png", r), rel(dir / n / "lq.png", r), {}, {}};
      auto refs = images_in(dir / n / "refs");
      // celebref_00082_17 keeps its references in celebref/RefsImg/00082 (README.md of the folder).
      if (refs.empty() && n.rfind("celebref_", 0) == 0) refs = images_in(r / "faces/celebref/RefsImg" / n.substr(9, 5));
      if (refs.empty()) throw FormatError((dir / n).string() + ": no references");
      for (size_t k = 0; k < refs.size() && k < 3; ++k) c.refs.push_back(rel(refs[k], r));
      out.push_back(c);
    }
  } else if (set == "synlq") {
    for (const auto& f : images_in(r / "faces/celebref/SynLQ")) {
      const auto stem = fs::path(f).stem().string();
      Case c{set, stem, "", rel(f, r), {}, {}};
      for (const auto& ref : images_in(r / "faces/celebref/RefsImg" / stem.substr(0, stem.find('_'))))
        if (c.refs.size() < 3) c.refs.push_back(rel(ref, r));
      if (c.refs.empty()) throw FormatError(f + ": no references in celebref/RefsImg");
      out.push_back(c);
    }
  } else {
    throw ArgumentError("unknown set '" + set + "' (london, celeba, celebref_pairs, synlq)");
  }
  if (out.empty()) throw IoError(root + ": no cases for the set " + set);
  assign_wrong_refs(out);
  return out;
}

// manifest.tsv of a --pack folder: set, name, gt, lq, refs (comma-separated), wrong refs.
inline std::string join(const std::vector<std::string>& v, char sep = ',') {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, sep) : "") + v[i];
  return s;
}
using f2s_bench_text::split_str;
inline std::string manifest_text(const std::vector<Case>& cases) {
  std::ostringstream s;
  s << "# bench_ref_fr pack: set, case, ground truth, given degraded image, references, another person's references\n";
  for (const auto& c : cases) s << c.set << "\t" << c.name << "\t" << c.gt << "\t" << c.lq << "\t" << join(c.refs) << "\t" << join(c.wrong) << "\n";
  return s.str();
}
inline std::vector<Case> read_manifest(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<Case> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    auto f = split_str(line, '\t');
    if (f.size() != 6) throw FormatError(path + ":" + std::to_string(n) + ": expected 6 tab-separated fields");
    Case c{f[0], f[1], f[2], f[3], {}, {}};
    for (const auto& x : split_str(f[4], ',')) if (!x.empty()) c.refs.push_back(x);
    for (const auto& x : split_str(f[5], ',')) if (!x.empty()) c.wrong.push_back(x);
    out.push_back(c);
  }
  return out;
}

// An aligned face as Ref-FR sees it: area-resized to 128² and rounded to 8 bits, exactly as the
// trainer's load_face_set prepares its targets (and as a --pack folder stores it, so a run on the
// packed copy reads the very same values). [1,3,128,128] float on the CPU.
inline torch::Tensor load128(const std::string& path) {
  auto x = image_to_tensor(read_image(path), torch::kCPU, torch::kFloat32, true).unsqueeze(0);
  if (x.size(2) != x.size(3)) throw FormatError(path + ": not a square aligned face (" + std::to_string(x.size(3)) + "x" + std::to_string(x.size(2)) + ")");
  if (x.size(2) != kSize) x = resize_images(x, kSize, kSize, ResizeMode::kArea);
  return x.clamp(0, 1).mul(255).round().div(255);
}

// ---- rows -----------------------------------------------------------------------------------
struct Row {
  std::string set, name, preset;  // preset "given" for a given degraded image
  int scale = 0;                  // 4 or 8; 0 for a given degraded image
  std::string method;
  int refs = 0;  // references the method read
  double psnr = NAN, ssim = NAN, lpips = NAN;
  double id_gt = NAN;     // dlib descriptor distance to the ground truth
  double match = NAN;     // 1 when id_gt < 0.6 (the descriptor's threshold)
  double id_ref = NAN;    // distance to the nearest of the person's own references
  double psnr_ref = NAN;  // PSNR to the nearest of the person's own references
  double niqe = NAN;
  std::string condition() const { return preset + (scale ? " ×" + std::to_string(scale) : ""); }
};

struct MethodInfo {
  std::string key, label;
};
inline const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> m{{"bicubic", "bicubic (Ref-FR's input)"},
                                         {"realesrgan", "Real-ESRGAN x4plus"},
                                         {"blind", "blind twin"},
                                         {"ref0", "Ref-FR, no refs"},
                                         {"ref1", "Ref-FR, 1 ref"},
                                         {"ref3", "Ref-FR, ≤3 refs"},
                                         {"wrong", "Ref-FR, another person's refs"}};
  return m;
}

inline std::string fmt_num(double v) {
  if (!std::isfinite(v)) return "nan";
  char b[40];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
inline double parse_num(const std::string& s) { return s == "nan" || s.empty() ? NAN : std::stod(s); }

inline const char* kCsvHeader = "set,case,preset,scale,method,refs,psnr,ssim,lpips,id_gt,match,id_ref,psnr_ref,niqe";
inline std::string csv_line(const Row& r) {
  std::ostringstream s;
  s << r.set << "," << r.name << "," << r.preset << "," << r.scale << "," << r.method << "," << r.refs << "," << fmt_num(r.psnr) << ","
    << fmt_num(r.ssim) << "," << fmt_num(r.lpips) << "," << fmt_num(r.id_gt) << "," << fmt_num(r.match) << "," << fmt_num(r.id_ref)
    << "," << fmt_num(r.psnr_ref) << "," << fmt_num(r.niqe);
  return s.str();
}
inline std::string csv_text(const std::vector<Row>& rows) {
  std::string s = std::string(kCsvHeader) + "\n";
  for (const auto& r : rows) s += csv_line(r) + "\n";
  return s;
}
// Reads what csv_text wrote (also a partial file of an interrupted run: a torn last line is dropped).
inline std::vector<Row> parse_csv(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  std::vector<Row> out;
  if (!std::getline(in, line) || line != kCsvHeader) throw FormatError(name + ": not a bench_ref_fr CSV (header differs)");
  while (std::getline(in, line)) {
    auto f = split_str(line, ',');
    if (f.size() != 14) continue;
    Row r;
    r.set = f[0], r.name = f[1], r.preset = f[2], r.scale = std::stoi(f[3]), r.method = f[4], r.refs = std::stoi(f[5]);
    r.psnr = parse_num(f[6]), r.ssim = parse_num(f[7]), r.lpips = parse_num(f[8]), r.id_gt = parse_num(f[9]);
    r.match = parse_num(f[10]), r.id_ref = parse_num(f[11]), r.psnr_ref = parse_num(f[12]), r.niqe = parse_num(f[13]);
    out.push_back(r);
  }
  return out;
}

// ---- report ---------------------------------------------------------------------------------
struct Metric {
  std::string title;
  double Row::*field;
  double scale;  // match is shown in percent
  int digits;
  bool lower_better;
};
inline const std::vector<Metric>& report_metrics() {
  static const std::vector<Metric> m{{"PSNR dB", &Row::psnr, 1, 2, false},
                                     {"SSIM", &Row::ssim, 1, 3, false},
                                     {"LPIPS", &Row::lpips, 1, 3, true},
                                     {"ID dist → GT", &Row::id_gt, 1, 3, true},
                                     {"match %", &Row::match, 100, 0, false},
                                     {"ID dist → refs", &Row::id_ref, 1, 3, true},
                                     {"PSNR → nearest ref", &Row::psnr_ref, 1, 2, false},
                                     {"NIQE", &Row::niqe, 1, 2, true}};
  return m;
}

inline std::string fmt_ci(const metrics::BootstrapCI& c, double scale, int digits, bool sign = false) {
  if (c.n == 0 || !std::isfinite(c.mean)) return "—";
  char b[96];
  const char* f = sign ? "%+.*f [%+.*f, %+.*f]" : "%.*f [%.*f, %.*f]";
  std::snprintf(b, sizeof b, f, digits, c.mean * scale, digits, c.lo * scale, digits, c.hi * scale);
  return b;
}

// Rows of one (set scope, condition, method) in a fixed case order, so paired differences pair
// the same faces. `sets` empty = every set.
using Key = std::tuple<std::string, std::string, int, std::string>;  // set, preset, scale, method
inline std::map<Key, std::map<std::string, const Row*>> index_rows(const std::vector<Row>& rows) {
  std::map<Key, std::map<std::string, const Row*>> idx;
  for (const auto& r : rows) idx[{r.set, r.preset, r.scale, r.method}][r.set + "/" + r.name] = &r;
  return idx;
}
inline std::vector<double> values_of(const std::map<Key, std::map<std::string, const Row*>>& idx,
                                     const std::vector<std::string>& sets, const std::string& preset, int scale,
                                     const std::string& method, double Row::*field, const std::vector<std::string>& order) {
  std::map<std::string, const Row*> all;
  for (const auto& s : sets) {
    auto it = idx.find({s, preset, scale, method});
    if (it != idx.end()) all.insert(it->second.begin(), it->second.end());
  }
  std::vector<double> v;
  for (const auto& k : order) {
    auto it = all.find(k);
    v.push_back(it == all.end() ? NAN : it->second->*field);
  }
  return v;
}

struct Comparison {
  std::string a, b, label;
};
inline const std::vector<Comparison>& comparisons() {
  static const std::vector<Comparison> c{{"ref3", "blind", "≤3 refs − blind twin"},
                                         {"ref3", "ref0", "≤3 refs − no refs"},
                                         {"ref3", "realesrgan", "≤3 refs − Real-ESRGAN"},
                                         {"wrong", "ref3", "another person's refs − right refs"}};
  return c;
}

struct ReportInfo {
  std::string command, machine, weights, date, grid_rel, grid_credit;
  std::string identity_loss = "none";  // the weights' `identity_loss` metadata (train ref-fr)
  double seconds = 0;
  int64_t faces = 0;  // face × condition units computed in this run
  int resamples = 2000;
};

// The "Done when" checks of issue #18 on severe ×8 of the held-out London + CelebA faces, each
// computed from the rows (nothing is asserted that was not measured).
inline std::string headline(const std::vector<Row>& rows, int resamples) {
  const auto idx = index_rows(rows);
  const std::vector<std::string> sets{"london", "celeba"};
  std::vector<std::string> order;
  for (const auto& r : rows)
    if (synthetic_set(r.set) && r.preset == "severe" && r.scale == 8 && r.method == "ref3") order.push_back(r.set + "/" + r.name);
  std::ostringstream md;
  md << "## Issue #18 criteria: severe ×8, held-out London + CelebA (" << order.size() << " faces)\n\n";
  if (order.empty()) return md.str() + "No severe ×8 rows in this run.\n\n";
  auto v = [&](const std::string& m, double Row::*f) { return values_of(idx, sets, "severe", 8, m, f, order); };
  auto pd = [&](const std::string& a, const std::string& b, double Row::*f) {
    return metrics::paired_bootstrap_ci(v(a, f), v(b, f), resamples);
  };
  const auto d_id = pd("ref3", "blind", &Row::id_gt), d_match = pd("ref3", "blind", &Row::match);
  const auto d_lp = pd("ref3", "realesrgan", &Row::lpips), d_wrong = pd("wrong", "ref3", &Row::id_gt);
  const auto p_gt = metrics::bootstrap_mean_ci(v("ref3", &Row::psnr), resamples);
  const auto p_ref = metrics::bootstrap_mean_ci(v("ref3", &Row::psnr_ref), resamples);
  auto yes = [](bool b) { return b ? "**met**" : "**not met**"; };
  md << "| criterion | measured (mean [95 % bootstrap CI]) | |\n|---|---|---|\n";
  md << "| ID distance, ≤3 refs − blind twin: ≤ −0.03 with the CI below 0 | " << fmt_ci(d_id, 1, 3, true) << " | "
     << yes(d_id.mean <= -0.03 && d_id.hi < 0) << " |\n";
  md << "| match rate, ≤3 refs − blind twin: ≥ +10 points | " << fmt_ci(d_match, 100, 1, true) << " points | " << yes(d_match.mean >= 0.10) << " |\n";
  md << "| LPIPS, ≤3 refs − Real-ESRGAN x4plus: ≤ −0.05 | " << fmt_ci(d_lp, 1, 3, true) << " | " << yes(d_lp.mean <= -0.05) << " |\n";
  md << "| ID distance, another person's refs − right refs: > 0 (CI above 0) | " << fmt_ci(d_wrong, 1, 3, true) << " | "
     << yes(d_wrong.lo > 0) << " |\n";
  md << "| not a pasted reference: PSNR to the nearest ref well below PSNR to GT | to GT " << fmt_ci(p_gt, 1, 2) << " dB, to the nearest ref "
     << fmt_ci(p_ref, 1, 2) << " dB | " << yes(p_ref.hi < p_gt.lo) << " |\n\n";
  return md.str();
}

inline std::string report_markdown(const std::vector<Row>& rows, const ReportInfo& info) {
  std::ostringstream md;
  md << "# Ref-FR benchmark (bench_ref_fr, issue #18)\n\n";
  md << "Command: `" << info.command << "`  \nMachine: " << info.machine << "  \nWeights: " << info.weights << "  \nDate: " << info.date;
  if (info.faces > 0) {
    char b[160];
    std::snprintf(b, sizeof b, "  \nRuntime: %.0f s for %lld face × condition units (%.2f s each, all methods and metrics)", info.seconds,
                  static_cast<long long>(info.faces), info.seconds / double(info.faces));
    md << b;
  }
  md << "\n\nHeld-out identities only (bench/ref_fr_split.tsv). Every number is a mean over faces with its 95 % percentile-bootstrap "
        "interval ("
     << info.resamples
     << " resamples); differences are paired (the same faces under the same degradation), "
        "with bootstrap intervals of the mean difference.\n\n";
  md << "**Which metrics were training losses.** Ref-FR and its blind twin were trained with L1 (so PSNR is close to a training "
        "objective) and LPIPS (the same SqueezeNet LPIPS that is measured here), plus a GAN loss. SSIM was not a loss. ";
  if (info.identity_loss == "none")
    md << "Identity was not: the trainer's identity loss was off for these weights, and the judge here, the dlib ResNet "
          "descriptor, was never trained on. ";
  else
    md << "Identity was, through another network: the trainer's identity loss compared " << info.identity_loss
       << " descriptors (HSE's MobileNet, VGGFace2) of the output and the ground truth; the judge here, the dlib ResNet "
          "descriptor, was never trained on, but both measure identity, so identity gains are partly trained for. ";
  md << "Real-ESRGAN x4plus was trained by its authors on other data with L1, perceptual (VGG) and GAN losses.\n\n";
  md << headline(rows, info.resamples);
  // Conditions and sets in a fixed order.
  std::vector<std::pair<std::string, int>> conds;
  for (const std::string p : {"mild", "moderate", "severe"})
    for (int s : {4, 8}) conds.push_back({p, s});
  conds.push_back({"given", 0});
  const auto idx = index_rows(rows);
  std::set<std::string> present_sets;
  for (const auto& r : rows) present_sets.insert(r.set);
  std::vector<std::pair<std::string, std::vector<std::string>>> scopes;
  for (const auto& s : all_sets())
    if (present_sets.count(s)) scopes.push_back({s, {s}});
  if (present_sets.count("london") && present_sets.count("celeba")) scopes.push_back({"london+celeba", {"london", "celeba"}});
  md << "## Results per set and condition\n\n";
  md << "ID dist: dlib descriptor distance (lower = more alike; < 0.6 counts as a match); → GT to the ground truth, → refs to the nearest "
        "of the person's own references. PSNR → nearest ref: the output's PSNR to the most similar of the person's references (a "
        "pasted reference would score high here). NIQE (no-ground-truth set only) on the output bicubic-upscaled to 256².\n\n";
  for (const auto& [scope, sets] : scopes) {
    for (const auto& [preset, scale] : conds) {
      std::vector<std::string> order;
      for (const auto& r : rows)
        if (std::find(sets.begin(), sets.end(), r.set) != sets.end() && r.preset == preset && r.scale == scale && r.method == "ref3")
          order.push_back(r.set + "/" + r.name);
      if (order.empty()) continue;
      // Columns with any finite value in this table.
      std::vector<const Metric*> cols;
      for (const auto& m : report_metrics()) {
        bool any = false;
        for (const auto& me : methods())
          for (double x : values_of(idx, sets, preset, scale, me.key, m.field, order)) any = any || std::isfinite(x);
        if (any) cols.push_back(&m);
      }
      md << "### " << scope << ", " << (scale ? preset + " ×" + std::to_string(scale) : "given degraded images") << " (" << order.size()
         << " faces)\n\n| method | refs used |";
      for (auto* c : cols) md << " " << c->title << " |";
      md << "\n|---|---|";
      for (size_t i = 0; i < cols.size(); ++i) md << "---|";
      md << "\n";
      for (const auto& me : methods()) {
        std::vector<double> nrefs;
        for (const auto& k : order) {
          std::map<std::string, const Row*> all;
          for (const auto& s : sets) {
            auto it = idx.find({s, preset, scale, me.key});
            if (it != idx.end()) all.insert(it->second.begin(), it->second.end());
          }
          auto it = all.find(k);
          if (it != all.end()) nrefs.push_back(it->second->refs);
        }
        if (nrefs.empty()) continue;
        const double lo = *std::min_element(nrefs.begin(), nrefs.end()), hi = *std::max_element(nrefs.begin(), nrefs.end());
        char rb[32];
        if (lo == hi) std::snprintf(rb, sizeof rb, "%.0f", lo);
        else std::snprintf(rb, sizeof rb, "%.0f–%.0f", lo, hi);
        md << "| " << me.label << " | " << rb << " |";
        for (auto* c : cols)
          md << " " << fmt_ci(metrics::bootstrap_mean_ci(values_of(idx, sets, preset, scale, me.key, c->field, order), info.resamples), c->scale, c->digits)
             << " |";
        md << "\n";
      }
      md << "\nPaired differences (first − second):\n\n| comparison |";
      std::vector<const Metric*> dcols;
      for (auto* c : cols)
        if (c->field != &Row::psnr_ref) dcols.push_back(c);
      for (auto* c : dcols) md << " Δ " << c->title << " |";
      md << "\n|---|";
      for (size_t i = 0; i < dcols.size(); ++i) md << "---|";
      md << "\n";
      for (const auto& cmp : comparisons()) {
        md << "| " << cmp.label << " |";
        for (auto* c : dcols)
          md << " "
             << fmt_ci(metrics::paired_bootstrap_ci(values_of(idx, sets, preset, scale, cmp.a, c->field, order),
                                                    values_of(idx, sets, preset, scale, cmp.b, c->field, order), info.resamples),
                       c->scale, c->digits, true)
             << " |";
        md << "\n";
      }
      md << "\n";
    }
  }
  if (!info.grid_rel.empty()) {
    md << "## Held-out London faces\n\n![Ref-FR grid](" << info.grid_rel << ")\n\n";
    md << "Columns: degraded (the small degraded face, nearest-upscaled) | bicubic | Real-ESRGAN x4plus | blind twin | Ref-FR with the "
          "reference | ground truth (neutral photo) | the reference (smiling photo). Rows: each face at severe ×8, then at moderate ×4. "
          "Test identities, never trained on.\n\n";
    md << info.grid_credit << "\n\n";
  }
  md << "## How the inputs are made\n\n"
        "- London (held-out people of bench/ref_fr_split.tsv): the neutral photo is the ground truth, the smiling photo the one "
        "reference. CelebA (CelebA's test identities; the 2 of 29 with a single face have no reference and are left out): the first "
        "face by name is the ground truth, the next three the references. celebref_pairs: the given lq.png, gt.png and references "
        "(celebref_00082_17's are celebref/RefsImg/00082). SynLQ: the given degraded image and the identity's three RefsImg photos.\n"
        "- The ground truth is the aligned face area-resized to 128² and rounded to 8 bits (as the trainer loads its targets). It is "
        "degraded by the degradation engine (preset mild, moderate or severe; seed fixed per face, preset and scale) with the face "
        "downscaled ×4 or ×8 (32² or 16²), then bicubic-resized back to 128²: Ref-FR's input, exactly as train_ref_fr.cpp builds it. "
        "JPEG steps run with libjpeg on every device, so CPU and GPU runs see the same inputs.\n"
        "- Real-ESRGAN x4plus upscales the small degraded face ×4 (to 128², or to 64² at ×8, then bicubic to 128²). For the given "
        "degraded images (celebref_pairs, SynLQ: 512² files) every method reads the image area-resized to 128²; Real-ESRGAN reads it "
        "at 64² and its 256² output is area-resized to 128².\n"
        "- Another person's references: case i of a set gets the references of case i+1 (a fixed cyclic derangement), as many as the "
        "right ones where available.\n"
        "- Identity: the 128² output is put in the FFHQ frame at 512² and cropped to the descriptor's 150² chip exactly as the "
        "identity module does for an aligned face crop (`face2scene metrics --refs`). A run from a --pack folder (the GPU machine) "
        "uses the descriptor's weights stored as fp16.\n";
  return md.str();
}

// ---- grid -----------------------------------------------------------------------------------
// rows of equally sized [1,3,S,S] tiles -> one image, with a 2-pixel white gutter.
inline Image grid_image(const std::vector<std::vector<torch::Tensor>>& rows) {
  if (rows.empty()) throw ArgumentError("grid: no rows");
  const int64_t s = rows[0][0].size(2), g = 2;
  const int64_t ncol = int64_t(rows[0].size());
  auto canvas = torch::ones({3, int64_t(rows.size()) * (s + g) - g, ncol * (s + g) - g});
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < rows[r].size(); ++c)
      canvas.slice(1, int64_t(r) * (s + g), int64_t(r) * (s + g) + s).slice(2, int64_t(c) * (s + g), int64_t(c) * (s + g) + s).copy_(rows[r][c][0].clamp(0, 1));
  return tensor_to_image(canvas);
}

}  // namespace f2s_rfb
