// InScene-style benchmark of issue #20: whole photos of people restored by bicubic, Real-ESRGAN
// (our ports of x4plus and general-x4v3), the peer binary upscayl-bin, the GFPGAN-style "faces
// only" pipeline (Real-ESRGAN x4plus scene + Ref-FR faces pasted) and face2scene (blind, Ref-FR faces
// without references, with references), measured in one run on the same inputs; tables in the
// paper's layout written to Markdown (docs/BENCHMARKS.md).
//
//   bench_inscene --write-split bench/inscene_split.tsv [--data ../shared/data]
//   bench_inscene --pack DIR [--data ../shared/data] [--sets S,...] [--limit N] [--cases a,b] [--methods M,...]
//   bench_inscene --sets S,... --methods M,... -o DIR [--data DIR] [--conds mild4,...] [--limit N] [--cases a,b]
//                 [--device cpu|cuda] [--models weights] [--md docs/BENCHMARKS.md] [--docs-images docs/images]
//                 [--note docs/benchmarks_note.md] [--upscayl-bin F --upscayl-models DIR] [--report-only]
//
// Sets: celeba, lfw, people_hq, real (bench/inscene_bench_util.hpp says which files). Every input's
// sha256 must be in bench/inscene_split.tsv, which --write-split makes from the held-out lists
// (CelebA: test identities of bench/ref_fr_split.tsv; LFW and people_hq: bench/heldout.sha256, the
// list the trainer refuses); a file that is not is refused.
// The run always reads a pack (DIR/manifest.tsv): ground truths prepared once (alpha dropped, long
// side <= --max-side, cropped to a multiple of 4, JPEG q95), references and real photos copied
// byte for byte (real photos over --real-max-side area-downscaled, PNG), DIR/checksums.sha256 for
// what was written. Without a pack in --data, one is made in <out>/pack first. The GPU machine gets
// the pack (scripts/gpu/bench_inscene.sh).
// Output: <out>/per_image.csv (one row per image, condition and method; appended as measured, so a
// rerun resumes), <out>/outputs/<set>/<cond>/<method>/<case>.png (+ .kid.pt features), grids in
// <out>/grids/, the report <out>/BENCHMARKS.md (and --md PATH), <out>/commands.txt.
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>

#include "face2scene/identity.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "inscene_bench_util.hpp"
#include "oracle_bench_util.hpp"

using namespace face2scene;
using namespace f2s_isb;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ','))
    if (!cur.empty()) out.push_back(cur);
  return out;
}


torch::Tensor quantise(const torch::Tensor& x) { return x.to(torch::kCPU, torch::kFloat32).clamp(0, 1).mul(255).round().div(255); }
torch::Tensor load_rgb(const std::string& path) { return image_to_tensor(read_image(path), torch::kCPU, torch::kFloat32, true); }

// ---- the split --------------------------------------------------------------------------------
std::set<std::string> read_sums(const std::string& path) {
  std::set<std::string> s;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (line.size() >= 64 && line[0] != '#') s.insert(line.substr(0, 64));
  return s;
}

int write_split(const std::string& root, const std::string& path) {
  const std::string repo = F2S_REPO_DIR;
  const auto heldout = read_sums(repo + "/bench/heldout.sha256");
  std::set<std::string> celeba_test;
  {
    std::istringstream in(read_file(repo + "/bench/ref_fr_split.tsv"));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("test\tceleba_", 0) == 0) celeba_test.insert(line.substr(12, 5));
  }
  std::vector<Case> all;
  for (const auto& s : all_sets()) {
    for (const auto& c : cases_from_data(root, s)) {
      // The guard: CelebA identities must be Ref-FR test identities; LFW and people_hq files must
      // be on the list the trainers refuse. real_degraded is on it too (never trained on).
      if (s == "celeba" && !celeba_test.count(c.name.substr(0, 5)))
        throw Error(c.name + ": not a test identity of bench/ref_fr_split.tsv");
      if (s != "celeba")
        for (const auto& f : std::vector<std::string>{c.gt, c.lq})
          if (!f.empty() && !heldout.count(sha256_hex(read_file(root + "/" + f))))
            throw Error(f + ": not in bench/heldout.sha256; it may have been trained on");
      all.push_back(c);
    }
  }
  write_file_atomically(path, split_text(all, root));
  std::printf("%zu cases written to %s\n", all.size(), path.c_str());
  return 0;
}

