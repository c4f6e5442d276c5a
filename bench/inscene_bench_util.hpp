// Helpers of bench_inscene (issue #20): the held-out cases of each set and their checksum guard
// (bench/inscene_split.tsv), the pack manifest, the per-image rows (CSV) and the markdown tables in
// the paper's layout. Header-only, so tests/test_bench_inscene.cpp tests the writers without
// running the benchmark.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "face2scene/core.hpp"
#include "face2scene/image.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/tensor.hpp"

#include "bench_text_util.hpp"

namespace f2s_isb {
using namespace face2scene;
namespace fs = std::filesystem;

// ---- sets and cases -------------------------------------------------------------------------
// celeba: the CelebA test identities' whole photos (faces/celeba_id/test/<id>/scenes), references
//         = the same person's aligned faces (faces/celeba_id/test/<id>/faces, at most 5).
// lfw: LFW held-out persons (every 10th person folder by name, as scripts/pack_training_data.sh
//      holds them out): the first photo is the ground truth, the second the reference.
// people_hq: the held-out third of scenes/people_hq (every 3rd by name): no references.
// real: scenes/real_degraded, no ground truth.
inline const std::vector<std::string>& all_sets() {
  static const std::vector<std::string> s{"celeba", "lfw", "people_hq", "real"};
  return s;
}

struct Case {
  std::string set, name;
  std::string gt, lq;             // paths relative to the data root; "" = none
  std::vector<std::string> refs;  // the same person's other photos
};

inline std::vector<std::string> images_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_path(e.path().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}
inline std::vector<std::string> dirs_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) throw IoError(dir.string() + ": folder not found");
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
inline std::string rel(const fs::path& p, const fs::path& root) { return fs::relative(p, root).generic_string(); }

// The cases of one set from the shared data's layout (before any guard).
inline std::vector<Case> cases_from_data(const std::string& root, const std::string& set) {
  const fs::path r(root);
  std::vector<Case> out;
  if (set == "celeba") {
    for (const auto& id : dirs_in(r / "faces/celeba_id/test")) {
      auto refs = images_in(r / "faces/celeba_id/test" / id / "faces");
      if (refs.size() > 5) refs.resize(5);
      for (const auto& s : images_in(r / "faces/celeba_id/test" / id / "scenes")) {
        Case c{set, id + "_" + fs::path(s).stem().string(), rel(s, r), "", {}};
        for (const auto& f : refs) c.refs.push_back(rel(f, r));
        out.push_back(c);
      }
    }
  } else if (set == "lfw") {
    const auto people = dirs_in(r / "faces/lfw");
    for (size_t i = 0; i < people.size(); i += 10) {
      const auto photos = images_in(r / "faces/lfw" / people[i]);
      if (photos.size() < 2) continue;
      out.push_back({set, people[i], rel(photos[0], r), "", {rel(photos[1], r)}});
    }
  } else if (set == "people_hq") {
    const auto photos = images_in(r / "scenes/people_hq");
    for (size_t i = 0; i < photos.size(); i += 3) out.push_back({set, fs::path(photos[i]).stem().string(), rel(photos[i], r), "", {}});
  } else if (set == "real") {
    for (const auto& f : images_in(r / "scenes/real_degraded")) out.push_back({set, fs::path(f).stem().string(), "", rel(f, r), {}});
  } else {
    throw ArgumentError("unknown set '" + set + "' (celeba, lfw, people_hq, real)");
  }
  if (out.empty()) throw IoError(root + ": no cases for the set " + set);
  return out;
}

// ---- the split file: set, case, role, path, sha256 ------------------------------------------
struct SplitEntry {
  std::string set, name, role, path, sha;
};
inline std::string split_text(const std::vector<Case>& cases, const std::string& root) {
  std::ostringstream s;
  s << "# bench_inscene held-out split (issue #20): set, case, role (gt / lq / ref), path under ../shared/data, sha256.\n"
       "# Made by `bench_inscene --write-split`; every input the benchmark reads must match a line here.\n";
  for (const auto& c : cases) {
    auto line = [&](const std::string& role, const std::string& p) {
      s << c.set << "\t" << c.name << "\t" << role << "\t" << p << "\t" << sha256_hex(read_file(root + "/" + p)) << "\n";
    };
    if (!c.gt.empty()) line("gt", c.gt);
    if (!c.lq.empty()) line("lq", c.lq);
    for (const auto& f : c.refs) line("ref", f);
  }
  return s.str();
}
inline std::vector<SplitEntry> read_split(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<SplitEntry> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const auto f = f2s_bench_text::split_str(line, '\t');
    if (f.size() != 5 || f[4].size() != 64) throw FormatError(path + ":" + std::to_string(n) + ": expected set, case, role, path, sha256");
    out.push_back({f[0], f[1], f[2], f[3], f[4]});
  }
  return out;
}
// The cases of the split (in its order), restricted to `sets`.
inline std::vector<Case> cases_from_split(const std::vector<SplitEntry>& split, const std::vector<std::string>& sets) {
  std::vector<Case> out;
  std::map<std::string, size_t> at;
  for (const auto& e : split) {
    if (std::find(sets.begin(), sets.end(), e.set) == sets.end()) continue;
    const std::string k = e.set + "/" + e.name;
    if (!at.count(k)) at[k] = out.size(), out.push_back({e.set, e.name, "", "", {}});
    auto& c = out[at[k]];
    if (e.role == "gt") c.gt = e.path;
    else if (e.role == "lq") c.lq = e.path;
    else c.refs.push_back(e.path);
  }
  return out;
}

