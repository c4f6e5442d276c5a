// The Ref-FR benchmark of issue #18: held-out faces restored by bicubic, Real-ESRGAN x4plus, the
// blind twin and Ref-FR with no, one, up to three and another person's references, measured by
// PSNR, SSIM, LPIPS, dlib identity distance and match rate (95 % bootstrap CIs, paired differences).
//
//   bench_ref_fr --models weights [--data ../shared/data] [--device cpu|cuda] [--limit N]
//                [--sets london,celeba,celebref_pairs,synlq] [-o docs/results] [--grid PNG]
//                [--resume] [--threads N] [--resamples 2000] [--conditions severe8,moderate4]
//   bench_ref_fr --pack DIR [--data ../shared/data] [--sets ...] [--limit N]
//
// --limit N keeps the first N faces of each set (default 4: a quick check; 0 = every face).
// Sets: (a) london, celeba: held-out identities (bench/ref_fr_split.tsv), degraded here at mild,
// moderate, severe × face downscale 4, 8 with fixed seeds; (b) celebref_pairs: given degraded images
// with ground truth; (c) synlq: celebref/SynLQ, no ground truth (identity to the references, NIQE).
// Writes <out>/ref_fr_bench.csv (one row per face, condition and method), <out>/ref_fr_bench.md and
// the grid of held-out London faces (default <out>/../images/ref_fr_grid.png when <out> is named
// "results", else <out>/ref_fr_grid.png). Rows are appended to <out>/ref_fr_bench.partial.csv as
// they are measured; --resume continues an interrupted run from it.
//
// The GPU machine has no shared data: `--pack DIR` writes every input of the chosen sets as the
// 128² PNGs the benchmark reads (bit-identical: inputs are rounded to 8 bits at 128² either way),
// DIR/manifest.tsv and the weights it needs besides weights/ (LPIPS, NIQE, Real-ESRGAN x4plus, the
// face descriptor as fp16); then run with `--data DIR` (scripts/gpu/bench_ref_fr.sh). Without a
// pack, Real-ESRGAN and the descriptor come from the install cache (--esrgan-weights,
// --descriptor-weights override).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/ref_fr.hpp"
#include "oracle_bench_util.hpp"
#include "ref_fr_bench_util.hpp"

using namespace face2scene;
using namespace f2s_rfb;