// ---- degradation and detections --------------------------------------------------------------------
// The degraded input of a case under a condition: a pure function of the ground truth and the
// names (seeded per set/case/condition; libjpeg on every device), so both machines make the same.
torch::Tensor degrade_unit(const torch::Tensor& gt, const std::string& set, const std::string& name, const std::string& cond) {
  const int scale = cond.back() == '1' ? 1 : 4;
  DegradationSampler sampler(cond.substr(0, cond.size() - 1), mix_seed(20261206, fnv1a(set + "/" + name + "/" + cond)));
  sampler.set_out_scale(4);
  sampler.set_keep_size(scale == 1);
  ApplyOptions ao;
  ao.jpeg = JpegMode::kCodec;
  return quantise(apply_degradation(gt.unsqueeze(0), sampler.sample(), ao)[0]);
}
std::string pixels_sha(const torch::Tensor& x) {
  const Image im = tensor_to_image(x);
  return sha256_hex(std::string(reinterpret_cast<const char*>(im.data.data()), im.data.size() * sizeof(uint16_t)));
}

// faces.tsv of a packed case: key (gt, ref<i>, a condition, given, given_x4) \t sha256 of the
// pixels it was detected on \t faces "x0 y0 x1 y1 score has5 10×points5" separated by ';'. The GPU
// build has no dlib, so the pack carries the detector's answers (made here by the same
// FaceDetector the pipeline uses) and the run checks that it sees the same pixels.
using FaceMap = std::map<std::string, std::pair<std::string, std::vector<DetectedFace>>>;
std::string faces_line(const std::string& key, const std::string& sha, const std::vector<DetectedFace>& faces) {
  std::ostringstream s;
  s.precision(9);
  s << key << "\t" << sha << "\t";
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& f = faces[i];
    s << (i ? ";" : "") << f.box.x0 << " " << f.box.y0 << " " << f.box.x1 << " " << f.box.y1 << " " << f.score << " " << int(f.has_points5);
    for (const auto& p : f.points5) s << " " << p.x << " " << p.y;
  }
  return s.str() + "\n";
}
FaceMap read_faces(const std::string& path) {
  FaceMap m;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::vector<DetectedFace> faces;
    std::istringstream fs(line.substr(b + 1));
    std::string one;
    while (std::getline(fs, one, ';')) {
      std::istringstream v(one);
      DetectedFace f;
      int has = 0;
      v >> f.box.x0 >> f.box.y0 >> f.box.x1 >> f.box.y1 >> f.score >> has;
      f.has_points5 = has != 0;
      for (auto& p : f.points5) v >> p.x >> p.y;
      f.detector = "hog (packed)";
      if (v) faces.push_back(f);
    }
    m[line.substr(0, a)] = {line.substr(a + 1, b - a - 1), faces};
  }
  return m;
}

// ---- the pack ---------------------------------------------------------------------------------
struct Prep {
  int max_side = 512, real_max_side = 512;
};

// Long side <= max_side (antialiased bicubic), centre-cropped to a multiple of 4, 8-bit RGB.
torch::Tensor prepare_gt(const torch::Tensor& x, int max_side) {
  auto y = x.unsqueeze(0);
  const int64_t h = y.size(2), w = y.size(3), l = std::max(h, w);
  if (l > max_side) {
    const double s = double(max_side) / double(l);
    y = resize_images(y, std::max<int64_t>(4, std::llround(double(h) * s)), std::max<int64_t>(4, std::llround(double(w) * s)),
                      ResizeMode::kBicubic);
  }
  const int64_t H = y.size(2) / 4 * 4, W = y.size(3) / 4 * 4;
  y = y.slice(2, (y.size(2) - H) / 2, (y.size(2) - H) / 2 + H).slice(3, (y.size(3) - W) / 2, (y.size(3) - W) / 2 + W);
  return quantise(y[0]);
}

