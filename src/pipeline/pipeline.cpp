// The Face2Scene pipeline (see pipeline.hpp and docs/pipeline.md): detect → landmarks → align →
// match to references → Ref-FR → FaDeX per face pair → one code → MapNet → scene restorer →
// paste the restored faces back.
#include "face2scene/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <set>

#include <ATen/record_function.h>
#include <torch/cuda.h>

#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"
#include "paste_stage.hpp"

namespace face2scene {
namespace F = torch::nn::functional;
namespace fs = std::filesystem;
using namespace pipeline_detail;  // the paste stage (paste_stage.cpp)

struct Face2Scene::Models {
  std::unique_ptr<FaceDetector> detector;
  std::unique_ptr<FaceDescriptor> descriptor;
  std::unique_ptr<FaceRestorer> ref_fr, ref_fr_blind;
  std::unique_ptr<OracleRestorer> scene, scene_blind;
  std::string ref_fr_path, ref_fr_blind_path, fadex_path, scene_path, scene_blind_path;
};

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One face on its way through the pipeline.
struct Work {
  size_t result = 0;             // index into Face2SceneResult::faces
  Similarity t;                  // photo → aligned at the face size
  double native = 0;             // FFHQ square side in the photo
  torch::Tensor lq;              // [3,S,S] Ref-FR input
  torch::Tensor restored;        // [3,S,S] Ref-FR output
  torch::Tensor before, after;   // descriptors [128]
  int person = -1;               // index into ReferenceSet::people
  std::vector<size_t> refs;      // photos of that person used
};

// Face2SceneOptions::blind_face_consistency / ref_face_consistency as a side in pixels: K × the
// detail the input holds of the face: its square side in the input photo, divided by
// `detail_divisor` (FaceGeometry::input_detail_divisor: 4 at ×1, else 1).
int64_t consistency_side(const Work& w, const Face2SceneOptions& o, double detail_divisor) {
  return std::llround((w.person < 0 ? o.blind_face_consistency : o.ref_face_consistency) * w.native / detail_divisor);
}

// Face2SceneOptions::blind_face_fidelity / ref_face_fidelity: (1 − w) × face + w × the input face
// (the photo x's face at the output's scale `ps`; t maps the photo to the face's square).
torch::Tensor mix_input(const torch::Tensor& face, const Work& w, const Face2SceneOptions& o, const torch::Tensor& x,
                        const Similarity& t, double ps) {
  const double f = w.person < 0 ? o.blind_face_fidelity : o.ref_face_fidelity;
  if (f <= 0) return face;
  const auto in = input_face_at_scale(x, t, face.size(-1), ps, face.device()).to(face.scalar_type());
  return ((1 - f) * face + f * in).clamp(0, 1);
}


DegradationSummary weighted_summary(const std::vector<DegradationSummary>& s, const std::vector<double>& w) {
  std::vector<float> acc(DegradationSummary::kSize, 0.f);
  double total = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto v = s[i].to_vector();
    for (int k = 0; k < DegradationSummary::kSize; ++k) acc[size_t(k)] += static_cast<float>(w[i]) * v[size_t(k)];
    total += w[i];
  }
  for (auto& a : acc) a /= static_cast<float>(std::max(total, 1e-12));
  return DegradationSummary::from_vector(acc.data());
}

}  // namespace