// ---- rows -----------------------------------------------------------------------------------
struct Row {
  std::string set, name, cond, method;  // cond: mild4 ... severe1, or "given" (real)
  double psnr = NAN, ssim = NAN, ms_ssim = NAN, lpips = NAN;
  double lp_face = NAN, lp_person = NAN, lp_bg = NAN;  // region LPIPS
  double id_gt = NAN;     // identity distance of the output's face to the ground truth's face
  double id_input = NAN;  // real set: to the input's face (bicubic) at the same place
  double niqe = NAN, brisque = NAN;
  double seconds = NAN;   // the method's own run time for this image
  std::string device;     // where it ran ("cpu" / "cuda"); empty in CSVs from before the column
};

struct MethodInfo {
  std::string key, label;
};
inline const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> m{{"bicubic", "bicubic"},
                                         {"esrgan-x4plus", "Real-ESRGAN x4plus (ours, port)"},
                                         {"esrgan-x4v3", "Real-ESRGAN general-x4v3 (ours, port)"},
                                         {"upscayl-x4plus", "upscayl-bin x4plus (peer)"},
                                         {"upscayl-x4fast", "upscayl-bin x4fast (peer)"},
                                         {"faces-only", "faces only: x4plus + Ref-FR faces"},
                                         {"ours-blind", "ours, blind"},
                                         {"ours-norefs", "ours, Ref-FR faces, no refs"},
                                         {"ours-refs", "ours, with refs"}};
  return m;
}
inline std::string method_label(const std::string& k) {
  for (const auto& m : methods())
    if (m.key == k) return m.label;
  return k;
}

inline std::string fmt_num(double v) {
  if (!std::isfinite(v)) return "nan";
  char b[40];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
inline double parse_num(const std::string& s) { return s == "nan" || s.empty() ? NAN : std::stod(s); }

// The device column came later: rows of one run may come from two machines (e.g. methods whose
// weights did not fit the GPU machine's carry limit run on the CPU), and s/image says which.
inline const char* kCsvHeaderV1 =
    "set,case,cond,method,psnr,ssim,ms_ssim,lpips,lpips_face,lpips_person,lpips_bg,id_gt,id_input,niqe,brisque,seconds";
inline const char* kCsvHeader =
    "set,case,cond,method,psnr,ssim,ms_ssim,lpips,lpips_face,lpips_person,lpips_bg,id_gt,id_input,niqe,brisque,seconds,device";
inline std::string csv_line(const Row& r) {
  std::ostringstream s;
  s << r.set << "," << r.name << "," << r.cond << "," << r.method;
  for (double v : {r.psnr, r.ssim, r.ms_ssim, r.lpips, r.lp_face, r.lp_person, r.lp_bg, r.id_gt, r.id_input, r.niqe, r.brisque, r.seconds})
    s << "," << fmt_num(v);
  return s.str() + "," + r.device;
}
// Reads a per-image CSV (also one an interrupted run was appending to: a torn last line is dropped).
inline std::vector<Row> parse_csv(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  std::vector<Row> out;
  if (!std::getline(in, line) || (line != kCsvHeader && line != kCsvHeaderV1))
    throw FormatError(name + ": not a bench_inscene CSV (header differs)");
  const size_t fields = line == kCsvHeader ? 17 : 16;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cur;
    std::istringstream ls(line);
    while (std::getline(ls, cur, ',')) f.push_back(cur);
    if (fields == 17 && f.size() == 16 && !line.empty() && line.back() == ',') f.push_back("");  // getline drops an empty last field
    if (f.size() != fields) continue;
    Row r;
    r.set = f[0], r.name = f[1], r.cond = f[2], r.method = f[3];
    if (fields == 17) r.device = f[16];
    double* v[] = {&r.psnr, &r.ssim, &r.ms_ssim, &r.lpips, &r.lp_face, &r.lp_person, &r.lp_bg, &r.id_gt, &r.id_input, &r.niqe, &r.brisque, &r.seconds};
    for (int i = 0; i < 12; ++i) *v[i] = parse_num(f[size_t(4 + i)]);
    out.push_back(r);
  }
  return out;
}

