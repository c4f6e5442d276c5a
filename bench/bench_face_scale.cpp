// Issue #19, "face scale": does the face code help the scene restorer for faces of every size a
// photo has? For each held-out photo (CelebA test identities' whole scenes, never trained on) the
// clean photo is rescaled so that its largest face measures S px AFTER a ×4 degradation (S = 16,
// 32, 64, 128), a window around the face is degraded (preset, fixed seed per photo/size/preset), and
// the window is restored ×4 three ways on the same input:
//   blind  — the blind scene restorer (null tokens; the control, same architecture and training)
//   fixed  — code from FaDeX v1: the degraded face cut at 32 px whatever its size (the old geometry)
//   native — code from the face-size FaDeX: the degraded face cut at its own side (up to 128)
// The restored face that FaDeX compares with is Ref-FR's blind output (as in the pipeline without
// references). Scores on the whole window against the clean one: PSNR and LPIPS (LPIPS-squeeze is
// also the restorer's training loss; PSNR is not). Paired bootstrap 95 % CIs of (method − blind).
//
//   bench_face_scale --prepare [--photos DIR] -o faces.tsv      (CPU, dlib: largest face's 5 points)
//   bench_face_scale --faces faces.tsv [--photos DIR] [--fadex-native F] [--models weights]
//                    [--sizes 16,32,64,128] [--presets moderate,severe] [--limit N] [--device cuda] -o DIR
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "face2scene/degrade.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/metrics.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/pipeline.hpp"
#include "oracle_bench_util.hpp"

using namespace face2scene;
using f2s_bench::Args;
namespace fs = std::filesystem;

namespace {
std::vector<int64_t> parse_ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) out.push_back(std::stoll(tok));
  return out;
}
std::vector<std::string> parse_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) out.push_back(tok);
  return out;
}

struct PhotoFace {
  std::string file;  // relative to the photo root
  FivePoints points;
};

std::vector<PhotoFace> read_faces(const std::string& tsv) {
  std::ifstream in(tsv);
  if (!in) throw IoError(tsv + ": cannot read the face list (make it with --prepare)");
  std::vector<PhotoFace> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    PhotoFace f;
    ls >> f.file;
    for (auto& p : f.points) ls >> p.x >> p.y;
    if (!ls) throw FormatError(tsv + ": bad line '" + line + "'");
    out.push_back(f);
  }
  return out;
}

// The largest face of every photo under `root` (recursive), with its 5 landmarks.
int prepare(const std::string& root, const std::string& out_tsv) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    auto ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".png" || ext == ".jpeg")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  DetectOptions d;
  d.min_face = 64;  // the photos' faces are large (CelebA kept faces with boxes >= 100 px)
  d.ssd = "off";    // the faces of the published table
  FaceDetector detector(d);
  std::ofstream out(out_tsv + ".tmp");
  out << "# file, the largest face's 5 points (x y) in the photo: bench_face_scale --prepare\n";
  int kept = 0;
  for (const auto& f : files) {
    const Image im = read_image(f);
    auto faces = detector.detect(im);
    if (faces.empty() || !faces[0].has_points5) {
      std::fprintf(stderr, "  %s: no face with landmarks, skipped\n", f.c_str());
      continue;
    }
    out << fs::relative(f, root).string();
    for (const auto& p : faces[0].points5) out << ' ' << p.x << ' ' << p.y;
    out << '\n';
    ++kept;
  }
  out.close();
  fs::rename(out_tsv + ".tmp", out_tsv);
  std::printf("bench_face_scale: %d of %zu photos with a face -> %s\n", kept, files.size(), out_tsv.c_str());
  return 0;
}

// 8-bit rounding, as a saved picture would be.
torch::Tensor q8(const torch::Tensor& x) { return x.clamp(0, 1).mul(255).round().div(255); }
double psnr_of(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (q8(a) - q8(b)).pow(2).mean().item<double>();
  return 10 * std::log10(1.0 / std::max(mse, 1e-12));
}

struct Cell {
  std::vector<double> psnr, lpips;
};
}  // namespace