Face2Scene::Face2Scene(const Face2SceneConfig& config) : config_(config), m_(std::make_unique<Models>()) {
  // Without dlib (the GPU build) the caller passes detections (Face2SceneOptions::faces).
  if (face_detection_available()) {
    DetectOptions d = config.detect;
    d.device = config.device;  // hog-torch (auto on a GPU) scans on the pipeline's device
    m_->detector = std::make_unique<FaceDetector>(d);
  } else {
    load_warnings_.push_back("no face detector in this build (dlib): faces must be given (Face2SceneOptions::faces)");
    log_warn(load_warnings_.back());
  }
  const std::string idw = config.identity_weights.empty() ? default_faceapi_weights_path() : config.identity_weights;
  if (FaceDescriptor::available(idw)) {
    m_->descriptor = std::make_unique<FaceDescriptor>(FaceDescriptor::load(idw, config.device));
  } else {
    load_warnings_.push_back("identity descriptor " + idw +
                             " not found (scripts/install_faceapi.sh): no reference matching, no identity distances");
    log_warn(load_warnings_.back());
  }
  // Ref-FR and the scene models live in the same weights folder.
  std::string dir = config.models_dir;
  OracleModelPaths paths;
  if (config.load_scene_restorer) {
    paths = OracleModelPaths::locate(config.models_dir);
    if (dir.empty()) dir = fs::path(paths.fadex).parent_path().string();
    const std::string sized = (fs::path(paths.fadex).parent_path() / "fadex_sizes.safetensors").string();
    if (!config.fadex.empty()) {
      if (!file_exists(config.fadex)) throw IoError(config.fadex + ": FaDeX weights not found");
      paths.fadex = config.fadex;
    } else if (file_exists(sized)) {
      paths.fadex = sized;
    }
  } else if (dir.empty()) {
    const char* env = std::getenv("F2S_MODELS");
    dir = env ? env : (file_exists("weights/ref_fr.safetensors") ? "weights" : cache_dir() + "/weights");
  }
  m_->ref_fr_path = config.ref_fr.empty() ? dir + "/ref_fr.safetensors" : config.ref_fr;
  m_->ref_fr_blind_path = config.ref_fr_blind.empty() ? dir + "/ref_fr_blind.safetensors" : config.ref_fr_blind;
  FaceRestorerLoadOptions fo{config.device, config.dtype};
  m_->ref_fr = load_face_restorer(m_->ref_fr_path, fo);
  if (file_exists(m_->ref_fr_blind_path)) {
    m_->ref_fr_blind = load_face_restorer(m_->ref_fr_blind_path, fo);
    if (m_->ref_fr_blind->size() != m_->ref_fr->size())
      throw FormatError(m_->ref_fr_blind_path + ": face size " + std::to_string(m_->ref_fr_blind->size()) +
                        " differs from " + m_->ref_fr_path + "'s " + std::to_string(m_->ref_fr->size()));
  } else {
    load_warnings_.push_back(m_->ref_fr_blind_path + " not found: faces without references use Ref-FR with none");
    log_warn(load_warnings_.back());
  }
  geometry_.face_size = m_->ref_fr->size();
  if (config.load_scene_restorer) {
    OracleOptions o;
    o.device = config.device;
    o.dtype = config.device.is_cuda() ? config.dtype : torch::kFloat32;
    o.tiles = config.tiles;
    o.realism = config.realism;
    m_->scene = std::make_unique<OracleRestorer>(paths, o, /*blind_model=*/false);
    m_->scene_blind = std::make_unique<OracleRestorer>(paths, o, /*blind_model=*/true);
    geometry_.fadex_hq = m_->scene->face_size();
    m_->fadex_path = paths.fadex;
    m_->scene_path = paths.restorer;
    m_->scene_blind_path = paths.restorer_blind;
    if (config.realism > 0) {  // the report names both files of an interpolated restorer
      const std::string r = " (realism " + std::to_string(config.realism).substr(0, 4) + " with ";
      m_->scene_path += r + paths.restorer_gan + ")";
      m_->scene_blind_path += r + paths.restorer_blind_gan + ")";
    }
  }
}

Face2Scene::~Face2Scene() = default;

std::vector<DetectedFace> Face2Scene::find_faces(const Image& image) const {
  if (image.width < geometry_.min_face || image.height < geometry_.min_face) return {};
  // A profiler scope of its own: a folder run calls this on background threads (hog-torch's
  // kernels then show as "detect" in a trace, where the profiler follows those threads).
  at::RecordFunction scope(at::RecordScope::USER_SCOPE);
  if (scope.isActive()) scope.before("f2s::detect");
  // HOG alone: the SSD runs in the second look, on the restored photo. In the first look it took
  // over faces the second look finds, with landmarks fitted on the blur, and joined the code: the
  // faces restored before got farther from the clean ones (docs/pipeline.md "SSD in the second look").
  return detector().detect(image, detector().options().min_face, false);
}

const FaceDetector& Face2Scene::detector() const {
  if (!m_->detector) throw Error("no face detector in this build (dlib)");
  return *m_->detector;
}
const FaceDescriptor* Face2Scene::descriptor() const { return m_->descriptor.get(); }

namespace {

// Descriptors of FFHQ-aligned faces [B,3,S,S] → [B,128] on the CPU.
torch::Tensor describe(const FaceDescriptor& net, const torch::Tensor& faces) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < faces.size(0); i += 32) {
    auto chunk = faces.slice(0, i, std::min<int64_t>(faces.size(0), i + 32)).to(net.device());
    out.push_back(net.embed(crop_for_descriptor(chunk)).to(torch::kCPU, torch::kFloat32));
  }
  return torch::cat(out);
}

float nearest(const torch::Tensor& rows, const torch::Tensor& d) {
  return (rows - d.unsqueeze(0)).norm(2, 1).min().item<float>();
}

// Greedy one-person-per-face matching (closest pairs first), as the face toolkit's match_faces,
// of the faces work[w0...] to the people not taken yet.
void match_people(std::vector<Work>& work, size_t w0, std::vector<FaceResult>& faces, const ReferenceSet& refs,
                  const std::vector<bool>& person_taken_in, float threshold) {
  struct Pair {
    float d;
    size_t w, p;
  };
  std::vector<Pair> pairs;
  std::vector<torch::Tensor> rows;
  for (const auto& p : refs.people) rows.push_back(p.descriptors());
  for (size_t i = w0; i < work.size(); ++i) {
    if (!work[i].before.defined()) continue;
    float best = 1e9f;
    for (size_t j = 0; j < refs.people.size(); ++j) {
      const float d = nearest(rows[j], work[i].before);
      best = std::min(best, d);
      if (work[i].person < 0) pairs.push_back({d, i, j});
    }
    if (faces[work[i].result].match_distance < 0) faces[work[i].result].match_distance = best;
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.d < b.d; });
  std::vector<bool> taken = person_taken_in;
  for (const auto& pr : pairs) {
    if (pr.d >= threshold) break;
    if (work[pr.w].person >= 0 || taken[pr.p]) continue;
    work[pr.w].person = static_cast<int>(pr.p);
    faces[work[pr.w].result].match_distance = pr.d;
    taken[pr.p] = true;
  }
}