// ---- report ---------------------------------------------------------------------------------
struct Metric {
  std::string title;
  double Row::*field;
  int digits;
  bool lower_better;
};
inline const std::vector<Metric>& fr_metrics() {
  static const std::vector<Metric> m{{"PSNR↑", &Row::psnr, 2, false},       {"SSIM↑", &Row::ssim, 3, false},
                                     {"MS-SSIM↑", &Row::ms_ssim, 3, false}, {"LPIPS↓", &Row::lpips, 3, true},
                                     {"LPIPS face↓", &Row::lp_face, 3, true}, {"LPIPS person↓", &Row::lp_person, 3, true},
                                     {"LPIPS bg↓", &Row::lp_bg, 3, true},   {"ID dist→GT↓", &Row::id_gt, 3, true},
                                     {"NIQE↓", &Row::niqe, 2, true},        {"BRISQUE↓", &Row::brisque, 1, true},
                                     {"s/image", &Row::seconds, 2, true}};
  return m;
}
inline const std::vector<Metric>& nr_metrics() {
  static const std::vector<Metric> m{{"NIQE↓", &Row::niqe, 2, true}, {"BRISQUE↓", &Row::brisque, 1, true},
                                     {"ID dist→input↓", &Row::id_input, 3, true}, {"s/image", &Row::seconds, 2, true}};
  return m;
}

// KID of one (set scope, cond, method): filled by the caller (needs the saved features).
using KidFn = std::function<metrics::BootstrapCI(const std::vector<std::string>& sets, const std::string& cond,
                                                 const std::string& method, const std::vector<std::string>& order)>;

inline std::string cell(const metrics::BootstrapCI& c, int digits, bool bold) {
  if (c.n == 0 || !std::isfinite(c.mean)) return "—";
  char b[96];
  std::snprintf(b, sizeof b, "%s%.*f ±%.*f%s", bold ? "**" : "", digits, c.mean, digits, (c.hi - c.lo) / 2, bold ? "**" : "");
  return b;
}
inline std::string diff_cell(const metrics::BootstrapCI& c, int digits) {
  if (c.n == 0 || !std::isfinite(c.mean)) return "—";
  char b[96];
  std::snprintf(b, sizeof b, "%+.*f [%+.*f, %+.*f]", digits, c.mean, digits, c.lo, digits, c.hi);
  return b;
}

// Values of one metric for a method, over the cases in `order` (set/case keys), NaN where absent.
inline std::vector<double> values_of(const std::vector<Row>& rows, const std::vector<std::string>& sets, const std::string& cond,
                                     const std::string& method, double Row::*f, const std::vector<std::string>& order) {
  std::map<std::string, double> by;
  for (const auto& r : rows)
    if (r.cond == cond && r.method == method && std::find(sets.begin(), sets.end(), r.set) != sets.end()) by[r.set + "/" + r.name] = r.*f;
  std::vector<double> v;
  for (const auto& k : order) v.push_back(by.count(k) ? by[k] : NAN);
  return v;
}

struct TableResult {
  std::string md;
  // method -> metric title -> summary (for the closing criteria)
  std::map<std::string, std::map<std::string, metrics::BootstrapCI>> ci;
  std::vector<std::string> order, present;
};