int main(int argc, char** argv) try {
  const Args args(argc, argv);
  const std::string photos = args.get("--photos", f2s_bench::data_dir() + "/faces/celeba_id/test");
  const std::string out = args.get("-o", "");
  if (out.empty()) throw ArgumentError("-o is required");
  if (args.has("--prepare")) return prepare(photos, out);

  const torch::Device device = parse_device(args.get("--device", "cpu"));
  set_num_threads(0);
  const std::string models = args.get("--models", "weights");
  const std::string native_file = args.get("--fadex-native", models + "/fadex_sizes.safetensors");
  const auto sizes = parse_ints(args.get("--sizes", "16,32,64,128"));
  const auto presets = parse_list(args.get("--presets", "moderate,severe"));
  const int limit = std::stoi(args.get("--limit", "0"));
  auto faces = read_faces(args.get("--faces", "bench/face_scale_faces.tsv"));
  if (limit > 0 && int(faces.size()) > limit) faces.resize(size_t(limit));
  fs::create_directories(out);

  OracleModelPaths paths = OracleModelPaths::locate(models);
  OracleOptions oo;
  oo.device = device;
  oo.tiles = TileOptions{0, 0, 0};  // whole windows: at most 320² inputs
  const OracleRestorer fixed(paths, oo);
  OracleModelPaths native_paths = paths;
  native_paths.fadex = native_file;
  const OracleRestorer native(native_paths, oo);
  const OracleRestorer blind(paths, oo, true);
  if (fixed.fadex_native_geometry()) throw ArgumentError(paths.fadex + ": expected the fixed-geometry FaDeX v1");
  if (!native.fadex_native_geometry()) throw ArgumentError(native_file + ": not a face-size (native) FaDeX");
  FaceRestorerLoadOptions fo;
  fo.device = device;
  const auto ref_fr = load_face_restorer(models + "/ref_fr_blind.safetensors", fo);
  const metrics::Lpips lpips(args.get("--lpips-weights", f2s_bench::data_dir() + "/weights"), device);
  const FaceGeometry geometry;
  const auto null_tokens = blind.tokens(torch::Tensor());

  std::ofstream csv(out + "/face_scale.csv");
  csv << "photo,face_px,preset,method,psnr,lpips\n";
  std::map<std::string, Cell> cells;  // "<size>/<preset>/<method>"
  const auto t_start = std::chrono::steady_clock::now();
  int done = 0;
  for (size_t pi = 0; pi < faces.size(); ++pi) {
    const auto& pf = faces[pi];
    const auto photo = image_to_tensor(read_image(photos + "/" + pf.file).to_rgb().with_bit_depth(8), device).unsqueeze(0);
    const int64_t H = photo.size(2), W = photo.size(3);
    const auto aligned = align_face(photo[0], pf.points, 128);
    const double native_clean = FaceGeometry::native_side(aligned.transform, 128);
    for (const int64_t S : sizes) {
      // The clean photo at the scale where the face's FFHQ square is 4S px: after ×4, S px.
      const double f = 4.0 * double(S) / native_clean;
      const int64_t h = std::max<int64_t>(16, std::llround(H * f)), w = std::max<int64_t>(16, std::llround(W * f));
      const double fy = double(h) / double(H), fx = double(w) / double(W);
      const auto big = resize_images(photo, h, w, ResizeMode::kBicubic).clamp(0, 1);
      // A window around the face: 2.5 face sides, 64..320 px after ×4, multiples of 4 there.
      const int64_t want = std::clamp<int64_t>(int64_t(std::llround(2.5 * double(S) / 4.0)) * 4, 64, 320);
      const int64_t ch = std::min<int64_t>(4 * want, h / 16 * 16), cw = std::min<int64_t>(4 * want, w / 16 * 16);
      if (ch < 4 * 32 || cw < 4 * 32) continue;  // the photo is too small for this face size
      double cx = 0, cy = 0;
      for (const auto& p : pf.points) {
        cx += ((p.x + 0.5) * fx - 0.5) / 5;
        cy += ((p.y + 0.5) * fy - 0.5) / 5;
      }
      const int64_t x0 = std::clamp<int64_t>(std::llround(cx - cw / 2.0), 0, w - cw);
      const int64_t y0 = std::clamp<int64_t>(std::llround(cy - ch / 2.0), 0, h - ch);
      const auto clean = q8(big.slice(2, y0, y0 + ch).slice(3, x0, x0 + cw)).contiguous();
      FivePoints lq_points;  // the face's points in the degraded window (pixel centres)
      for (size_t k = 0; k < 5; ++k) {
        const auto& p = pf.points[k];
        lq_points[k].x = float((((p.x + 0.5) * fx - 0.5) - double(x0) + 0.5) / 4.0 - 0.5);
        lq_points[k].y = float((((p.y + 0.5) * fy - 0.5) - double(y0) + 0.5) / 4.0 - 0.5);
      }
      for (const auto& preset : presets) {
        DegradationSampler sampler(preset, mix_seed(1, mix_seed(pi, mix_seed(uint64_t(S), std::hash<std::string>{}(preset)))));
        sampler.set_out_scale(4.0f);
        const auto params = sampler.sample();
        const auto lq = apply_degradation(clean, params);
        // Ref-FR's blind face, cut as the pipeline cuts it (at most ref_fr_max_cut, then bicubic to 128).
        const auto a_lq = align_face(lq[0], lq_points, 128);
        const double native_lq = FaceGeometry::native_side(a_lq.transform, 128);
        const int64_t cut = std::max<int64_t>(8, std::llround(std::min<double>(native_lq, double(geometry.ref_fr_max_cut))));
        auto face_in = align_face(lq[0], rescale_aligned(a_lq.transform, 128, cut), int(cut)).image.unsqueeze(0);
        face_in = resize_images(face_in, 128, 128, ResizeMode::kBicubic).clamp(0, 1);
        const auto hq = ref_fr->restore(face_in, torch::Tensor()).to(device);
        auto code_tokens = [&](const OracleRestorer& r, bool native_geometry) {
          const int64_t L = geometry.fadex_cut(native_lq, 4, native_geometry);
          auto face_lq = align_face(lq[0], rescale_aligned(a_lq.transform, 128, L), int(L)).image.unsqueeze(0);
          return r.tokens(r.code_map(face_lq, hq));
        };
        const std::vector<std::pair<std::string, torch::Tensor>> outs = {
            {"blind", blind.restore(lq, null_tokens, 4)},
            {"fixed", fixed.restore(lq, code_tokens(fixed, false), 4)},
            {"native", native.restore(lq, code_tokens(native, true), 4)},
        };
        const auto ref = clean.to(torch::kCPU);
        for (const auto& [method, y] : outs) {
          const double p = psnr_of(y, ref);
          const double l = lpips.forward(q8(y).to(device), clean).item<double>();
          csv << pf.file << ',' << S << ',' << preset << ',' << method << ',' << p << ',' << l << '\n';
          auto& c = cells[std::to_string(S) + "/" + preset + "/" + method];
          c.psnr.push_back(p);
          c.lpips.push_back(l);
        }
      }
    }
    ++done;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    std::fprintf(stderr, "\r  %d/%zu photos, %.0f s", done, faces.size(), el);
  }
  std::fprintf(stderr, "\n");
  csv.close();

  // The table: per face size and preset, the blind score and each code's paired difference.
  std::ofstream md(out + "/face_scale.md");
  md << "| face in the degraded photo | preset | n | blind PSNR / LPIPS | fixed (v1, 32-px cut) − blind: ΔPSNR [95 % CI] | "
        "ΔLPIPS [95 % CI] | native (face-size FaDeX) − blind: ΔPSNR [95 % CI] | ΔLPIPS [95 % CI] |\n";
  md << "|---|---|---|---|---|---|---|---|\n";
  char buf[512];
  for (const int64_t S : sizes) {
    for (const auto& preset : presets) {
      const std::string k = std::to_string(S) + "/" + preset + "/";
      const auto& b = cells[k + "blind"];
      if (b.psnr.empty()) continue;
      std::snprintf(buf, sizeof buf, "| %lld px | %s | %zu | %.2f / %.4f |", static_cast<long long>(S), preset.c_str(),
                    b.psnr.size(), metrics::bootstrap_mean_ci(b.psnr).mean, metrics::bootstrap_mean_ci(b.lpips).mean);
      md << buf;
      for (const char* m : {"fixed", "native"}) {
        const auto& c = cells[k + m];
        const auto dp = metrics::paired_bootstrap_ci(c.psnr, b.psnr), dl = metrics::paired_bootstrap_ci(c.lpips, b.lpips);
        std::snprintf(buf, sizeof buf, " %+.3f [%+.3f, %+.3f] | %+.4f [%+.4f, %+.4f] |", dp.mean, dp.lo, dp.hi, dl.mean,
                      dl.lo, dl.hi);
        md << buf;
      }
      md << '\n';
    }
  }
  md.close();
  std::printf("%s", read_file(out + "/face_scale.md").c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_face_scale: %s\n", e.what());
  return 1;
}