// Faces found in the restored photo (scale s × the photo) that no face found before covers, in the
// photo's coordinates (pixel centres: p_photo = (p + 0.5) / s − 0.5). A face counts as found before
// when the boxes overlap by the detector's own rule (boxes_overlap).
std::vector<DetectedFace> new_faces_in_photo(std::vector<DetectedFace> found, double s, const std::vector<FaceResult>& known) {
  std::vector<DetectedFace> out;
  for (auto& f : found) {
    f.box = {f.box.x0 / float(s), f.box.y0 / float(s), f.box.x1 / float(s), f.box.y1 / float(s)};
    auto to_photo = [&](Point2f& p) {
      p.x = static_cast<float>((p.x + 0.5) / s - 0.5);
      p.y = static_cast<float>((p.y + 0.5) / s - 0.5);
    };
    for (auto& p : f.landmarks68) to_photo(p);
    for (auto& p : f.points5) to_photo(p);
    bool seen = false;
    for (const auto& k : known) seen = seen || boxes_overlap(f.box, k.box);
    if (!seen) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

Face2SceneResult Face2Scene::restore(const Image& image, const ReferenceSet& references,
                                     const Face2SceneOptions& options) const {
  const auto t_total = Clock::now();
  if (image.empty()) throw ArgumentError("restore: empty image");
  const int rscale = FaceGeometry::restorer_scale(options.scale);
  if (options.scene && !m_->scene) throw ArgumentError("restore: this Face2Scene was loaded without the scene restorer");
  if (options.max_faces < 0) throw ArgumentError("restore: max_faces must be >= 0");
  const int64_t S = geometry_.face_size;
  const int out_scale = options.scene ? options.scale : 1;
  Face2SceneResult res;
  res.output_scale = out_scale;
  auto warn = [&](const std::string& w) {
    log_warn(w);
    res.warnings.push_back(w);
  };
  const torch::Tensor x = image_to_tensor(image, torch::kCPU, torch::kFloat32, /*rgb=*/true);
  // Each stage is also a user scope for LibTorch's profiler ("f2s::scene", ...), so that a trace
  // (`restore --profile-trace`) attributes every kernel to its stage; free when nothing records.
  std::optional<at::RecordFunction> scope;
  std::string scope_name;
  auto stage = [&](const char* name, int done = 0, int total = 1) {
    if (options.on_progress) options.on_progress(name, done, total);
    if (scope_name == name) return;
    scope_name = name;
    scope.reset();
    scope.emplace(at::RecordScope::USER_SCOPE);
    if (scope->isActive()) scope->before("f2s::" + scope_name);
  };

  // ---- detect, landmarks (FaceDetector::detect runs both) ----
  stage("detect");
  auto t0 = Clock::now();
  std::vector<DetectedFace> detected;
  if (options.faces) detected = *options.faces;
  else detected = find_faces(image);
  res.timings.detect = since(t0);
  res.faces_detected = static_cast<int>(detected.size());

  // The face stages run twice: on the faces found in the photo, and (second look) on the faces
  // found only in the scene restorer's output. Each lambda works on the faces from work[w0] on.
  std::vector<Work> work;
  const bool use_refs = !options.blind && !references.empty();
  const FaceDescriptor* net = m_->descriptor.get();
  std::vector<bool> person_taken(references.people.size(), false);
  std::set<int> pins_done;

  // ---- select and align: detected faces → res.faces (and work, when restorable) ----
  auto take_faces = [&](const std::vector<DetectedFace>& found, bool again) {
    const auto ta = Clock::now();
    int small = 0, capped = 0, no_landmarks = 0, misfit = 0;
    const FivePoints tmpl = ffhq_template(static_cast<int>(S));
    for (const auto& d : found) {
      FaceResult fr;
      fr.index = static_cast<int>(res.faces.size());
      fr.box = d.box;
      fr.score = d.score;
      fr.detector = d.detector;
      fr.landmarks_ok = d.has_points5;
      fr.found_again = again;
      Similarity t;
      double native = 0;
      if (d.has_points5) {
        t = fit_similarity(std::vector<Point2f>(d.points5.begin(), d.points5.end()),
                           std::vector<Point2f>(tmpl.begin(), tmpl.end()), true);
        native = FaceGeometry::native_side(t, S);
      }
      // The FFHQ square of a face is 1.6–1.9× its detector box (HOG and the SSD alike); far from
      // that, the landmarks did not find the face (a collapsed fit on a blur, a hand).
      const double box_side = std::sqrt(std::max(0.f, d.box.width()) * std::max(0.f, d.box.height()));
      if (!d.has_points5) {
        fr.status = "skipped: no landmarks";
        ++no_landmarks;
      } else if (native < 0.8 * box_side || native > 4 * box_side) {
        fr.status = "skipped: the landmarks do not fit the face";
        ++misfit;
      } else if (std::min(d.box.width(), d.box.height()) < static_cast<float>(geometry_.min_face)) {
        fr.status = "skipped: face under " + std::to_string(geometry_.min_face) + " px";
        ++small;
      } else if (static_cast<int>(work.size()) >= options.max_faces) {
        fr.status = "skipped: over the limit of " + std::to_string(options.max_faces) + " faces";
        ++capped;
      } else {
        Work w;
        w.result = res.faces.size();
        w.t = t;
        w.native = native;
        fr.native_side = w.native;
        fr.transform = w.t;
        // Cut at the face's own resolution, then bicubic to S: the resize Ref-FR was trained with.
        const double cut = geometry_.ref_fr_max_cut > 0 ? std::min<double>(w.native, double(geometry_.ref_fr_max_cut))
                                                        : w.native;
        if (cut < S) {
          // At the face's own resolution (at most 512), area-downscaled to the cut, bicubic to S.
          const int64_t n = std::clamp<int64_t>(std::llround(w.native), 16, 512);
          const int64_t m = std::max<int64_t>(16, std::llround(cut));
          auto a = align_face(x, rescale_aligned(w.t, S, n), static_cast<int>(n)).image;
          w.lq = resize(resize(a, m, m), S, S);
        } else {
          w.lq = align_face(x, w.t, static_cast<int>(S)).image;
        }
        work.push_back(std::move(w));
      }
      res.faces.push_back(fr);
    }
    const std::string where = again ? " found in the restored photo" : "";
    if (small) warn(std::to_string(small) + " face(s)" + where + " under " + std::to_string(geometry_.min_face) + " px skipped");
    if (capped)
      warn(std::to_string(capped) + " face(s)" + where + " over the limit of " + std::to_string(options.max_faces) +
           " skipped (the largest were restored)");
    if (no_landmarks) warn(std::to_string(no_landmarks) + " face(s)" + where + " without landmarks skipped");
    if (misfit) warn(std::to_string(misfit) + " face(s)" + where + " skipped: the landmarks did not fit them");
    res.timings.align += since(ta);
  };

  // ---- identity: descriptors, pins and matching to the reference people ----
  auto identify = [&](size_t w0) {
    const auto ti = Clock::now();
    if (net && work.size() > w0 && (use_refs || options.measure_identity)) {
      std::vector<torch::Tensor> lqs;
      for (size_t i = w0; i < work.size(); ++i) lqs.push_back(work[i].lq);
      const auto d = describe(*net, torch::stack(lqs));
      for (size_t i = w0; i < work.size(); ++i) work[i].before = d[int64_t(i - w0)];
    }
    if (use_refs && net) {
      for (const auto& [idx, name] : options.face_refs) {
        const ReferencePersonSet* p = references.find(name);
        if (!p) throw ArgumentError("face_refs: no person '" + name + "' in the reference set");
        auto it = std::find_if(work.begin() + std::ptrdiff_t(w0), work.end(),
                               [&](const Work& w) { return res.faces[w.result].index == idx; });
        if (it == work.end()) continue;
        const size_t pi = static_cast<size_t>(p - references.people.data());
        it->person = static_cast<int>(pi);
        res.faces[it->result].pinned = true;
        person_taken[pi] = true;
        pins_done.insert(idx);
      }
      match_people(work, w0, res.faces, references, person_taken, options.match_threshold);
      size_t unmatched = 0;
      for (size_t i = w0; i < work.size(); ++i) {
        if (work[i].person < 0) ++unmatched;
        else person_taken[size_t(work[i].person)] = true;
      }
      if (unmatched) warn(std::to_string(unmatched) + " of " + std::to_string(work.size() - w0) + " face(s)" +
                          (w0 ? " found in the restored photo" : "") + " match no reference person: restored blind");
    }
    // References per face: the person's photos nearest to the face (at most the model's limit).
    for (size_t i = w0; i < work.size(); ++i) {
      auto& w = work[i];
      if (w.person < 0) continue;
      const auto& p = references.people[size_t(w.person)];
      std::vector<size_t> order(p.photos.size());
      std::iota(order.begin(), order.end(), 0);
      if (w.before.defined()) {
        std::vector<float> dist;
        for (const auto& ph : p.photos) dist.push_back((ph.descriptor - w.before).norm().item<float>());
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dist[a] < dist[b]; });
      }
      order.resize(std::min<size_t>(order.size(), size_t(m_->ref_fr->max_references())));
      w.refs = order;
      auto& fr = res.faces[w.result];
      fr.person = p.name;
      for (size_t k : order) fr.references.push_back(p.photos[k].file);
    }
    res.timings.identity += since(ti);
  };

  // ---- Ref-FR, batched per person (blind faces together), then identity after restoration ----
  auto restore_faces = [&](size_t w0) {
    const auto tr = Clock::now();
    const FaceRestorer& blind_model = m_->ref_fr_blind ? *m_->ref_fr_blind : *m_->ref_fr;
    std::map<int, std::vector<size_t>> groups;
    for (size_t i = w0; i < work.size(); ++i) groups[work[i].person].push_back(i);
    for (const auto& [person, members] : groups) {
      const FaceRestorer& model = person < 0 ? blind_model : *m_->ref_fr;
      for (size_t b = 0; b < members.size(); b += 16) {
        const size_t e = std::min(members.size(), b + 16);
        // Faces of one person may use different photo subsets only when the person has more photos
        // than the model takes; the first face's choice is used for the batch.
        torch::Tensor refs;
        if (person >= 0) {
          std::vector<torch::Tensor> r;
          for (size_t k : work[members[b]].refs) r.push_back(references.people[size_t(person)].photos[k].aligned);
          refs = torch::stack(r);
        }
        std::vector<torch::Tensor> lqs;
        for (size_t i = b; i < e; ++i) lqs.push_back(work[members[i]].lq);
        const auto out = model.restore(torch::stack(lqs), refs);
        for (size_t i = b; i < e; ++i) {
          work[members[i]].restored = out[int64_t(i - b)];
          res.faces[work[members[i]].result].restorer = model.name();
          res.faces[work[members[i]].result].status = "restored";
        }
      }
    }
    if (work.size() > w0 && std::find(res.models.begin(), res.models.end(), m_->ref_fr_path) == res.models.end()) {
      res.models.push_back(m_->ref_fr_path);
      if (m_->ref_fr_blind) res.models.push_back(m_->ref_fr_blind_path);
    }
    res.faces_restored = static_cast<int>(work.size());
    res.timings.ref_fr += since(tr);

    const auto ti = Clock::now();
    if (net && work.size() > w0 && work[w0].before.defined()) {
      std::vector<torch::Tensor> outs;
      for (size_t i = w0; i < work.size(); ++i) outs.push_back(work[i].restored);
      const auto d = describe(*net, torch::stack(outs));
      for (size_t i = w0; i < work.size(); ++i) {
        auto& w = work[i];
        auto& fr = res.faces[w.result];
        w.after = d[int64_t(i - w0)];
        fr.identity_shift = (w.after - w.before).norm().item<float>();
        if (w.person >= 0 && !w.refs.empty()) {
          std::vector<torch::Tensor> rows;
          for (size_t k : w.refs) rows.push_back(references.people[size_t(w.person)].photos[k].descriptor);
          const auto r = torch::stack(rows);
          fr.distance_before = nearest(r, w.before);
          fr.distance_after = nearest(r, w.after);
        }
      }
    }
    res.timings.identity += since(ti);
  };

  take_faces(detected, false);
  stage("identity");
  if (!options.face_refs.empty() && !use_refs) {
    if (options.blind) warn("--face-refs ignored: blind mode");
    else throw ArgumentError("face_refs given without a reference set");
  }
  if (use_refs && !net) warn("references ignored: no identity descriptor to match faces with");
  identify(0);
  stage("faces");
  restore_faces(0);

  // ---- FaDeX: one code for the photo, from the faces work[w0...] ----
  auto read_code = [&](size_t w0) {
    const auto tf = Clock::now();
    const OracleRestorer* scene = m_->scene.get();
    const bool native = scene->fadex_native_geometry();
    const int64_t H = geometry_.fadex_hq;
    std::vector<torch::Tensor> lqs, hqs;
    for (size_t i = w0; i < work.size(); ++i) {
      const auto& w = work[i];
      const int64_t L = geometry_.fadex_cut(w.native, rscale, native);
      auto lq = align_face(x, rescale_aligned(w.t, S, L), static_cast<int>(L)).image;
      // Faces cut at different sides share one batch at FaDeX's side, resized as FaDeX's own
      // forward would (bicubic, no antialias: L <= H), so batching does not change the code.
      if (L != H) {
        lq = F::interpolate(lq.unsqueeze(0), F::InterpolateFuncOptions()
                                                 .size(std::vector<int64_t>{H, H})
                                                 .mode(torch::kBicubic)
                                                 .align_corners(false))[0];
      }
      lqs.push_back(lq);
      hqs.push_back(resize(w.restored, H, H));
    }
    const auto lq = torch::stack(lqs), hq = torch::stack(hqs);
    std::vector<torch::Tensor> maps;
    std::vector<DegradationSummary> read;
    for (int64_t i = 0; i < lq.size(0); i += 16) {
      const int64_t e = std::min<int64_t>(lq.size(0), i + 16);
      auto [map, words] = scene->code_map_and_reading(lq.slice(0, i, e), hq.slice(0, i, e));
      maps.push_back(map.to(torch::kCPU));
      read.insert(read.end(), words.begin(), words.end());
    }
    const auto codes = torch::cat(maps);
    const size_t n = work.size() - w0;
    std::vector<double> weights(n, 0.0);
    size_t largest = 0;
    for (size_t i = 0; i < n; ++i) {
      auto& fr = res.faces[work[w0 + i].result];
      weights[i] = face_code_weight(fr.box, fr.score);
      const auto& lb = res.faces[work[w0 + largest].result].box;
      if (fr.box.width() * fr.box.height() > lb.width() * lb.height()) largest = i;
      fr.degradation = read[i];
      fr.degradation_read = true;
    }
    if (options.largest_face) {
      for (size_t i = 0; i < n; ++i) weights[i] = i == largest ? 1.0 : 0.0;
    }
    double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    if (!(total > 0)) {  // degenerate boxes: equal weights
      std::fill(weights.begin(), weights.end(), 1.0);
      total = static_cast<double>(n);
    }
    auto wt = torch::tensor(std::vector<float>(weights.begin(), weights.end())).div(total);
    for (size_t i = 0; i < n; ++i) res.faces[work[w0 + i].result].code_weight = wt[int64_t(i)].item<float>();
    const auto code = (codes * wt.view({-1, 1, 1, 1})).sum(0, true);
    res.face_code = true;
    res.code_rule = options.largest_face ? "largest-face" : "weighted-mean";
    res.degradation = weighted_summary(read, weights);
    res.degradation_words = res.degradation.describe();
    res.models.push_back(m_->fadex_path);
    auto tokens = scene->tokens(code);
    res.timings.fadex += since(tf);
    return tokens;
  };

  // ---- the scene restorer ----
  auto run_scene = [&](const OracleRestorer* scene, const torch::Tensor& tokens, const char* name) {
    const auto ts = Clock::now();
    auto out = scene->restore_on_device(x.unsqueeze(0), tokens, rscale,
                                        [&](int done, int total) { stage(name, done, total); })[0];
    if (options.scale == 2) out = F::avg_pool2d(out.unsqueeze(0), F::AvgPool2dFuncOptions(2))[0];
    // The GPU's work is queued: wait for it so that this stage's time is the restorer's, not the paste's.
    if (out.is_cuda()) torch::cuda::synchronize(out.device().index());
    res.models.push_back(scene == m_->scene.get() ? m_->scene_path : m_->scene_blind_path);
    res.timings.restorer += since(ts);
    return out;
  };

  // The output [3,h,w] float32: where the scene restorer made it (on a GPU the faces are pasted
  // there and only the quantised photo crosses to the host), else on the CPU.
  torch::Tensor y;
  bool blind_for_want_of_faces = false;  // no usable face in the photo: restored without a code
  if (!options.scene) {
    y = x.clone();
    res.code_rule = "none";
    res.degradation_words = "not read (faces only)";
  } else if (!options.background.empty()) {
    if (options.background.width != image.width * out_scale || options.background.height != image.height * out_scale)
      throw ArgumentError("restore: the given background is " + std::to_string(options.background.width) + "x" +
                          std::to_string(options.background.height) + ", expected " + std::to_string(image.width * out_scale) +
                          "x" + std::to_string(image.height * out_scale));
    y = image_to_tensor(options.background, torch::kCPU, torch::kFloat32, /*rgb=*/true);
    res.code_rule = "none";
    res.degradation_words = "not read (scene restored by another model)";
  } else {
    stage("oracle");
    torch::Tensor tokens;
    const OracleRestorer* scene = m_->scene.get();
    if (!options.blind && !work.empty()) {
      tokens = read_code(0);
    } else {
      scene = m_->scene_blind.get();
      tokens = scene->tokens(torch::Tensor());
      res.code_rule = "none";
      res.degradation_words = options.blind ? "not read (blind mode)" : "not read (no usable face)";
      blind_for_want_of_faces = !options.blind;
    }
    stage("scene");
    y = run_scene(scene, tokens, "scene");
  }

  // ---- second look: faces found only in the restored photo ----
  // HOG misses many 12–19 px faces of a blurred, noisy photo and finds them once the scene restorer
  // has cleaned them (moderate ×4 group photos: 26 faces found in the degraded photos, 46 in the
  // restored ones; docs/pipeline.md, "Second look"). They are restored and pasted like the others
  // but take no part in the photo's code, which the scene restorer has already used, unless the
  // photo had no usable face (then they read it, and the scene is restored again).
  if (options.scene && options.second_look && m_->detector) {
    stage("second-look");
    t0 = Clock::now();
    // HOG reads grey: the output converted a band of rows at a time to a one-channel Image (one
    // 16-bit sample a pixel), never a whole float copy (768 MB at ×4 of a 4 MP photo). The SSD
    // reads the output's colour (on grey it finds a fraction of the faces) straight from y.
    const Image grey = to_image_in_bands(y, 1, 8);
    const int min_face = detector().options().min_face * out_scale;
    auto again = new_faces_in_photo(detector().detect(grey, min_face, y), out_scale, res.faces);
    res.timings.detect += since(t0);
    res.faces_found_again = static_cast<int>(again.size());
    res.faces_detected += res.faces_found_again;
    if (!again.empty()) {
      const size_t w0 = work.size();
      take_faces(again, true);
      identify(w0);
      restore_faces(w0);
      // The photo showed no usable face, so the blind scene restorer ran. Faces found in its output
      // read the code now, and the conditioned restorer runs again: the face as the oracle.
      if (blind_for_want_of_faces && work.size() > w0) {
        const auto tokens = read_code(w0);
        y = torch::Tensor();  // freed before the second run (768 MB at ×4 of 4 MP)
        y = run_scene(m_->scene.get(), tokens, "second-look");
        blind_for_want_of_faces = false;
        log_info("the code was read from " + std::to_string(work.size() - w0) +
                 " face(s) found in the blind restorer's output; the photo was restored again, conditioned");
      }
    }
  }
  if (blind_for_want_of_faces)
    warn("no usable face: the photo was restored by the blind scene restorer (no degradation code)");
  for (const auto& [idx, name] : options.face_refs) {
    if (use_refs && net && !pins_done.count(idx))
      warn("--face-refs " + std::to_string(idx) + ": no such restorable face (" + std::to_string(res.faces.size()) +
           " found)");
  }

  // ---- paste the restored faces back at the output scale ----
  stage("paste");
  t0 = Clock::now();
  if (options.paste_faces && !work.empty()) {
    const double ps = FaceGeometry::paste_scale(out_scale);
    // At ×1 the photo is as large as the output but holds detail only at ¼ of its pixels, as the
    // models see it (FaceGeometry::input_detail_divisor). With the pixel side (300 px for a CelebA
    // face) the consistency step never ran at ×1, and Ref-FR's invented eyes and mouth were pasted
    // as they were (InScene CelebA ×1: identity 0.59 against x4plus's 0.41).
    const double detail_divisor = FaceGeometry::input_detail_divisor(options.scale);
    // Every face is built from the scene restorer's output before any is pasted (faces may
    // overlap, and detail must not come from a face pasted before). Building them all first
    // instead of keeping a copy of the whole output bounds memory by the faces' squares: at ×4 of
    // a 4 MP photo the copy alone was 768 MB.
    std::vector<std::pair<torch::Tensor, Similarity>> built;
    for (const auto& w : work) {
      auto& fr = res.faces[w.result];
      if (w.person < 0 && std::min(fr.box.width(), fr.box.height()) < options.blind_paste_min) {
        fr.paste_side = 0;  // read by FaDeX, not pasted (the report says so)
        continue;
      }
      const int64_t want = std::llround(w.native * ps);
      const auto restored = w.restored.to(y.device(), torch::kFloat32);
      if (options.scene && options.detail_transfer && want > S) {
        // Detail transfer: Ref-FR decides everything its S² face can hold (shape, identity, colour);
        // the scene restorer's output gives the band above that, which the upsampled Ref-FR face
        // lacks: face = up(R) + (scene − up(down(scene))), split at Ref-FR's resolution.
        const int64_t N = std::min<int64_t>(want, geometry_.max_paste_side);
        const Similarity tn = rescale_aligned(w.t, S, N);
        const auto sc = align_face_region(y, on_scaled_image(tn, ps), N);
        const auto low = resize(resize(sc, S, S), N, N);
        auto face = (resize(restored, N, N) + (sc - low)).clamp(0, 1);
        face = keep_input_structure(face, sc, consistency_side(w, options, detail_divisor), std::min(S, N));
        face = mix_input(face, w, options, x, tn, ps);
        if (options.match_paste_tone) face = seamless_paste_face(face, sc).clamp(0, 1);
        built.emplace_back(face, tn);
        fr.paste_side = N;
        fr.detail_transfer = true;
      } else {
        auto face = restored;
        const int64_t k = consistency_side(w, options, detail_divisor);
        torch::Tensor sc;
        if (options.scene && (options.match_paste_tone || (k >= 4 && k < S))) {
          sc = align_face_region(y, on_scaled_image(w.t, ps), S);
          face = keep_input_structure(face, sc, k, S);
        }
        // restore-face (no scene) is Ref-FR alone: its faces are pasted as Ref-FR made them.
        if (options.scene) face = mix_input(face, w, options, x, w.t, ps);
        if (options.scene && options.match_paste_tone) face = seamless_paste_face(face, sc).clamp(0, 1);
        built.emplace_back(face, w.t);
        fr.paste_side = std::min<int64_t>(want, S);
      }
    }
    for (const auto& [face, t] : built) paste_in_place(y, face, t, ps);
  }
  res.timings.paste = since(t0);

  // ---- back to an Image like the input ----
  res.image = to_image_in_bands(y, image.channels, image.bit_depth);
  y = torch::Tensor();
  if (image.has_alpha()) {
    auto a = alpha_to_tensor(image, torch::kCPU).unsqueeze(0);
    if (out_scale != 1)
      a = F::interpolate(a, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{res.image.height, res.image.width})
                                .mode(torch::kBilinear)
                                .align_corners(false));
    set_alpha_from_tensor(res.image, a[0].clamp(0, 1));
  }
  res.timings.total = since(t_total);
  stage("done", 1, 1);
  return res;
}