namespace {


torch::Tensor quantise(const torch::Tensor& x) { return x.to(torch::kCPU, torch::kFloat32).clamp(0, 1).mul(255).round().div(255); }

double psnr_q(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (a - b).mul(255).pow(2).mean().item<double>();
  return mse <= 0 ? 100.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

std::string machine_text(const torch::Device& device) {
  const std::string cpu = cpu_model_text();
  const std::string threads = std::to_string(torch::get_num_threads());
  return (device.is_cuda() ? "CUDA (" + device.str() + "), host " : "") + cpu + ", " + threads + " torch threads, LibTorch " +
         torch_version_string();
}

struct Models {
  RefFR net{nullptr}, blind{nullptr};
  std::unique_ptr<Upscaler> esrgan;
  std::unique_ptr<metrics::Lpips> lpips;
  std::unique_ptr<FaceDescriptor> desc;
  std::unique_ptr<metrics::Niqe> niqe;
  torch::Device device = torch::kCPU;
  std::string info, identity_loss = "none";
};

// [N,3,128,128] aligned faces -> [N,128] descriptors, through the identity module's own path for an
// aligned face crop: FFHQ frame at 512², then the descriptor's 150² chip.
torch::Tensor describe(const Models& m, const torch::Tensor& faces) {
  std::vector<torch::Tensor> a;
  for (int64_t i = 0; i < faces.size(0); ++i) a.push_back(align_face(faces[i].to(m.device), ffhq_template(int(kSize)), 512).image);
  return m.desc->embed(crop_for_descriptor(torch::stack(a))).to(torch::kCPU, torch::kFloat32);
}

struct Loaded {
  torch::Tensor gt, lq, refs, wrong;  // [1,3,S,S]; refs [1,R,3,S,S] (R >= 1)
  torch::Tensor gt_desc, ref_desc;    // [128] (undefined without GT), [R,128]
};

torch::Tensor stack_refs(const std::string& root, const std::vector<std::string>& files, size_t max_n) {
  std::vector<torch::Tensor> v;
  for (size_t i = 0; i < files.size() && i < max_n; ++i) v.push_back(load128(root + "/" + files[i]));
  return v.empty() ? torch::Tensor() : torch::cat(v, 0).unsqueeze(0);
}

Loaded load_case(Models& m, const std::string& root, const Case& c) {
  Loaded l;
  if (!c.gt.empty()) l.gt = load128(root + "/" + c.gt);
  if (!c.lq.empty()) l.lq = load128(root + "/" + c.lq);
  l.refs = stack_refs(root, c.refs, 3);
  // As many of the other person's photos as the right references, where there are that many.
  l.wrong = stack_refs(root, c.wrong, size_t(l.refs.size(1)));
  if (l.gt.defined()) l.gt_desc = describe(m, l.gt)[0];
  l.ref_desc = describe(m, l.refs[0]);
  return l;
}

struct Unit {
  std::string preset;
  int scale = 0;
};

struct UnitResult {
  std::vector<Row> rows;
  torch::Tensor degraded_small;  // for the grid
  std::map<std::string, torch::Tensor> out;
};

UnitResult run_unit(Models& m, const Case& c, const Loaded& l, const Unit& u) {
  torch::NoGradGuard ng;
  UnitResult r;
  torch::Tensor lq_in, esr;
  if (u.scale > 0) {
    // The trainer's input, exactly: engine degradation with the face downscaled ×scale, then
    // bicubic back to 128² (train_ref_fr.cpp). Seeded per face, preset and scale, so --limit and
    // --resume never change a face's degradation; libjpeg on every device.
    DegradationSampler sampler(u.preset, mix_seed(20261206, fnv1a(c.set + "/" + c.name + "/" + u.preset + "/" + std::to_string(u.scale))));
    sampler.set_out_scale(float(u.scale));
    ApplyOptions ao;
    ao.jpeg = JpegMode::kCodec;
    r.degraded_small = apply_degradation(l.gt, sampler.sample(), ao);
    lq_in = resize_images(r.degraded_small, kSize, kSize, ResizeMode::kBicubic).clamp(0, 1);
    esr = m.esrgan->upscale_x4(r.degraded_small);
  } else {
    r.degraded_small = l.lq;
    lq_in = l.lq;
    esr = resize_images(m.esrgan->upscale_x4(resize_images(l.lq, kSize / 2, kSize / 2, ResizeMode::kArea).clamp(0, 1)), kSize, kSize,
                        ResizeMode::kArea);
  }
  if (esr.size(2) != kSize) esr = resize_images(esr, kSize, kSize, ResizeMode::kBicubic);
  auto dev = [&](const torch::Tensor& t) { return t.defined() ? t.to(m.device) : t; };
  const auto x = dev(lq_in);
  const int64_t R = l.refs.size(1);
  std::map<std::string, int> nrefs{{"bicubic", 0}, {"realesrgan", 0}, {"blind", 0}, {"ref0", 0}, {"ref1", 1},
                                   {"ref3", int(R)}, {"wrong", l.wrong.defined() ? int(l.wrong.size(1)) : 0}};
  r.out["bicubic"] = quantise(lq_in);
  r.out["realesrgan"] = quantise(esr);
  r.out["blind"] = quantise(m.blind->forward(x));
  r.out["ref0"] = quantise(m.net->forward(x));
  r.out["ref1"] = quantise(m.net->forward(x, dev(l.refs.narrow(1, 0, 1))));
  r.out["ref3"] = R == 1 ? r.out["ref1"] : quantise(m.net->forward(x, dev(l.refs)));
  if (l.wrong.defined()) r.out["wrong"] = quantise(m.net->forward(x, dev(l.wrong)));
  std::vector<std::string> keys;
  std::vector<torch::Tensor> outs;
  for (const auto& me : methods())
    if (r.out.count(me.key)) keys.push_back(me.key), outs.push_back(r.out[me.key]);
  auto batch = torch::cat(outs, 0);
  auto desc = describe(m, batch);
  torch::Tensor lp;
  if (l.gt.defined()) lp = m.lpips->forward(batch.to(m.device), l.gt.expand({batch.size(0), 3, kSize, kSize}).to(m.device)).cpu();
  for (size_t i = 0; i < keys.size(); ++i) {
    Row row;
    row.set = c.set, row.name = c.name, row.preset = u.scale ? u.preset : "given", row.scale = u.scale, row.method = keys[i];
    row.refs = nrefs[keys[i]];
    const auto& o = outs[i];
    if (l.gt.defined()) {
      row.psnr = psnr_q(o, l.gt);
      row.ssim = metrics::ssim(tensor_to_image(o[0]), tensor_to_image(l.gt[0]));
      row.lpips = lp[int64_t(i)].item<double>();
      row.id_gt = (desc[int64_t(i)] - l.gt_desc).norm().item<double>();
      row.match = row.id_gt < 0.6 ? 1.0 : 0.0;
    }
    row.id_ref = (l.ref_desc - desc[int64_t(i)].unsqueeze(0)).norm(2, 1).min().item<double>();
    double best = -1e9;
    for (int64_t k = 0; k < R; ++k) best = std::max(best, psnr_q(o, l.refs[0][k].unsqueeze(0)));
    row.psnr_ref = best;
    if (m.niqe && c.set == "synlq")
      row.niqe = (*m.niqe)(tensor_to_image(resize_images(o, 2 * kSize, 2 * kSize, ResizeMode::kBicubic).clamp(0, 1)[0]));
    r.rows.push_back(row);
  }
  return r;
}

// --conditions severe8,moderate4 restricts the synthetic sets' conditions (quick checks, the unit test).
std::set<std::string>& condition_filter() {
  static std::set<std::string> f;
  return f;
}

std::vector<Unit> units_of(const Case& c) {
  if (!synthetic_set(c.set)) return {{"given", 0}};
  std::vector<Unit> u;
  for (const std::string p : {"mild", "moderate", "severe"})
    for (int s : {4, 8})
      if (condition_filter().empty() || condition_filter().count(p + std::to_string(s))) u.push_back({p, s});
  return u;
}

std::vector<std::string> parse_sets(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& x : split_str(s, ','))
    if (!x.empty()) {
      if (std::find(all_sets().begin(), all_sets().end(), x) == all_sets().end())
        throw ArgumentError("--sets: unknown set '" + x + "' (london, celeba, celebref_pairs, synlq)");
      out.push_back(x);
    }
  return out;
}

std::vector<Case> load_cases(const std::string& root, const std::string& split_file, const std::vector<std::string>& sets, int limit) {
  std::vector<Case> all;
  const bool packed = fs::exists(root + "/manifest.tsv");
  const auto listed = packed ? read_manifest(root + "/manifest.tsv") : std::vector<Case>{};
  const auto split = packed ? std::vector<FaceSplitEntry>{} : read_face_split(split_file);
  for (const auto& s : sets) {
    std::vector<Case> cs;
    if (packed) {
      for (const auto& c : listed)
        if (c.set == s) cs.push_back(c);
    } else {
      cs = cases_from_data(root, split, s);
    }
    if (limit > 0 && int(cs.size()) > limit) cs.resize(size_t(limit));
    all.insert(all.end(), cs.begin(), cs.end());
  }
  return all;
}

int run_pack(const f2s_bench::Args& args, const std::string& root, const std::vector<Case>& cases) {
  const std::string dir = args.get("--pack", "");
  fs::create_directories(dir);
  std::map<std::string, std::string> packed;  // source path -> packed path
  int64_t bytes = 0;
  auto put = [&](const std::string& src, const std::string& dst) {
    if (packed.count(src)) return packed[src];
    fs::create_directories(fs::path(dir + "/" + dst).parent_path());
    write_image(dir + "/" + dst, tensor_to_image(load128(root + "/" + src)[0]));
    bytes += int64_t(fs::file_size(dir + "/" + dst));
    return packed[src] = dst;
  };
  std::vector<Case> out;
  for (const auto& c : cases) {
    Case p = c;
    const std::string base = c.set + "/" + c.name + "/";
    if (!c.gt.empty()) p.gt = put(c.gt, base + "gt.png");
    if (!c.lq.empty()) p.lq = put(c.lq, base + "lq.png");
    for (size_t i = 0; i < c.refs.size(); ++i) p.refs[i] = put(c.refs[i], base + "ref" + std::to_string(i) + ".png");
    out.push_back(p);
  }
  // Wrong references: the other case's packed copies (every case of the set is packed when --limit 0).
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t k = 0; k < out[i].wrong.size(); ++k) {
      auto it = packed.find(cases[i].wrong[k]);
      out[i].wrong[k] = it != packed.end() ? it->second : put(cases[i].wrong[k], cases[i].set + "/wrong_" + cases[i].name + "_" + std::to_string(k) + ".png");
    }
  write_file_atomically(dir + "/manifest.tsv", manifest_text(out));
  const std::string w = args.get("--lpips-weights", root + "/weights");
  fs::create_directories(dir + "/weights/niqe");
  metrics::Lpips(w).export_safetensors(dir + "/weights/lpips_squeeze.safetensors");
  fs::copy_file(w + "/niqe/niqe_pris_params.npz", dir + "/weights/niqe/niqe_pris_params.npz", fs::copy_options::overwrite_existing);
  // Real-ESRGAN x4plus as installed (fp16) and the face descriptor re-stored as fp16 (half its
  // size, so data + weights + .deps fit the device tool's 64 MiB carry; the loader casts to fp32).
  fs::copy_file(realesrgan_weights_path(RealEsrganModel::kX4Plus), dir + "/weights/" + weights_filename(RealEsrganModel::kX4Plus),
                fs::copy_options::overwrite_existing);
  auto st = load_safetensors(default_faceapi_weights_path());
  for (auto& [k, v] : st.tensors)
    if (v.is_floating_point()) v = v.to(torch::kHalf);
  save_safetensors(dir + "/weights/" + fs::path(default_faceapi_weights_path()).filename().string(), st.tensors, st.metadata);
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += int64_t(e.file_size());
  std::printf("packed %zu cases (%zu images, %.1f MB of PNG), LPIPS/NIQE, Real-ESRGAN x4plus and face-descriptor (fp16) weights "
              "into %s: %.1f MB in all\nrun there: bench_ref_fr --data %s --device cuda --limit 0 ...\n",
              cases.size(), packed.size(), double(bytes) / 1e6, dir.c_str(), double(total) / 1e6, dir.c_str());
  return 0;
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return b;
}

}  // namespace

