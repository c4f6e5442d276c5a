// bench_inscene's report (included once by bench_inscene.cpp): the three tables in the paper's
// layout from <out>/per_image.csv, KID from the saved features, the closing criteria of issue #20,
// the crop grids and the command lines, written as Markdown.
#pragma once

namespace {

// People_hq photos whose licence lets a crop of them go into docs/ (scenes/people_hq/SOURCES.md):
// Kodak (unrestricted), CC BY 2.0 Flickr (credit below), US Navy (public domain), Pexels CC0.
const std::map<std::string, std::string>& committable() {
  static const std::map<std::string, std::string> m{
      {"kodak_kodim12", "Kodak Lossless True Color Image Suite, kodim12 (unrestricted use)"},
      {"flickr_multihmr_51960182045", "Erik Drost, Flickr, CC BY 2.0 (via naver/multi-hmr)"},
      {"commons_044_us-navy-sailor-patient", "US Navy photo, public domain (Wikimedia Commons)"},
      {"pexels_women-on-phones", "Pexels, CC0"},
      {"pexels_ibm_dog-human", "Pexels, CC0"}};
  return m;
}

std::vector<std::string> present_conds(const std::vector<Row>& rows, const std::string& set) {
  std::vector<std::string> out;
  for (const std::string c : {"mild4", "moderate4", "severe4", "mild1", "moderate1", "severe1", "given"})
    if (std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return r.set == set && r.cond == c; })) out.push_back(c);
  return out;
}

// A crop grid of one set and condition: rows = cases (at most 4), columns = the degraded input
// (nearest-upscaled to the output's scale), every method, the ground truth. The crop is a square
// around the largest face (2.5 face sides, at least 128 px, shifted down to take in the shoulders);
// 160² tiles.
std::string make_grid(const RunConfig& rc, const std::vector<Row>& rows, const std::string& set, const std::string& cond,
                      const std::vector<std::string>& only, const std::string& path, std::vector<std::string>* used) {
  std::vector<std::string> names, meths;
  for (const auto& r : rows)
    if (r.set == set && r.cond == cond && std::find(names.begin(), names.end(), r.name) == names.end() &&
        (only.empty() || std::find(only.begin(), only.end(), r.name) != only.end()))
      names.push_back(r.name);
  for (const auto& m : methods())
    if (std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return r.set == set && r.cond == cond && r.method == m.key; }))
      meths.push_back(m.key);
  std::vector<std::vector<torch::Tensor>> grid;
  const int64_t T = 160;
  for (const auto& n : names) {
    if (grid.size() >= 4) break;
    const std::string bf = rc.out + "/outputs/" + set + "/gt/" + n + ".box";
    if (!fs::exists(bf)) continue;
    std::istringstream in(read_file(bf));
    double x0, y0, x1, y1;
    if (!(in >> x0 >> y0 >> x1 >> y1)) continue;
    std::vector<torch::Tensor> tiles;
    auto crop = [&](torch::Tensor img, bool nearest) {
      const int64_t H = img.size(1), W = img.size(2);
      // At least 128 output pixels: around a face of a few input pixels (people_hq's far figures) a
      // 2.5-face crop shows only blobs; 128 px shows the person and what each method made of them.
      const double side = std::min<double>({std::max(128.0, 2.5 * std::max(x1 - x0, y1 - y0)), double(H), double(W)});
      const double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2 + 0.3 * (y1 - y0);
      const int64_t s = std::max<int64_t>(8, std::llround(side));
      const int64_t a = std::clamp<int64_t>(std::llround(cx - side / 2), 0, W - s), b = std::clamp<int64_t>(std::llround(cy - side / 2), 0, H - s);
      auto t = img.slice(1, b, b + s).slice(2, a, a + s).unsqueeze(0);
      namespace F = torch::nn::functional;
      t = nearest ? F::interpolate(t, F::InterpolateFuncOptions().size(std::vector<int64_t>{T, T}).mode(torch::kNearest))
                  : resize_images(t, T, T, ResizeMode::kArea);
      return t[0].clamp(0, 1);
    };
    const std::string o = rc.out + "/outputs/" + set + "/" + cond + "/";
    std::vector<std::string> files{o + "input/" + n + ".png"};
    for (const auto& m : meths) files.push_back(o + m + "/" + n + ".png");
    bool ok = true;
    for (const auto& f : files) ok = ok && fs::exists(f);
    if (!ok) continue;
    torch::Tensor ref = load_rgb(files[1]);
    for (size_t i = 0; i < files.size(); ++i) {
      auto img = load_rgb(files[i]);
      if (i == 0 && img.size(1) != ref.size(1)) {  // the ×4 input: nearest up to the output's size first
        namespace F = torch::nn::functional;
        img = F::interpolate(img.unsqueeze(0), F::InterpolateFuncOptions().size(std::vector<int64_t>{ref.size(1), ref.size(2)}).mode(torch::kNearest))[0];
      }
      tiles.push_back(crop(img, false));
    }
    // The ground truth is in the pack.
    for (const auto& c : read_manifest(rc.data + "/manifest.tsv"))
      if (c.set == set && c.name == n && !c.gt.empty()) tiles.push_back(crop(load_rgb(rc.data + "/" + c.gt), false));
    grid.push_back(tiles);
    if (used) used->push_back(n);
  }
  if (grid.empty()) return "";
  fs::create_directories(fs::path(path).parent_path());
  write_image(path, grid_image(grid));
  std::string cols = "degraded input";
  for (const auto& m : meths) cols += " | " + method_label(m);
  if (set != "real") cols += " | ground truth";
  return cols;
}