Face2SceneResult Face2Scene::restore_aligned(const Image& face, const ReferenceSet& references,
                                             const Face2SceneOptions& options) const {
  const auto t_total = Clock::now();
  if (face.empty()) throw ArgumentError("restore-face: empty image");
  if (face.width != face.height)
    throw ArgumentError("restore-face: an aligned face crop is square; this image is " + std::to_string(face.width) +
                        "x" + std::to_string(face.height));
  if (face.width < 16) throw ArgumentError("restore-face: the face crop is under 16 px");
  const int64_t S = geometry_.face_size;
  Face2SceneResult res;
  res.output_scale = 1;
  res.faces_detected = 1;
  res.code_rule = "none";
  res.degradation_words = "not read (faces only)";
  auto t0 = Clock::now();
  const auto x = image_to_tensor(face, torch::kCPU, torch::kFloat32, true);
  Work w;
  w.lq = resize(x, S, S);
  FaceResult fr;
  fr.box = {0.f, 0.f, float(face.width), float(face.height)};
  fr.landmarks_ok = true;
  fr.native_side = face.width;
  res.timings.align = since(t0);
  t0 = Clock::now();
  const FaceDescriptor* net = m_->descriptor.get();
  const bool use_refs = !options.blind && !references.empty();
  if (net) w.before = describe(*net, w.lq.unsqueeze(0))[0];
  if (use_refs && net) {
    float best = 1e9f;
    int who = -1;
    for (size_t j = 0; j < references.people.size(); ++j) {
      const float d = nearest(references.people[j].descriptors(), w.before);
      if (d < best) best = d, who = int(j);
    }
    fr.match_distance = best;
    // One person given: the crop is taken to be them (the distance is reported); several: the
    // nearest within the threshold.
    if (references.people.size() == 1 || best < options.match_threshold) w.person = who;
    if (w.person < 0) res.warnings.push_back("the face matches no reference person: restored blind");
  }
  if (w.person >= 0) {
    const auto& p = references.people[size_t(w.person)];
    std::vector<size_t> order(p.photos.size());
    std::iota(order.begin(), order.end(), 0);
    std::vector<float> dist;
    for (const auto& ph : p.photos) dist.push_back((ph.descriptor - w.before).norm().item<float>());
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dist[a] < dist[b]; });
    order.resize(std::min<size_t>(order.size(), size_t(m_->ref_fr->max_references())));
    w.refs = order;
    fr.person = p.name;
    for (size_t k : order) fr.references.push_back(p.photos[k].file);
  }
  res.timings.identity = since(t0);
  t0 = Clock::now();
  const FaceRestorer& model = w.person >= 0 ? *m_->ref_fr : (m_->ref_fr_blind ? *m_->ref_fr_blind : *m_->ref_fr);
  torch::Tensor refs;
  if (w.person >= 0) {
    std::vector<torch::Tensor> r;
    for (size_t k : w.refs) r.push_back(references.people[size_t(w.person)].photos[k].aligned);
    refs = torch::stack(r);
  }
  w.restored = model.restore(w.lq.unsqueeze(0), refs)[0];
  fr.restorer = model.name();
  fr.status = "restored";
  res.models.push_back(w.person >= 0 ? m_->ref_fr_path : (m_->ref_fr_blind ? m_->ref_fr_blind_path : m_->ref_fr_path));
  res.timings.ref_fr = since(t0);
  t0 = Clock::now();
  if (net) {
    w.after = describe(*net, w.restored.unsqueeze(0))[0];
    fr.identity_shift = (w.after - w.before).norm().item<float>();
    if (w.person >= 0) {
      std::vector<torch::Tensor> rows;
      for (size_t k : w.refs) rows.push_back(references.people[size_t(w.person)].photos[k].descriptor);
      fr.distance_before = nearest(torch::stack(rows), w.before);
      fr.distance_after = nearest(torch::stack(rows), w.after);
    }
  }
  res.timings.identity += since(t0);
  const int64_t side = std::max<int64_t>(face.width, S);
  fr.paste_side = side;
  auto y = resize(w.restored, side, side);
  if (face.channels == 1) y = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]).unsqueeze(0);
  res.image = tensor_to_image(y, face.bit_depth);
  res.faces.push_back(fr);
  res.faces_restored = 1;
  for (const auto& wmsg : res.warnings) log_warn(wmsg);
  res.timings.total = since(t_total);
  return res;
}

}  // namespace face2scene