// One table: rows = methods present, columns = metrics with any value; best mean in bold; then
// the paired differences "ours with refs − each method". Cases that every present method has.
inline TableResult table(const std::vector<Row>& rows, const std::vector<std::string>& sets, const std::string& cond,
                         const std::vector<Metric>& ms, const KidFn& kid, int resamples) {
  TableResult t;
  std::map<std::string, std::set<std::string>> have;
  for (const auto& r : rows)
    if (r.cond == cond && std::find(sets.begin(), sets.end(), r.set) != sets.end()) have[r.method].insert(r.set + "/" + r.name);
  for (const auto& m : methods())
    if (have.count(m.key)) t.present.push_back(m.key);
  if (t.present.empty()) return t;
  for (const auto& k : have[t.present[0]]) {
    bool all = true;
    for (const auto& m : t.present) all = all && have[m].count(k);
    if (all) t.order.push_back(k);
  }
  if (t.order.empty()) return t;
  std::vector<Metric> cols;
  for (const auto& m : ms) {
    bool any = false;
    for (const auto& me : t.present)
      for (double x : values_of(rows, sets, cond, me, m.field, t.order)) any = any || std::isfinite(x);
    if (any) cols.push_back(m);
  }
  const bool with_kid = kid && std::any_of(cols.begin(), cols.end(), [](const Metric& m) { return m.field == &Row::psnr; });
  for (const auto& me : t.present) {
    for (const auto& c : cols) t.ci[me][c.title] = metrics::bootstrap_mean_ci(values_of(rows, sets, cond, me, c.field, t.order), resamples);
    if (with_kid) t.ci[me]["KID↓"] = kid(sets, cond, me, t.order);
  }
  std::vector<std::pair<std::string, std::pair<int, bool>>> titles;
  for (const auto& c : cols) {
    titles.push_back({c.title, {c.digits, c.lower_better}});
    if (with_kid && c.title == "LPIPS bg↓") titles.push_back({"KID↓", {4, true}});
  }
  std::ostringstream md;
  md << "| method |";
  for (const auto& [ti, _] : titles) md << " " << ti << " |";
  md << "\n|---|";
  for (size_t i = 0; i < titles.size(); ++i) md << "---|";
  md << "\n";
  std::map<std::string, double> best;
  for (const auto& [ti, dl] : titles) {
    if (ti == "s/image") continue;  // speed is not a quality column: no bold
    double b = NAN;
    for (const auto& me : t.present) {
      const double v = t.ci[me][ti].mean;
      if (std::isfinite(v) && (!std::isfinite(b) || (dl.second ? v < b : v > b))) b = v;
    }
    best[ti] = b;
  }
  // Where each method ran (s/image is comparable only between methods of one device).
  std::map<std::string, std::set<std::string>> devices;
  for (const auto& r : rows)
    if (r.cond == cond && std::find(sets.begin(), sets.end(), r.set) != sets.end() && !r.device.empty()) devices[r.method].insert(r.device);
  for (const auto& me : t.present) {
    md << "| " << method_label(me) << " |";
    for (const auto& [ti, dl] : titles) {
      std::string v = cell(t.ci[me][ti], dl.first, best.count(ti) && t.ci[me][ti].mean == best[ti]);
      if (ti == "s/image" && !devices[me].empty()) {
        std::string d;
        for (const auto& x : devices[me]) d += (d.empty() ? "" : "+") + x;
        v += " " + d;
      }
      md << " " << v << " |";
    }
    md << "\n";
  }
  md << "\n" << t.order.size() << " images; mean ± half the 95 % bootstrap interval (" << resamples
     << " resamples; KID: resampling images); best mean in bold.\n\n";
  if (std::find(t.present.begin(), t.present.end(), "ours-refs") != t.present.end() ||
      std::find(t.present.begin(), t.present.end(), "ours-norefs") != t.present.end()) {
    const std::string ours = std::find(t.present.begin(), t.present.end(), "ours-refs") != t.present.end() ? "ours-refs" : "ours-norefs";
    md << "Paired differences, " << method_label(ours) << " − each method (mean [95 % bootstrap CI]; negative is better for ↓):\n\n| − method |";
    std::vector<Metric> dcols;
    for (const auto& c : cols)
      if (c.field != &Row::seconds) dcols.push_back(c);
    for (const auto& c : dcols) md << " Δ " << c.title << " |";
    md << "\n|---|";
    for (size_t i = 0; i < dcols.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& me : t.present) {
      if (me == ours) continue;
      md << "| " << method_label(me) << " |";
      for (const auto& c : dcols) {
        const auto d = metrics::paired_bootstrap_ci(values_of(rows, sets, cond, ours, c.field, t.order),
                                                    values_of(rows, sets, cond, me, c.field, t.order), resamples);
        t.ci["Δ " + me][c.title] = d;
        md << " " << diff_cell(d, c.digits) << " |";
      }
      md << "\n";
    }
    md << "\n";
  }
  t.md = md.str();
  return t;
}

inline std::string cond_label(const std::string& c) {
  if (c == "given") return "real degradation (no ground truth)";
  const std::string p = c.substr(0, c.size() - 1), s = c.substr(c.size() - 1);
  return p + " ×" + s;
}

// ---- grid -----------------------------------------------------------------------------------
// rows of equally sized [3,S,S] tiles -> one image, with a 2-pixel white gutter.
inline Image grid_image(const std::vector<std::vector<torch::Tensor>>& rows) {
  if (rows.empty()) throw ArgumentError("grid: no rows");
  const int64_t s = rows[0][0].size(1), g = 2;
  size_t ncol = 0;
  for (const auto& r : rows) ncol = std::max(ncol, r.size());
  auto canvas = torch::ones({3, int64_t(rows.size()) * (s + g) - g, int64_t(ncol) * (s + g) - g});
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < rows[r].size(); ++c)
      canvas.slice(1, int64_t(r) * (s + g), int64_t(r) * (s + g) + s).slice(2, int64_t(c) * (s + g), int64_t(c) * (s + g) + s).copy_(rows[r][c].clamp(0, 1));
  return tensor_to_image(canvas);
}

}  // namespace f2s_isb