int main(int argc, char** argv) try {
  const f2s_bench::Args args(argc, argv);
  if (args.has("--help") || args.has("-h")) {
    std::printf("usage: bench_ref_fr --models weights [--data DIR] [--device cpu|cuda] [--limit N] [--sets a,b] [-o DIR] [--grid PNG] "
                "[--resume]\n       bench_ref_fr --pack DIR [--data DIR] [--sets a,b] [--limit N]\n(see the header of bench/bench_ref_fr.cpp)\n");
    return 0;
  }
  set_num_threads(std::stoi(args.get("--threads", "0")));
  set_progress_sink(make_console_progress_sink());
  const std::string root = args.get("--data", f2s_bench::data_dir());
  const auto sets = parse_sets(args.get("--sets", "london,celeba,celebref_pairs,synlq"));
  const int limit = std::stoi(args.get("--limit", "4"));
  for (const auto& x : split_str(args.get("--conditions", ""), ','))
    if (!x.empty()) {
      static const std::set<std::string> known{"mild4", "mild8", "moderate4", "moderate8", "severe4", "severe8"};
      if (!known.count(x)) throw ArgumentError("--conditions: unknown '" + x + "' (mild4, mild8, moderate4, moderate8, severe4, severe8)");
      condition_filter().insert(x);
    }
  const auto cases = load_cases(root, args.get("--split", std::string(F2S_REPO_DIR) + "/bench/ref_fr_split.tsv"), sets, limit);
  if (args.has("--pack")) return run_pack(args, root, cases);

  const std::string out = args.get("-o", "out/bench_ref_fr");
  fs::create_directories(out);
  std::string grid = args.get("--grid", "");
  if (grid.empty())
    grid = fs::path(out).filename() == "results" ? (fs::path(out).parent_path() / "images/ref_fr_grid.png").string() : out + "/ref_fr_grid.png";
  const int resamples = std::stoi(args.get("--resamples", "2000"));

  Models m;
  m.device = parse_device(args.get("--device", "cpu"));
  if (m.device.is_cuda()) at::globalContext().setAllowTF32CuDNN(false);  // fp32 everywhere: CPU and GPU numbers comparable
  const std::string models = args.get("--models", "weights");
  auto a = load_ref_fr(models + "/ref_fr.safetensors", m.device);
  auto b = load_ref_fr(models + "/ref_fr_blind.safetensors", m.device);
  if (a.blind || !b.blind) throw FormatError(models + ": ref_fr.safetensors must be the reference model and ref_fr_blind.safetensors the blind twin");
  m.net = a.net, m.blind = b.net;
  m.net->to(torch::kFloat32), m.blind->to(torch::kFloat32);
  m.net->eval(), m.blind->eval();
  auto steps = [](const LoadedRefFR& l) { return l.metadata.count("trained_steps") ? l.metadata.at("trained_steps") : std::string("?"); };
  if (a.metadata.count("identity_loss")) m.identity_loss = a.metadata.at("identity_loss");
  m.info = models + "/ref_fr.safetensors (" + steps(a) + " steps), " + models + "/ref_fr_blind.safetensors (" + steps(b) +
           " steps)";
  UpscaleOptions uo;
  uo.model = RealEsrganModel::kX4Plus;
  uo.device = m.device;
  uo.tiles.tile = 0;
  // A --pack folder brings its own copies of the installed weights; else the install cache.
  const std::string w = args.get("--lpips-weights", root + "/weights");
  const std::string esr_packed = w + "/" + weights_filename(RealEsrganModel::kX4Plus);
  const std::string desc_packed = w + "/" + fs::path(default_faceapi_weights_path()).filename().string();
  const std::string esr_w = args.get("--esrgan-weights", fs::exists(esr_packed) ? esr_packed : realesrgan_weights_path(RealEsrganModel::kX4Plus));
  const std::string desc_w = args.get("--descriptor-weights", fs::exists(desc_packed) ? desc_packed : default_faceapi_weights_path());
  m.esrgan = std::make_unique<Upscaler>(uo, esr_w);
  m.lpips = std::make_unique<metrics::Lpips>(w, m.device);
  m.info += "; Real-ESRGAN " + esr_w + "; descriptor " + desc_w;
  m.desc = std::make_unique<FaceDescriptor>(FaceDescriptor::load(desc_w, m.device));
  if (std::find(sets.begin(), sets.end(), "synlq") != sets.end())
    m.niqe = std::make_unique<metrics::Niqe>(w + "/niqe/niqe_pris_params.npz");

  // Resume: rows of finished units from the partial CSV of an interrupted run.
  const std::string partial = out + "/ref_fr_bench.partial.csv";
  std::vector<Row> rows;
  std::set<std::string> done;
  auto unit_key = [](const std::string& set, const std::string& name, const std::string& preset, int scale) {
    return set + "/" + name + "/" + preset + "/" + std::to_string(scale);
  };
  if (args.has("--resume") && fs::exists(partial)) {
    // A unit counts as done only with all its methods ("wrong" is absent when a set has one case).
    std::map<std::string, size_t> expected, count;
    for (const auto& c : cases)
      for (const auto& u : units_of(c))
        expected[unit_key(c.set, c.name, u.scale ? u.preset : "given", u.scale)] = methods().size() - (c.wrong.empty() ? 1 : 0);
    const auto old = parse_csv(read_file(partial), partial);
    for (const auto& r : old) ++count[unit_key(r.set, r.name, r.preset, r.scale)];
    for (const auto& r : old) {
      const auto k = unit_key(r.set, r.name, r.preset, r.scale);
      if (expected.count(k) && count[k] == expected[k]) done.insert(k), rows.push_back(r);
    }
    std::printf("resuming: %zu units already measured\n", done.size());
  }
  {
    std::ofstream p(partial, std::ios::trunc);
    p << csv_text(rows);
  }
  std::ofstream part(partial, std::ios::app);

  // Grid: the first London faces (CC BY 4.0; never another set's faces in docs/).
  const std::vector<Unit> grid_units{{"severe", 8}, {"moderate", 4}};
  std::vector<std::vector<torch::Tensor>> grid_rows;
  int64_t units_total = 0;
  for (const auto& c : cases) units_total += int64_t(units_of(c).size());
  Progress progress("bench_ref_fr", units_total);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t computed = 0, grid_faces = 0;
  for (const auto& c : cases) {
    const bool in_grid = c.set == "london" && grid_faces < 4;
    grid_faces += c.set == "london";
    Loaded l;
    bool loaded = false;
    std::map<std::string, UnitResult> kept;
    for (const auto& u : units_of(c)) {
      const auto k = unit_key(c.set, c.name, u.scale ? u.preset : "given", u.scale);
      const bool want_grid = in_grid && ((u.preset == "severe" && u.scale == 8) || (u.preset == "moderate" && u.scale == 4));
      if (done.count(k) && !want_grid) {
        progress.advance();
        continue;
      }
      if (!loaded) l = load_case(m, root, c), loaded = true;
      auto r = run_unit(m, c, l, u);
      if (!done.count(k)) {
        for (const auto& row : r.rows) part << csv_line(row) << "\n";
        part.flush();
        rows.insert(rows.end(), r.rows.begin(), r.rows.end());
        ++computed;
      }
      if (want_grid) kept[u.preset] = std::move(r);
      progress.advance();
    }
    for (const auto& gu : grid_units) {
      if (!kept.count(gu.preset)) continue;
      auto& r = kept[gu.preset];
      auto small = torch::nn::functional::interpolate(
          r.degraded_small, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{kSize, kSize}).mode(torch::kNearest));
      grid_rows.push_back({small, r.out["bicubic"], r.out["realesrgan"], r.out["blind"], r.out["ref3"], l.gt, l.refs[0].narrow(0, 0, 1)});
    }
  }
  progress.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  part.close();

  write_file_atomically(out + "/ref_fr_bench.csv", csv_text(rows));
  ReportInfo info;
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  info.command = cmd;
  info.machine = machine_text(m.device);
  info.weights = m.info;
  info.identity_loss = m.identity_loss;
  info.date = now_utc();
  info.seconds = secs;
  info.faces = computed;
  info.resamples = resamples;
  if (!grid_rows.empty()) {
    fs::create_directories(fs::path(grid).parent_path());
    write_image(grid, grid_image(grid_rows));
    info.grid_rel = fs::relative(fs::absolute(grid), fs::absolute(out)).generic_string();
    info.grid_credit = "Faces: Face Research Lab London Set, L. DeBruine and B. Jones, CC BY 4.0 (held-out people only).";
  }
  write_file_atomically(out + "/ref_fr_bench.md", report_markdown(rows, info));
  fs::remove(partial);
  std::printf("bench_ref_fr: %lld units (face × condition, all methods) in %.1f s (%.2f s each) on %s\n%s/ref_fr_bench.md, ref_fr_bench.csv%s\n",
              static_cast<long long>(computed), secs, computed ? secs / double(computed) : 0.0, info.machine.c_str(), out.c_str(),
              grid_rows.empty() ? "" : (", " + grid).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_ref_fr: %s\n", e.what());
  return 1;
}