std::string manifest_line(const Case& c) {
  std::string refs;
  for (size_t i = 0; i < c.refs.size(); ++i) refs += (i ? "," : "") + c.refs[i];
  return c.set + "\t" + c.name + "\t" + c.gt + "\t" + c.lq + "\t" + refs + "\n";
}
std::vector<Case> read_manifest(const std::string& path) {
  std::vector<Case> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::string cur;
    std::istringstream ls(line);
    while (std::getline(ls, cur, '\t')) f.push_back(cur);
    while (f.size() < 5) f.push_back("");
    out.push_back({f[0], f[1], f[2], f[3], split_list(f[4])});
  }
  return out;
}

std::vector<Case> select(std::vector<Case> cases, const std::vector<std::string>& sets, int limit, const std::vector<std::string>& names) {
  std::vector<Case> out;
  std::map<std::string, int> per_set;
  for (auto& c : cases) {
    if (std::find(sets.begin(), sets.end(), c.set) == sets.end()) continue;
    if (!names.empty() && std::find(names.begin(), names.end(), c.name) == names.end()) continue;
    if (limit > 0 && per_set[c.set] >= limit) continue;
    ++per_set[c.set];
    out.push_back(c);
  }
  return out;
}

// Copies/prepares the chosen cases into dir (sources checked against the split), plus the weights
// the chosen methods need. Returns the packed cases.
std::vector<Case> make_pack(const std::string& root, const std::string& dir, const std::vector<Case>& cases, const Prep& prep,
                            const std::vector<std::string>& meths, const std::vector<std::string>& conds, bool with_weights) {
  const FaceDetector det;  // the pipeline's default detector (Face2SceneConfig::detect)
  Progress progress("bench_inscene pack", int64_t(cases.size()));
  const auto split = read_split(std::string(F2S_REPO_DIR) + "/bench/inscene_split.tsv");
  std::set<std::string> allowed;
  for (const auto& e : split) allowed.insert(e.set + "/" + e.name + "/" + e.path + "/" + e.sha);
  fs::create_directories(dir);
  std::string manifest = "# bench_inscene pack: set, case, ground truth, degraded input, references (paths in this folder)\n", sums;
  std::vector<Case> out;
  // A pack grows: cases already in it are kept as they are.
  std::set<std::string> have;
  if (fs::exists(dir + "/manifest.tsv")) {
    for (const auto& c : read_manifest(dir + "/manifest.tsv")) have.insert(c.set + "/" + c.name), manifest += manifest_line(c), out.push_back(c);
    sums = read_file(dir + "/checksums.sha256");
  }
  auto checked = [&](const Case& c, const std::string& p) {
    const std::string bytes = read_file(root + "/" + p);
    if (!allowed.count(c.set + "/" + c.name + "/" + p + "/" + sha256_hex(bytes)))
      throw Error(root + "/" + p + ": not in bench/inscene_split.tsv with this content; refusing to benchmark on it");
    return bytes;
  };
  auto put = [&](const std::string& rel_out, const std::string& bytes) {
    fs::create_directories(fs::path(dir + "/" + rel_out).parent_path());
    write_file_atomically(dir + "/" + rel_out, bytes);
    sums += sha256_hex(bytes) + "  " + rel_out + "\n";
  };
  for (const auto& c : cases) {
    if (have.count(c.set + "/" + c.name)) {
      progress.advance();
      continue;
    }
    Case p{c.set, c.name, "", "", {}};
    const std::string base = c.set + "/" + c.name + "/";
    std::string faces;
    auto detect = [&](const std::string& key, const torch::Tensor& x) { faces += faces_line(key, pixels_sha(x), det.detect(tensor_to_image(x))); };
    if (!c.gt.empty()) {
      const auto bytes = checked(c, c.gt);
      auto gt = prepare_gt(image_to_tensor(decode_image(bytes, c.gt), torch::kCPU, torch::kFloat32, true), prep.max_side);
      p.gt = base + "gt.jpg";
      const std::string enc = encode_jpeg(tensor_to_image(gt), 95);
      put(p.gt, enc);
      const auto g = image_to_tensor(decode_image(enc, p.gt), torch::kCPU, torch::kFloat32, true);  // what the run reads
      detect("gt", g);
      for (const auto& cond : conds) detect(cond, degrade_unit(g, c.set, c.name, cond));
    }
    if (!c.lq.empty()) {
      auto bytes = checked(c, c.lq);
      const Image im = decode_image(bytes, c.lq);
      if (std::max(im.width, im.height) > prep.real_max_side || im.has_alpha() || im.channels != 3) {
        auto x = image_to_tensor(im, torch::kCPU, torch::kFloat32, true).unsqueeze(0);
        const double s = std::min(1.0, double(prep.real_max_side) / double(std::max(im.width, im.height)));
        if (s < 1) x = resize_images(x, std::llround(im.height * s), std::llround(im.width * s), ResizeMode::kArea);
        p.lq = base + "lq.png";
        put(p.lq, encode_png(tensor_to_image(quantise(x[0]))));
      } else {
        p.lq = base + "lq" + fs::path(c.lq).extension().string();
        put(p.lq, bytes);
      }
      const auto l = load_rgb(dir + "/" + p.lq);
      detect("given", l);
      detect("given_x4", quantise(resize_images(l.unsqueeze(0), l.size(1) * 4, l.size(2) * 4, ResizeMode::kBicubic)[0]));
    }
    for (size_t i = 0; i < c.refs.size(); ++i) {
      p.refs.push_back(base + "refs/ref" + std::to_string(i) + fs::path(c.refs[i]).extension().string());
      put(p.refs.back(), checked(c, c.refs[i]));
      detect("ref" + std::to_string(i), load_rgb(dir + "/" + p.refs.back()));
    }
    write_file_atomically(dir + "/" + base + "faces.tsv", faces);
    progress.advance();
    manifest += manifest_line(p);
    out.push_back(p);
  }
  progress.finish();
  write_file_atomically(dir + "/manifest.tsv", manifest);
  write_file_atomically(dir + "/checksums.sha256", sums);
  if (with_weights && !fs::exists(dir + "/weights/lpips_squeeze.safetensors")) {
    const std::string w = root + "/weights";
    fs::create_directories(dir + "/weights/niqe");
    fs::create_directories(dir + "/weights/brisque");
    metrics::Lpips(w).export_safetensors(dir + "/weights/lpips_squeeze.safetensors");
    fs::copy_file(w + "/niqe/niqe_pris_params.npz", dir + "/weights/niqe/niqe_pris_params.npz", fs::copy_options::overwrite_existing);
    for (const auto& e : fs::directory_iterator(w + "/brisque"))
      fs::copy_file(e.path(), dir + "/weights/brisque/" + e.path().filename().string(), fs::copy_options::overwrite_existing);
    auto want = [&](const std::string& m) { return std::find(meths.begin(), meths.end(), m) != meths.end(); };
    if (want("esrgan-x4plus") || want("faces-only"))
      fs::copy_file(realesrgan_weights_path(RealEsrganModel::kX4Plus), dir + "/weights/" + weights_filename(RealEsrganModel::kX4Plus),
                    fs::copy_options::overwrite_existing);
    if (want("esrgan-x4v3"))
      fs::copy_file(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3), dir + "/weights/" + weights_filename(RealEsrganModel::kGeneralX4V3),
                    fs::copy_options::overwrite_existing);
    auto st = load_safetensors(default_faceapi_weights_path());  // fp16: half the size; the loader casts back
    for (auto& [k, v] : st.tensors)
      if (v.is_floating_point()) v = v.to(torch::kHalf);
    save_safetensors(dir + "/weights/" + fs::path(default_faceapi_weights_path()).filename().string(), st.tensors, st.metadata);
  }
  return out;
}

}  // namespace