void write_report(const RunConfig& rc) {
  const std::string csv = rc.out + "/per_image.csv";
  const auto rows = parse_csv(read_file(csv), csv);
  const int kid_resamples = std::min(rc.resamples, 1000);
  KidFn kid = [&](const std::vector<std::string>& sets, const std::string& cond, const std::string& method, const std::vector<std::string>& order) {
    std::vector<torch::Tensor> a, b;
    for (const auto& k : order) {
      const auto set = k.substr(0, k.find('/')), name = k.substr(k.find('/') + 1);
      const std::string fa = rc.out + "/outputs/" + set + "/" + cond + "/" + method + "/" + name + ".kid.pt";
      const std::string fb = rc.out + "/outputs/" + set + "/gt/" + name + ".kid.pt";
      if (!fs::exists(fa) || !fs::exists(fb)) continue;
      torch::Tensor x, y;
      torch::load(x, fa), torch::load(y, fb);
      a.push_back(metrics::kid_normalise(x)), b.push_back(metrics::kid_normalise(y));  // idempotent
    }
    return metrics::kid_bootstrap(a, b, kid_resamples);
  };
  const fs::path md_dir = rc.md.empty() ? fs::path(rc.out) : fs::absolute(rc.md).parent_path();
  std::ostringstream md;
  md << "# InScene-style benchmarks (issue #20)\n\n"
        "Generated by `bench_inscene` from `per_image.csv`; no number here is typed by hand. Three tables in the paper's layout "
        "(docs/paper.md of the shared docs): **Table 1** people scenes with references (CelebA test identities' whole photos, LFW "
        "held-out persons), **Table 2** real photos of people with synthetic degradation and no references (people_hq held-out), "
        "**Table 3** real degraded photos scored without a ground truth.\n\n";
  md << "## How it was measured\n\n"
        "- Inputs: the held-out split `bench/inscene_split.tsv` (sha256 of every file; CelebA identities are Ref-FR test identities "
        "of bench/ref_fr_split.tsv, LFW and people_hq files are on bench/heldout.sha256, which the trainers refuse). Ground truth: the "
        "photo with alpha dropped, long side ≤ 512 px (antialiased bicubic), centre-cropped to a multiple of 4, stored as JPEG q95 in "
        "the pack both machines read. Degraded by the degradation engine (presets mild, moderate, severe; ×4 = downscaled ×4; ×1 = "
        "degraded at ¼ size and resized back, bicubic), seeded per image and condition, libjpeg on every device.\n"
        "- Real degraded photos: as given; those over 512 px on the long side area-downscaled to 512, then ×4.\n"
        "- Methods run in the same process on the same inputs. Real-ESRGAN at ×1: the input area-downscaled ×4, then ×4 (what our "
        "×1 stem does inside). upscayl-bin is the npm binary (realesrgan-ncnn-vulkan, fp16), given the same 8-bit PNG. **faces only** "
        "= Real-ESRGAN x4plus for the whole photo, then the pipeline's Ref-FR faces (with the person's references where the set "
        "has them, blind twin otherwise) pasted with the same detail transfer as ours: the GFPGAN-style flow, differing from "
        "**ours, with refs** only in the scene. **ours, blind** = `--blind` (no face code, blind scene restorer, Ref-FR's blind twin); "
        "**ours, Ref-FR faces, no refs** = the face code read from Ref-FR's blind twin's faces; **ours, with refs** = the pipeline "
        "given the person's reference photos.\n"
        "- Metrics: PSNR and SSIM on BT.601 Y with a 4-px border cropped, MS-SSIM on Y (same crop; needs ≥ 176 px), LPIPS v0.1 "
        "SqueezeNet (docs/metrics.md; not the paper's AlexNet LPIPS), NIQE, BRISQUE on the output. **Region LPIPS**: LPIPS averaged "
        "over a mask (each layer's distance map weighted by the mask's coverage): face = the face boxes dlib HOG finds on the ground "
        "truth; person = each face box widened to 3 face widths, from half a face above to 7 face heights below (a body region from "
        "the face box, not a segmentation); background = the rest. **KID** = unbiased MMD² (cubic polynomial kernel) between the "
        "outputs' and the ground truths' **SqueezeNet 1.1** features (fire9, 512-d, average-pooled, scaled to norm √512 so the kernel is (cos + 1)³) on up to 16 224² patches per image "
        "— not FID's Inception-v3 (absent here); compare methods with each other only. **ID dist→GT**: dlib-ResNet descriptor "
        "distance between the output and the ground truth at the ground truth's largest face (both aligned with the ground truth's "
        "landmarks; < 0.6 = same person). **ID dist→input** (Table 3, no references known for these people): the same between the "
        "output and the bicubic-upscaled input, so bicubic scores 0 by construction; it measures identity drift. **s/image**: the "
        "method's own wall time per image on the machine of the run (pipeline: load excluded).\n"
        "- Each cell: mean ± half the 95 % percentile-bootstrap interval over images; the paired table under each is the mean "
        "difference \"ours − method\" over the same images with its 95 % bootstrap interval.\n\n";
  // ---- the closing criteria: set 1 pooled (CelebA + LFW) ----
  const std::vector<std::string> set1{"celeba", "lfw"};
  std::vector<std::string> conds1;
  for (const auto& s : set1)
    for (const auto& c : present_conds(rows, s))
      if (std::find(conds1.begin(), conds1.end(), c) == conds1.end()) conds1.push_back(c);
  std::ostringstream crit;
  crit << "## Issue #20 criteria on set 1 (CelebA + LFW pooled)\n\n"
          "\"Within the CI of the best\": the paired difference ours − best has a 95 % interval that contains 0 (KID: ours' mean lies "
          "inside the best method's interval). \"Beats\": the paired LPIPS difference's interval lies below 0.\n\n"
          "| condition | images | LPIPS: best or within CI | KID: best or within CI | ID dist→GT: best or within CI | LPIPS < x4plus | LPIPS < faces only |\n|---|---|---|---|---|---|---|\n";
  for (const auto& cond : conds1) {
    auto t = table(rows, set1, cond, fr_metrics(), kid, rc.resamples);
    if (t.order.empty() || !t.ci.count("ours-refs")) continue;
    auto judge = [&](const std::string& title) -> std::string {
      std::string best;
      double bv = NAN;
      const bool lower = true;
      for (const auto& me : t.present) {
        if (!t.ci[me].count(title)) continue;
        const double v = t.ci[me][title].mean;
        if (std::isfinite(v) && (!std::isfinite(bv) || (lower ? v < bv : v > bv))) bv = v, best = me;
      }
      if (best.empty()) return "—";
      if (best == "ours-refs") return "**yes** (best)";
      if (title == "KID↓") {
        const auto& b = t.ci[best][title];
        const double o = t.ci["ours-refs"][title].mean;
        return (o <= b.hi ? "**yes**" : "**no**") + std::string(" (best: ") + method_label(best) + ")";
      }
      const auto& d = t.ci["Δ " + best][title];
      return (d.lo <= 0 && d.hi >= 0 ? "**yes**" : "**no**") + std::string(" (best: ") + method_label(best) + ", Δ " + diff_cell(d, 3) + ")";
    };
    auto beats = [&](const std::string& other) -> std::string {
      if (!t.ci.count("Δ " + other)) return "—";
      const auto& d = t.ci["Δ " + other]["LPIPS↓"];
      return (d.hi < 0 ? "**yes** " : "**no** ") + diff_cell(d, 3);
    };
    crit << "| " << cond_label(cond) << " | " << t.order.size() << " | " << judge("LPIPS↓") << " | " << judge("KID↓") << " | " << judge("ID dist→GT↓")
         << " | " << beats("esrgan-x4plus") << " | " << beats("faces-only") << " |\n";
  }
  md << crit.str() << "\n";
  // ---- tables ----
  struct Part {
    std::string title, set;
  };
  const std::vector<Part> parts{{"Table 1 — people scenes with references: CelebA test identities (whole photos)", "celeba"},
                                {"Table 1 — people scenes with references: LFW held-out persons (250² photos)", "lfw"},
                                {"Table 2 — real photos of people, synthetic degradation, no references (people_hq held-out)", "people_hq"},
                                {"Table 3 — real degraded photos, no ground truth (scenes/real_degraded)", "real"}};
  std::ostringstream figs;
  for (const auto& p : parts) {
    const auto conds = present_conds(rows, p.set);
    if (conds.empty()) continue;
    md << "## " << p.title << "\n\n";
    for (const auto& cond : conds) {
      auto t = table(rows, {p.set}, cond, p.set == "real" ? nr_metrics() : fr_metrics(), kid, rc.resamples);
      if (t.order.empty()) continue;
      md << "### " << p.set << ", " << cond_label(cond) << "\n\n" << t.md;
    }
    // The figure: moderate ×4 (or the first condition), the real photos as given.
    const std::string gc = std::find(conds.begin(), conds.end(), "moderate4") != conds.end() ? "moderate4" : conds[0];
    const std::string gpath = rc.out + "/grids/" + p.set + "_" + gc + ".png";
    const std::string cols = make_grid(rc, rows, p.set, gc, {}, gpath, nullptr);
    if (cols.empty()) continue;
    figs << "- **" << p.set << "**, " << cond_label(gc) << ": `" << fs::relative(fs::absolute(gpath), fs::absolute(md_dir)).generic_string()
         << "` (columns: " << cols << "). ";
    if (p.set == "people_hq" && !rc.docs_images.empty()) {
      std::vector<std::string> only, used;
      for (const auto& [k, v] : committable()) only.push_back(k);
      const std::string dp = rc.docs_images + "/inscene_people_hq.png";
      if (!make_grid(rc, rows, p.set, gc, only, dp, &used).empty()) {
        figs << "Its freely licensed rows are in the repository:\n\n  ![people_hq grid](" << fs::relative(fs::absolute(dp), fs::absolute(md_dir)).generic_string()
             << ")\n\n  Rows: ";
        for (const auto& u : used) figs << u << " (" << committable().at(u) << "); ";
        figs << "\n";
      } else {
        figs << "No freely licensed photo among its cases, so no picture in the repository.\n";
      }
    } else {
      figs << (p.set == "people_hq" ? "Not committed (no --docs-images given).\n"
                                    : "Not committed: the photos are research-only (CelebA / LFW terms, unknown copyright).\n");
    }
  }
  md << "## Figures (crop grids of the same region across methods)\n\n" << figs.str() << "\n";
  md << "## Commands and machines\n\n";
  if (fs::exists(rc.out + "/commands.txt")) {
    std::istringstream in(read_file(rc.out + "/commands.txt"));
    std::string line;
    while (std::getline(in, line)) {
      const auto a = line.find('\t'), b = line.find('\t', a + 1);
      md << "- " << line.substr(0, a) << ", " << line.substr(a + 1, b - a - 1) << ":\n  `" << line.substr(b + 1) << "`\n";
    }
  }
  md << "\nThe report alone is rebuilt from the CSV by the same command with `--report-only`.\n";
  if (!rc.note.empty()) md << "\n" << read_file(rc.note);
  write_file_atomically(rc.out + "/BENCHMARKS.md", md.str());
  if (!rc.md.empty()) {
    if (fs::absolute(rc.md).has_parent_path()) fs::create_directories(fs::absolute(rc.md).parent_path());
    write_file_atomically(rc.md, md.str());
  }
  std::printf("bench_inscene: %zu rows; report %s%s\n", rows.size(), (rc.out + "/BENCHMARKS.md").c_str(), rc.md.empty() ? "" : (", " + rc.md).c_str());
}

}  // namespace