#include "inscene_run.hpp"
#include "inscene_report.hpp"

int main(int argc, char** argv) try {
  const f2s_bench::Args args(argc, argv);
  if (args.has("--help") || args.has("-h")) {
    std::printf("usage: see the header of bench/bench_inscene.cpp\n");
    return 0;
  }
  set_num_threads(std::stoi(args.get("--threads", "0")));
  set_progress_sink(make_console_progress_sink());
  const std::string root = args.get("--data", f2s_bench::data_dir());
  if (args.has("--write-split")) return write_split(root, args.get("--write-split", ""));
  auto sets = split_list(args.get("--sets", "celeba,lfw,people_hq,real"));
  for (const auto& s : sets)
    if (std::find(all_sets().begin(), all_sets().end(), s) == all_sets().end())
      throw ArgumentError("--sets: unknown set '" + s + "' (celeba, lfw, people_hq, real)");
  auto meths = split_list(args.get("--methods", "bicubic,esrgan-x4plus,esrgan-x4v3,faces-only,ours-blind,ours-norefs,ours-refs"));
  for (const auto& m : meths)
    if (std::none_of(methods().begin(), methods().end(), [&](const MethodInfo& x) { return x.key == m; }))
      throw ArgumentError("--methods: unknown method '" + m + "'");
  const int limit = std::stoi(args.get("--limit", "0"));
  const auto names = split_list(args.get("--cases", ""));
  Prep prep;
  prep.max_side = std::stoi(args.get("--max-side", "512"));
  prep.real_max_side = std::stoi(args.get("--real-max-side", "512"));
  const auto conds = split_list(args.get("--conds", "mild4,moderate4,severe4,mild1,moderate1,severe1"));
  for (const auto& c : conds)
    if (!std::set<std::string>{"mild4", "moderate4", "severe4", "mild1", "moderate1", "severe1"}.count(c))
      throw ArgumentError("--conds: unknown condition '" + c + "' (mild4, moderate4, severe4, mild1, moderate1, severe1)");
  if (args.has("--pack")) {
    const auto split = read_split(std::string(F2S_REPO_DIR) + "/bench/inscene_split.tsv");
    const auto cases = make_pack(root, args.get("--pack", ""), select(cases_from_split(split, sets), sets, limit, names), prep, meths, conds, true);
    int64_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(args.get("--pack", "")))
      if (e.is_regular_file()) total += int64_t(e.file_size());
    std::printf("packed %zu cases and the weights into %s: %.1f MB\n", cases.size(), args.get("--pack", "").c_str(), double(total) / 1e6);
    return 0;
  }
  const std::string out = args.get("-o", "out/inscene");
  fs::create_directories(out);
  RunConfig rc;
  rc.out = out;
  rc.device = parse_device(args.get("--device", "cpu"));
  rc.models = args.get("--models", "weights");
  rc.resamples = std::stoi(args.get("--resamples", "2000"));
  rc.upscayl_bin = args.get("--upscayl-bin", "");
  rc.upscayl_models = args.get("--upscayl-models", "");
  rc.md = args.get("--md", "");
  rc.docs_images = args.get("--docs-images", "");
  rc.note = args.get("--note", "");  // a closing note (prose, no numbers) appended to the report
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  rc.command = cmd;
  std::string data = root;
  if (!fs::exists(root + "/manifest.tsv")) {  // shared data: pack the chosen cases first
    data = out + "/pack";
    const auto split = read_split(std::string(F2S_REPO_DIR) + "/bench/inscene_split.tsv");
    auto chosen = select(cases_from_split(split, sets), sets, limit, names);
    make_pack(root, data, chosen, prep, {"esrgan-x4plus", "esrgan-x4v3"}, conds, true);  // adds what is new
  }
  rc.data = data;
  auto cases = select(read_manifest(data + "/manifest.tsv"), sets, limit, names);
  rc.conds = conds;
  rc.methods = meths;
  if (!args.has("--report-only")) run_cases(rc, cases);
  write_report(rc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_inscene: %s\n", e.what());
  return 1;
}
