// The Face2Scene pipeline (face2scene/pipeline.hpp) and `face2scene restore` / `restore-face`:
// geometry contract, face-restorer registry, result shapes per scale, faces on a group photo, the
// code rule, reference matching, blind fallback, bad inputs, many faces, nothing half-written.
// Small images throughout, so the whole file runs in a minute or two on the 2-core CPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/oracle.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/ref_fr.hpp"
#include "face2scene/tensor.hpp"
#include "faces_test_util.hpp"
#include "test_util.hpp"

using namespace face2scene;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {
std::string models_dir() { return std::string(F2S_SOURCE_DIR) + "/weights"; }
std::string example() { return std::string(F2S_SOURCE_DIR) + "/examples/solvay_group.jpg"; }
bool have_models() {
  return file_exists(models_dir() + "/ref_fr.safetensors") && file_exists(models_dir() + "/fadex.safetensors") &&
         file_exists(realesrgan_weights_path(RealEsrganModel::kGeneralX4V3));
}
#define F2S_REQUIRE_PIPELINE()                                                                              \
  do {                                                                                                      \
    F2S_REQUIRE_DETECTOR();                                                                                 \
    if (!have_models()) GTEST_SKIP() << "weights/ or the Real-ESRGAN base (scripts/install_models.sh) missing"; \
  } while (0)
#define F2S_REQUIRE_IDENTITY() \
  if (!FaceDescriptor::available()) GTEST_SKIP() << "face-api weights missing (scripts/install_faceapi.sh)"

Face2SceneConfig config(bool scene = true) {
  Face2SceneConfig c;
  c.models_dir = models_dir();
  c.load_scene_restorer = scene;
  return c;
}

Image crop(const Image& img, int x0, int y0, int w, int h) {
  auto t = image_to_tensor(img, torch::kCPU, torch::kFloat32).slice(1, y0, y0 + h).slice(2, x0, x0 + w);
  return tensor_to_image(t, img.bit_depth);
}

Image resized(const Image& img, int w, int h) {
  auto t = image_to_tensor(img, torch::kCPU, torch::kFloat32).unsqueeze(0);
  t = F::interpolate(t, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kArea));
  return tensor_to_image(t[0], img.bit_depth);
}

// The README example (800×530, 12 faces) at ¼ size by area: faces of 13–19 px.
Image quarter_example() {
  const Image full = read_image(example());
  return resized(full, full.width / 4, full.height / 4);
}

std::string london(const std::string& name) { return f2s_test::data_path("faces/hq/london/" + name); }

// Over each restored face (its box in the input, times `scale` in the output), the mean absolute
// coarse difference (means over a third of the box) between an output and the scene restorer's
// output: how far the pasted faces stray from the scene restorer's structure.
double coarse_gap(const torch::Tensor& y, const torch::Tensor& scene, const std::vector<FaceResult>& faces, double scale) {
  double sum = 0;
  int n = 0;
  for (const auto& f : faces) {
    if (f.status != "restored") continue;
    const int64_t x0 = std::lround(scale * f.box.x0), y0 = std::lround(scale * f.box.y0);
    const int64_t s = std::max<int64_t>(6, std::lround(scale * std::min(f.box.width(), f.box.height())) / 3 * 3);
    const auto d = (y - scene).slice(1, y0, y0 + s).slice(2, x0, x0 + s).unsqueeze(0);
    sum += F::avg_pool2d(d, F::AvgPool2dFuncOptions(s / 3)).abs().mean().item<double>(), ++n;
  }
  return sum / std::max(n, 1);
}

// `img` restored with `o` (fidelity mix off), without the pasted faces, and with the blind-face
// consistency step off: the coarse gaps of the first and the last to the second, {on, off}, over `faces`.
std::pair<double, double> consistency_gaps(const Face2Scene& f2s, const Image& img, Face2SceneOptions o,
                                           const std::vector<FaceResult>& faces) {
  // The consistency step alone: the fidelity mix (default 0.5) would pull both toward the input.
  o.blind_face_fidelity = o.ref_face_fidelity = 0;
  const auto run = [&]() { return image_to_tensor(f2s.restore(img, {}, o).image, torch::kCPU); };
  const auto on = run();
  o.paste_faces = false;
  const auto scene = run();
  o.paste_faces = true;
  o.blind_face_consistency = 0;
  const auto off = run();
  return {coarse_gap(on, scene, faces, o.scale), coarse_gap(off, scene, faces, o.scale)};
}

// No temporary files (write_atomically's "<path>.tmp-<pid>") anywhere in `dir`.
void expect_nothing_half_written(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}
}  // namespace

// ---- geometry and registry (no models) ----------------------------------------------------------

TEST(PipelineGeometry, TransformsAgreeAcrossSidesAndScales) {
  const Similarity t{0.8, 0.3, 12.5, -7.25};  // photo → aligned at 128
  const Point2f p{40.f, 55.f};
  const Point2f a128 = t.apply(p);
  const Point2f a512 = rescale_aligned(t, 128, 512).apply(p);
  EXPECT_NEAR(a512.x, (a128.x + 0.5) * 4 - 0.5, 1e-3);
  EXPECT_NEAR(a512.y, (a128.y + 0.5) * 4 - 0.5, 1e-3);
  for (double s : {1.0, 2.0, 4.0}) {
    const Point2f q{static_cast<float>((p.x + 0.5) * s - 0.5), static_cast<float>((p.y + 0.5) * s - 0.5)};
    const Point2f b = on_scaled_image(t, s).apply(q);
    EXPECT_NEAR(b.x, a128.x, 1e-3) << s;
    EXPECT_NEAR(b.y, a128.y, 1e-3) << s;
  }
  EXPECT_NEAR(FaceGeometry::native_side(t, 128), 128 / std::hypot(0.8, 0.3), 1e-6);
  FaceGeometry g;
  EXPECT_EQ(g.fadex_lq(4), 32);
  EXPECT_EQ(g.fadex_lq(1), 128);
  // A native-geometry FaDeX reads the face at its own side (8 .. fadex_hq); a fixed one ignores it.
  EXPECT_EQ(g.fadex_cut(47.6, 4, true), 48);
  EXPECT_EQ(g.fadex_cut(300, 4, true), 128);
  EXPECT_EQ(g.fadex_cut(5, 1, true), 16);  // align_face's smallest square
  EXPECT_EQ(g.fadex_cut(47.6, 4, false), 32);
  EXPECT_EQ(g.fadex_cut(47.6, 1, false), 128);
  EXPECT_EQ(FaceGeometry::restorer_scale(2), 4);
  EXPECT_EQ(FaceGeometry::restorer_scale(1), 1);
  EXPECT_THROW(FaceGeometry::restorer_scale(3), ArgumentError);
  // Weight grows with area and with the detector's confidence.
  EXPECT_GT(face_code_weight({0, 0, 40, 40}, 0.f), face_code_weight({0, 0, 20, 20}, 0.f));
  EXPECT_GT(face_code_weight({0, 0, 20, 20}, 1.f), face_code_weight({0, 0, 20, 20}, 0.f));
  EXPECT_NEAR(face_code_weight({0, 0, 20, 20}, 0.f), 200.f, 1e-3);
}

TEST(PipelineRegistry, ChoosesTheModelByArch) {
  const std::string dir = f2s_test::temp_dir("registry");
  // A file of an unknown arch is refused, naming the arch and the known ones.
  save_safetensors(dir + "/odd.safetensors", {{"w", torch::zeros({2})}}, {{"arch", "mystery-net"}});
  try {
    load_face_restorer(dir + "/odd.safetensors");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("mystery-net"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(kRefFRArch), std::string::npos) << e.what();
  }
  // A new face model is one class and one registration.
  struct Identity : FaceRestorer {
    std::string arch() const override { return "mystery-net"; }
    std::string name() const override { return "identity"; }
    int64_t size() const override { return 64; }
    int64_t max_references() const override { return 0; }
    torch::Tensor restore(const torch::Tensor& f, const torch::Tensor&) const override { return f; }
  };
  register_face_restorer("mystery-net", [](const std::string&, const Metadata&, const FaceRestorerLoadOptions&) {
    return std::unique_ptr<FaceRestorer>(new Identity());
  });
  EXPECT_EQ(load_face_restorer(dir + "/odd.safetensors")->name(), "identity");
  if (file_exists(models_dir() + "/ref_fr.safetensors")) {
    auto r = load_face_restorer(models_dir() + "/ref_fr.safetensors");
    EXPECT_EQ(r->arch(), kRefFRArch);
    EXPECT_EQ(r->size(), 128);
    EXPECT_GT(r->max_references(), 0);
    auto out = r->restore(torch::full({2, 3, 128, 128}, 0.5), torch::Tensor());
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 128, 128}));
  }
  f2s_test::remove_tree(dir);
}

// ---- the pipeline on images ---------------------------------------------------------------------

TEST(Pipeline, ResultShapePerScaleAndFacesRestored) {
  F2S_REQUIRE_PIPELINE();
  Face2Scene f2s(config());
  // A 360x140 crop of the example with three faces; grey like the photo.
  const Image img = crop(read_image(example()), 0, 40, 360, 140);
  for (int scale : {4, 2, 1}) {
    Face2SceneOptions o;
    o.scale = scale;
    o.measure_identity = false;
    const auto r = f2s.restore(img, {}, o);
    EXPECT_EQ(r.image.width, 360 * scale);
    EXPECT_EQ(r.image.height, 140 * scale);
    EXPECT_EQ(r.image.channels, 1);
    EXPECT_GE(r.faces_detected, 3) << scale;
    EXPECT_EQ(r.faces_restored, r.faces_detected);
    EXPECT_TRUE(r.face_code);
    EXPECT_EQ(r.code_rule, "weighted-mean");
    EXPECT_NE(r.degradation_words.find("blur"), std::string::npos) << r.degradation_words;
    for (const auto& f : r.faces) {
      EXPECT_EQ(f.status, "restored");
      EXPECT_EQ(f.restorer, "ref-fr-blind");
      EXPECT_TRUE(f.person.empty());
      // At ×4 these ~30 px faces are far larger than Ref-FR's 128²: detail transfer must run.
      if (scale == 4) EXPECT_TRUE(f.detail_transfer) << f.native_side;
    }
    EXPECT_GT(r.timings.total, 0);
    EXPECT_GE(r.timings.total, r.timings.detect + r.timings.restorer);
    // The JSON report parses and carries the faces and timings.
    const auto j = nlohmann::json::parse(result_to_json(r, "in.png", "out.png"));
    EXPECT_EQ(j["faces"].size(), r.faces.size());
    EXPECT_TRUE(j["timings_s"].contains("ref_fr"));
  }
}

TEST(Pipeline, GroupPhotoWeightedVersusLargestFaceCode) {
  F2S_REQUIRE_PIPELINE();
  Face2Scene f2s(config());
  const Image img = read_image(example());
  Face2SceneOptions o;
  o.scale = 1;
  o.measure_identity = false;
  const auto weighted = f2s.restore(img, {}, o);
  // The example is a crop of the 1927 Solvay photo with 11 people: all found and restored.
  EXPECT_GE(weighted.faces_detected, 10);
  EXPECT_EQ(weighted.faces_restored, weighted.faces_detected);
  double sum = 0;
  int used = 0;
  for (const auto& f : weighted.faces) sum += f.code_weight, used += f.code_weight > 0;
  EXPECT_NEAR(sum, 1.0, 1e-4);
  EXPECT_EQ(used, weighted.faces_restored);
  o.largest_face = true;
  const auto largest = f2s.restore(img, {}, o);
  EXPECT_EQ(largest.code_rule, "largest-face");
  int ones = 0;
  float best_area = 0;
  int best = -1;
  for (const auto& f : largest.faces) {
    ones += f.code_weight > 0.999f;
    if (f.box.width() * f.box.height() > best_area) best_area = f.box.width() * f.box.height(), best = f.index;
  }
  EXPECT_EQ(ones, 1);
  EXPECT_GT(largest.faces[size_t(best)].code_weight, 0.999f);
  // Different codes, different photos (the pasted faces are the same).
  auto a = image_to_tensor(weighted.image, torch::kCPU), b = image_to_tensor(largest.image, torch::kCPU);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-3f);
}

TEST(Pipeline, NoFaceRunsBlindWithWarning) {
  F2S_REQUIRE_PIPELINE();
  Face2Scene f2s(config());
  torch::manual_seed(1);
  const Image img = tensor_to_image(torch::rand({3, 30, 40}) * 0.2 + 0.4, 8);
  const auto r = f2s.restore(img, {}, Face2SceneOptions{});
  EXPECT_EQ(r.faces_detected, 0);
  EXPECT_FALSE(r.face_code);
  EXPECT_EQ(r.image.width, 160);
  bool warned = false;
  for (const auto& w : r.warnings) warned = warned || w.find("no usable face") != std::string::npos;
  EXPECT_TRUE(warned);
  // A 1×1 image: no face, a 4×4 result, no crash.
  Image one(1, 1, 3);
  one.data = {10, 200, 30};
  const auto r1 = f2s.restore(one, {}, Face2SceneOptions{});
  EXPECT_EQ(r1.image.width, 4);
  EXPECT_EQ(r1.image.height, 4);
  EXPECT_THROW(f2s.restore(Image{}, {}, Face2SceneOptions{}), ArgumentError);
}

TEST(Pipeline, ReferencesMatchTheRightPersonAndSkipBadPhotos) {
  F2S_REQUIRE_PIPELINE();
  F2S_REQUIRE_IDENTITY();
  F2S_REQUIRE_DATA("faces/hq/london/001_neutral.jpg");
  const std::string dir = f2s_test::temp_dir("pipeline_refs");
  fs::create_directories(dir + "/refs/alice");
  fs::create_directories(dir + "/refs/bob");
  fs::create_directories(dir + "/wrong/bob");
  fs::copy_file(london("001_smiling.jpg"), dir + "/refs/alice/a1.jpg");
  fs::copy_file(london("002_smiling.jpg"), dir + "/refs/bob/b1.jpg");
  fs::copy_file(london("002_neutral.jpg"), dir + "/refs/bob/b2.jpg");
  fs::copy_file(london("003_neutral.jpg"), dir + "/refs/bob/z_other_person.jpg");  // not bob
  write_image(dir + "/refs/bob/c_noface.png", tensor_to_image(torch::full({3, 64, 64}, 0.5), 8));
  fs::copy_file(london("002_smiling.jpg"), dir + "/wrong/bob/b1.jpg");
  Face2Scene f2s(config());
  const auto refs = load_reference_set(dir + "/refs", f2s.detector(), *f2s.descriptor(), 128);
  ASSERT_EQ(refs.people.size(), 2u);
  ASSERT_NE(refs.find("bob"), nullptr);
  EXPECT_EQ(refs.find("bob")->photos.size(), 2u);  // the other person and the flat image skipped
  std::string warnings;
  for (const auto& w : refs.warnings) warnings += w + "\n";
  EXPECT_NE(warnings.find("z_other_person.jpg skipped: its face does not match"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("c_noface.png skipped: no face found"), std::string::npos) << warnings;

  // The photo: Alice's other photo, small (a degraded group-photo face), in a wider frame.
  Image photo = resized(read_image(london("001_neutral.jpg")), 160, 160);
  Face2SceneOptions o;
  o.scale = 1;
  const auto r = f2s.restore(photo, refs, o);
  ASSERT_EQ(r.faces_restored, 1);
  EXPECT_EQ(r.faces[0].person, "alice");
  EXPECT_EQ(r.faces[0].restorer, "ref-fr");
  ASSERT_EQ(r.faces[0].references.size(), 1u);
  EXPECT_NE(r.faces[0].references[0].find("a1.jpg"), std::string::npos);
  EXPECT_GE(r.faces[0].distance_before, 0.f);
  EXPECT_GE(r.faces[0].distance_after, 0.f);
  // Only the wrong person's photos: the face is listed unmatched and restored blind.
  const auto wrong = load_reference_set(dir + "/wrong", f2s.detector(), *f2s.descriptor(), 128);
  const auto rw = f2s.restore(photo, wrong, o);
  ASSERT_EQ(rw.faces_restored, 1);
  EXPECT_TRUE(rw.faces[0].person.empty());
  EXPECT_EQ(rw.faces[0].restorer, "ref-fr-blind");
  EXPECT_GT(rw.faces[0].match_distance, 0.6f);
  bool listed = false;
  for (const auto& w : rw.warnings) listed = listed || w.find("match no reference person") != std::string::npos;
  EXPECT_TRUE(listed);
  // Face2SceneOptions::match_threshold (restore --match-threshold) decides: just above the
  // stranger's distance the face takes the stranger's photos; at 0 not even Alice's own.
  Face2SceneOptions loose = o, strict = o;
  loose.match_threshold = rw.faces[0].match_distance + 0.01f;
  EXPECT_FALSE(f2s.restore(photo, wrong, loose).faces[0].person.empty());
  strict.match_threshold = 0.f;
  EXPECT_TRUE(f2s.restore(photo, refs, strict).faces[0].person.empty());
  // Pinned: face 0 uses bob whatever the descriptor says.
  o.face_refs[0] = "bob";
  const auto rp = f2s.restore(photo, refs, o);
  EXPECT_EQ(rp.faces[0].person, "bob");
  EXPECT_TRUE(rp.faces[0].pinned);
  o.face_refs[0] = "nobody";
  EXPECT_THROW(f2s.restore(photo, refs, o), ArgumentError);

  // Folders without usable faces and missing folders are clear errors.
  fs::create_directories(dir + "/noface");
  write_image(dir + "/noface/flat.png", tensor_to_image(torch::full({3, 64, 64}, 0.5), 8));
  EXPECT_THROW(load_reference_set(dir + "/noface", f2s.detector(), *f2s.descriptor()), IoError);
  EXPECT_THROW(load_reference_set(dir + "/missing", f2s.detector(), *f2s.descriptor()), IoError);
  fs::create_directories(dir + "/empty");
  EXPECT_THROW(load_reference_set(dir + "/empty", f2s.detector(), *f2s.descriptor()), IoError);

  // restore_aligned: an aligned crop with the person's references.
  const Image aligned = resized(read_image(london("001_neutral.jpg")), 48, 48);
  Face2Scene faces_only(config(/*scene=*/false));
  const auto ra = faces_only.restore_aligned(aligned, refs, Face2SceneOptions{});
  EXPECT_EQ(ra.image.width, 128);
  EXPECT_EQ(ra.faces[0].person, "alice");
  EXPECT_THROW(faces_only.restore_aligned(resized(aligned, 48, 40), refs, Face2SceneOptions{}), ArgumentError);
  f2s_test::remove_tree(dir);
}

// A group photo degraded ×4 has faces of 12–19 px (Solvay 1927 moderate ×4: 12–17 px): they are
// found (the detector looks from 12 px) and restored (from 8 px), not listed as too small.
TEST(Pipeline, SmallFacesOfAGroupAreFoundAndRestored) {
  F2S_REQUIRE_PIPELINE();
  const Image small = quarter_example();
  Face2Scene f2s(config());
  Face2SceneOptions o;
  o.scale = 1;
  o.measure_identity = false;
  const auto r = f2s.restore(small, {}, o);
  int under16 = 0;
  for (const auto& f : r.faces) under16 += f.status == "restored" && std::min(f.box.width(), f.box.height()) < 16.f;
  EXPECT_GE(r.faces_detected, 10);
  EXPECT_GE(r.faces_restored, 10);
  EXPECT_GE(under16, 5);  // most of them are under the old 16 px floor
  EXPECT_TRUE(r.face_code);
  // --blind-paste-min 16: the faces under 16 px are read but not pasted; the larger ones still are.
  // The output then differs from the full run only around the larger faces.
  o.blind_paste_min = 16;
  const auto r16 = f2s.restore(small, {}, o);
  ASSERT_EQ(r16.faces.size(), r.faces.size());
  int kept = 0, dropped = 0;
  for (const auto& f : r16.faces) {
    if (f.status != "restored") continue;
    const bool small_face = std::min(f.box.width(), f.box.height()) < 16.f;
    EXPECT_EQ(f.paste_side == 0, small_face) << f.index;
    (small_face ? dropped : kept) += 1;
  }
  EXPECT_EQ(dropped, under16);
  EXPECT_EQ(r16.degradation_words, r.degradation_words);  // the code still reads every face
  EXPECT_NE(nlohmann::json::parse(result_to_json(r16, "in.png", "out.png")).dump().find("\"pasted\":false"), std::string::npos);
  const auto a = image_to_tensor(r.image, torch::kCPU), b = image_to_tensor(r16.image, torch::kCPU);
  EXPECT_GT((a - b).abs().max().item<float>(), 0.05f);  // the dropped faces are gone from the output

  // --blind-face-consistency (default 1): a blind face keeps the scene restorer's structure up to
  // the input's own detail, so over each pasted face the coarse difference to the scene restorer's
  // output (means over a third of the box) is much smaller than with the option off. At ×4, the
  // restore these 12–19 px faces are made for (at ×1 the models see a quarter of the pixels).
  o.blind_paste_min = 0;
  o.scale = 4;
  const auto [gap_on, gap_off] = consistency_gaps(f2s, small, o, r.faces);
  EXPECT_LT(gap_on, 0.5 * gap_off) << "consistent " << gap_on << ", off " << gap_off;
}

// Second look: HOG misses small faces of a blurred, noisy photo that it finds in the restored one.
// The example degraded as `face2scene degrade --preset severe --seed 2` gives it (×4 down, 12–19 px
// faces): the input shows 5 faces to the detector, the restored photo one more. That face is
// restored and pasted like the others but leaves the photo's code alone; without the second look
// it stays as the scene restorer made it.
TEST(Pipeline, SecondLookRestoresFacesFoundOnlyInTheRestoredPhoto) {
  F2S_REQUIRE_PIPELINE();
  const Image full = read_image(example());
  DegradationSampler sampler("severe", mix_seed(2, fnv1a(std::string("solvay_group.jpg"))));
  const Image lq = tensor_to_image(apply_degradation(image_to_tensor(full, torch::kCPU), sampler.sample(), {JpegMode::kAuto}), 8);
  Face2Scene f2s(config());
  Face2SceneOptions o;
  o.measure_identity = false;
  const auto on = f2s.restore(lq, {}, o);
  o.second_look = false;
  const auto off = f2s.restore(lq, {}, o);
  EXPECT_EQ(off.faces_found_again, 0);
  ASSERT_GE(on.faces_found_again, 1);
  EXPECT_EQ(on.faces_detected, off.faces_detected + on.faces_found_again);
  EXPECT_EQ(on.faces_restored, off.faces_restored + on.faces_found_again);
  EXPECT_EQ(on.degradation_words, off.degradation_words);  // the code is read from the first faces only
  ASSERT_EQ(on.faces.size(), off.faces.size() + size_t(on.faces_found_again));
  const auto a = image_to_tensor(on.image, torch::kCPU), b = image_to_tensor(off.image, torch::kCPU);
  for (size_t i = 0; i < on.faces.size(); ++i) {
    const auto& f = on.faces[i];
    EXPECT_EQ(f.index, int(i));
    EXPECT_EQ(f.found_again, i >= off.faces.size()) << i;
    if (!f.found_again) continue;
    EXPECT_EQ(f.status, "restored");
    EXPECT_GT(f.paste_side, 0);
    EXPECT_EQ(f.code_weight, 0.f);
    // In the input photo's coordinates: inside it, the size of the photo's other faces, and
    // covering none of the faces found before.
    EXPECT_GE(f.box.x0, 0.f);
    EXPECT_LE(f.box.x1, float(lq.width));
    EXPECT_GT(f.box.width(), 8.f);
    EXPECT_LT(f.box.width(), 40.f);
    for (const auto& g : off.faces) EXPECT_FALSE(boxes_overlap(f.box, g.box)) << "face " << i << " overlaps face " << g.index;
    // Pasted: the output changed over the face's box (×4).
    const int64_t x0 = int64_t(f.box.x0 * 4), x1 = int64_t(f.box.x1 * 4), y0 = int64_t(f.box.y0 * 4), y1 = int64_t(f.box.y1 * 4);
    const auto d = (a - b).abs().slice(1, y0, y1).slice(2, x0, x1);
    EXPECT_GT(d.mean().item<float>(), 0.01f) << "face " << i << " not pasted";
  }
  const auto j = nlohmann::json::parse(result_to_json(on, "in.png", "out.png"));
  EXPECT_EQ(j["faces_found_again"], on.faces_found_again);
  EXPECT_EQ(j["faces"].back()["found_in"], "restored photo");
  EXPECT_EQ(j["faces"].front()["found_in"], "photo");
}

// When the photo shows no usable face, the blind scene restorer runs; faces the second look finds in
// its output then read the code, and the conditioned restorer runs again. The first look is made
// to find nothing by passing an empty face list (Face2SceneOptions::faces) for the example ×¼.
TEST(Pipeline, SecondLookReadsTheCodeWhenThePhotoShowedNoFace) {
  F2S_REQUIRE_PIPELINE();
  const Image small = quarter_example();
  Face2Scene f2s(config());
  Face2SceneOptions o;
  o.measure_identity = false;
  o.faces = std::vector<DetectedFace>{};
  const auto on = f2s.restore(small, {}, o);
  o.second_look = false;
  const auto off = f2s.restore(small, {}, o);
  auto has_warning = [](const Face2SceneResult& r) {
    for (const auto& w : r.warnings)
      if (w.find("no usable face") != std::string::npos) return true;
    return false;
  };
  EXPECT_FALSE(off.face_code);
  EXPECT_TRUE(has_warning(off));
  ASSERT_GE(on.faces_found_again, 8);
  EXPECT_TRUE(on.face_code);
  EXPECT_FALSE(has_warning(on));
  EXPECT_EQ(on.code_rule, "weighted-mean");
  float weights = 0;
  for (const auto& f : on.faces) {
    EXPECT_TRUE(f.found_again);
    if (f.status == "restored") EXPECT_TRUE(f.degradation_read) << f.index;
    weights += f.code_weight;
  }
  EXPECT_NEAR(weights, 1.f, 1e-4f);
  // Both scene restorers ran: the blind one, then the conditioned one.
  int scenes = 0;
  for (const auto& m : on.models) scenes += m.find("scene_restorer") != std::string::npos;
  EXPECT_EQ(scenes, 2);
  // The conditioned restorer changed the background too, not only the pasted faces: compare a
  // corner away from every face.
  const auto a = image_to_tensor(on.image, torch::kCPU), b = image_to_tensor(off.image, torch::kCPU);
  EXPECT_GT((a - b).abs().slice(1, a.size(1) - 40, a.size(1)).slice(2, 0, 60).mean().item<float>(), 1e-4f);
}

// --blind-face-fidelity W: a blind face becomes (1 − W) × the restored face + W × the input face, so
// over the faces' boxes the output, brought back to the input's size, strays less from the input's
// bicubic ×4 as W grows (the restored face's invented features are what moves it): at W = 1 the
// faces are that upscale's own, up to the paste's resampling.
TEST(Pipeline, BlindFaceFidelityMixesTheInputFaceIn) {
  F2S_REQUIRE_PIPELINE();
  const Image small = quarter_example();
  Face2Scene f2s(config());
  Face2SceneOptions o;
  o.measure_identity = false;
  // Without the tone match: it shifts a face's core by the membrane of its border's difference to
  // the scene restorer's output, which at W = 1 is the restorer's whole change of tone there.
  o.match_paste_tone = false;
  // The input as its bicubic ×4 shows it, back at its own size (bicubic then area is a slight blur).
  const auto in = F::avg_pool2d(F::interpolate(image_to_tensor(small, torch::kCPU).unsqueeze(0),
                                               F::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{small.height * 4, small.width * 4})
                                                   .mode(torch::kBicubic)
                                                   .align_corners(false))
                                    .clamp(0, 1),
                                F::AvgPool2dFuncOptions(4))[0];
  std::vector<double> gap;
  std::vector<FaceResult> faces;
  for (const double w : {0.0, 0.5, 1.0}) {
    o.blind_face_fidelity = w;
    const auto r = f2s.restore(small, {}, o);
    if (faces.empty()) faces = r.faces;
    const auto y = F::avg_pool2d(image_to_tensor(r.image, torch::kCPU).unsqueeze(0), F::AvgPool2dFuncOptions(4))[0];
    double sum = 0;
    int n = 0;
    for (const auto& f : faces) {
      if (f.status != "restored" || f.paste_side == 0) continue;
      // The middle half of the box: the face's core, away from the blend band.
      const double cx = (f.box.x0 + f.box.x1) / 2, cy = (f.box.y0 + f.box.y1) / 2, h = std::min(f.box.width(), f.box.height()) / 4;
      const int64_t x0 = std::lround(cx - h), y0 = std::lround(cy - h), s = std::max<int64_t>(4, std::lround(2 * h));
      sum += (y - in).slice(1, y0, y0 + s).slice(2, x0, x0 + s).abs().mean().item<double>(), ++n;
    }
    ASSERT_GE(n, 5);
    gap.push_back(sum / n);
  }
  EXPECT_LT(gap[1], 0.8 * gap[0]) << gap[0] << " " << gap[1];
  EXPECT_LT(gap[2], 0.8 * gap[1]) << gap[1] << " " << gap[2];
  std::printf("gap to the input at its own size, W = 0, 0.5, 1: %.4f %.4f %.4f\n", gap[0], gap[1], gap[2]);
  // References are not blind: a fidelity for them alone leaves a blind run unchanged.
  o.blind_face_fidelity = 0;
  o.ref_face_fidelity = 1;
  const auto same = image_to_tensor(f2s.restore(small, {}, o).image, torch::kCPU);
  o.ref_face_fidelity = 0;
  EXPECT_TRUE(torch::equal(same, image_to_tensor(f2s.restore(small, {}, o).image, torch::kCPU)));
}

// At ×1 the photo is large in pixels and, as the models were trained (FaceGeometry::
// input_detail_divisor), holds detail at a quarter of them. The consistency step must follow that
// detail, not the pixel count: on the example's faces blown up ×4 (native sides ≥ 128, so by pixels
// alone the step would never run), the pasted faces stay close to the scene restorer's coarse
// structure, as with the step at ×4, with a code and in blind mode alike.
TEST(Pipeline, AtScaleOneConsistencyFollowsTheDetailTheModelsSee) {
  F2S_REQUIRE_PIPELINE();
  Face2Scene f2s(config());
  const Image small = crop(read_image(example()), 90, 70, 160, 110);
  auto t = image_to_tensor(small, torch::kCPU, torch::kFloat32).unsqueeze(0);
  t = F::interpolate(t, F::InterpolateFuncOptions().size(std::vector<int64_t>{440, 640}).mode(torch::kBicubic).align_corners(false));
  const Image up = tensor_to_image(t[0].clamp(0, 1), 8);
  Face2SceneOptions o;
  o.scale = 1;
  o.measure_identity = false;
  const auto r = f2s.restore(up, {}, o);
  ASSERT_TRUE(r.face_code);
  ASSERT_GE(r.faces_restored, 1);
  EXPECT_EQ(FaceGeometry::input_detail_divisor(1), 4.0);
  EXPECT_EQ(FaceGeometry::input_detail_divisor(4), 1.0);
  for (const auto& f : r.faces)
    if (f.status == "restored") EXPECT_GE(f.native_side, 128.0) << "the faces must be larger than Ref-FR's side";
  const auto [gap_on, gap_off] = consistency_gaps(f2s, up, o, r.faces);
  EXPECT_LT(gap_on, 0.5 * gap_off) << "consistent " << gap_on << ", off " << gap_off;
  // Blind mode reads no code; the step still follows the detail.
  o.blind = true;
  const auto [b_on, b_off] = consistency_gaps(f2s, up, o, r.faces);
  EXPECT_LT(b_on, 0.5 * b_off) << "blind: consistent " << b_on << ", off " << b_off;
}

// Attention over many queries (the scene restorer's statistics pass over a 1 MP copy of the photo)
// is computed a block of queries at a time, to bound memory: the blocks give the full result.
TEST(PipelineMemory, BlockwiseAttentionEqualsTheWholeMatrix) {
  torch::manual_seed(3);
  const int64_t nq = 8200, nk = 8192, d = 4;  // 8200 × 8192 scores: over the 2^26 whole-matrix limit
  const auto q = torch::randn({1, nq, d}), k = torch::randn({1, nk, d}), v = torch::randn({1, nk, d});
  const auto got = multi_head_attention(q, k, v, 1);
  const auto want = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(1, 2)) / std::sqrt(double(d)), -1), v);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-5f);
}

// The paste rule (docs/pipeline.md, "The paste border"), checked as rules: the blend band is the
// scene, a tone offset moves the whole core, a linear ramp (harmonic) is met exactly, and Ref-FR's
// structure stays in the core. A cross-fade or a plain low-pass (the earlier rule) fails the first.
TEST(PipelinePaste, SeamlessPasteIsTheSceneInTheBandAndKeepsTheFaceInside) {
  torch::manual_seed(5);
  const int64_t N = 128;
  const auto face = torch::rand({3, N, N}) * 0.5 + 0.25;  // Ref-FR's face: detail everywhere
  const auto band = face_blend_mask(N, torch::kCPU) < 0.98;
  const auto core = face_blend_mask(N, torch::kCPU, paste_core_options()) > 0.999;  // Ref-FR's own
  ASSERT_GT(band.sum().item<int64_t>(), 1000);
  ASSERT_GT(core.sum().item<int64_t>(), 3000);
  // A scene with other content in the band and a brighter tone.
  const auto scene = torch::rand({3, N, N}) * 0.3 + 0.4;
  const auto out = seamless_paste_face(face, scene);
  EXPECT_LT((out - scene).abs().masked_select(band.expand_as(out)).max().item<float>(), 1e-4f);
  // In the core, the change is smooth: it carries none of the scene's pixel noise (the face's
  // detail stays), so out − face has a tiny high-frequency part.
  const auto shift = out - face;
  const auto hf = shift - F::avg_pool2d(shift.unsqueeze(0), F::AvgPool2dFuncOptions(5).stride(1).padding(2).count_include_pad(false))[0];
  EXPECT_LT(hf.abs().masked_select(core.expand_as(hf)).mean().item<float>(), 0.01f);
  // A constant offset moves everything by that offset; a linear ramp is reproduced exactly.
  const auto off = seamless_paste_face(face, face + 0.1);
  EXPECT_LT((off - face - 0.1).abs().max().item<float>(), 1e-3f);
  const auto ramp = torch::linspace(-0.1, 0.1, N).view({1, 1, N}).expand({3, N, N});
  const auto lin = seamless_paste_face(face, face + ramp);
  EXPECT_LT((lin - face - ramp).abs().masked_select(core.expand_as(lin)).max().item<float>(), 0.01f);
  EXPECT_THROW(seamless_paste_face(face, scene.slice(1, 0, 64)), ArgumentError);
}

TEST(Pipeline, HundredFacesAreBounded) {
  F2S_REQUIRE_PIPELINE();
  F2S_REQUIRE_DATA("faces/hq/london/001_neutral.jpg");
  // A 10×10 tiling of one 64² aligned face.
  const auto face = image_to_tensor(resized(read_image(london("001_neutral.jpg")), 64, 64), torch::kCPU);
  const auto grid = face.repeat({1, 10, 10});
  const Image img = tensor_to_image(grid, 8);
  Face2Scene f2s(config());
  Face2SceneOptions o;
  o.scale = 1;
  o.measure_identity = false;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = f2s.restore(img, {}, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(r.faces_detected, 64);
  EXPECT_EQ(r.faces_restored, 64);
  int skipped = 0;
  for (const auto& f : r.faces) skipped += f.status.find("over the limit") != std::string::npos;
  EXPECT_EQ(skipped, r.faces_detected - 64);
  bool warned = false;
  for (const auto& w : r.warnings) warned = warned || w.find("over the limit of 64") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_LT(secs, 180.0);  // bounded (about 15 s on the idle 2-core CPU)
}

// ---- the CLI ------------------------------------------------------------------------------------

TEST(PipelineCli, BadInputsAreReportedAndTheRestIsDone) {
  F2S_REQUIRE_PIPELINE();
  const std::string dir = f2s_test::temp_dir("pipeline_cli");
  const std::string in = dir + "/in", out = dir + "/out";
  fs::create_directories(in);
  torch::manual_seed(2);
  write_image(in + "/a_noface.png", tensor_to_image(torch::rand({3, 24, 32}) * 0.3 + 0.3, 8));
  Image one(1, 1, 3);
  one.data = {1, 2, 3};
  write_image(in + "/b_one_pixel.png", one);
  Image deep = tensor_to_image(torch::rand({3, 20, 28}), 16);
  set_alpha_from_tensor(deep, torch::linspace(0, 1, 28).expand({1, 20, 28}));
  write_image(in + "/c_16bit_alpha.png", deep);
  write_image(in + "/d_grey.jpg", crop(read_image(example()), 90, 70, 120, 90));
  {
    const std::string bytes = read_file(example());
    std::ofstream(in + "/e_truncated.jpg", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  const std::string report = dir + "/report.json";
  const auto r = f2s_test::run_cli("-q restore " + in + " -o " + out + " --scale 1 --models " + models_dir() +
                                   " --report " + report);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("e_truncated.jpg: JPEG data is truncated"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 of 5 input(s) failed"), std::string::npos) << r.output;
  for (const char* name : {"a_noface.png", "b_one_pixel.png", "c_16bit_alpha.png", "d_grey.jpg"})
    EXPECT_TRUE(file_exists(out + "/" + name)) << name << "\n" << r.output;
  EXPECT_FALSE(file_exists(out + "/e_truncated.jpg"));
  expect_nothing_half_written(out);
  const Image deep_out = read_image(out + "/c_16bit_alpha.png");
  EXPECT_EQ(deep_out.bit_depth, 16);
  EXPECT_TRUE(deep_out.has_alpha());
  EXPECT_EQ(read_image(out + "/d_grey.jpg").channels, 1);
  const auto j = nlohmann::json::parse(read_file(report));
  EXPECT_EQ(j["images"].size(), 4u);
  ASSERT_EQ(j["failures"].size(), 1u);
  EXPECT_NE(j["failures"][0]["input"].get<std::string>().find("e_truncated.jpg"), std::string::npos);
  EXPECT_NE(j["images"][0]["warnings"].dump().find("no usable face"), std::string::npos);

  // Faces found ahead on two threads (as on a GPU): the same outputs, the same failure, detect timed.
  const auto ahead = f2s_test::run_cli("-q restore " + in + " -o " + dir + "/ahead --scale 1 --models " + models_dir() +
                                       " --detect-threads 2 --report " + dir + "/ahead.json");
  EXPECT_EQ(ahead.exit_code, 1) << ahead.output;
  EXPECT_NE(ahead.output.find("e_truncated.jpg: JPEG data is truncated"), std::string::npos) << ahead.output;
  for (const char* name : {"a_noface.png", "b_one_pixel.png", "c_16bit_alpha.png", "d_grey.jpg"}) {
    ASSERT_TRUE(file_exists(dir + "/ahead/" + name)) << name << "\n" << ahead.output;
    EXPECT_EQ(read_image(dir + "/ahead/" + name).data, read_image(out + "/" + name).data) << name;
  }
  const auto ja = nlohmann::json::parse(read_file(dir + "/ahead.json"));
  ASSERT_EQ(ja["images"].size(), 4u);
  for (const auto& im : ja["images"])
    if (im["input"].get<std::string>().find("d_grey") != std::string::npos) {
      EXPECT_GE(im["faces_detected"].get<int>(), 1) << im.dump();
      EXPECT_GT(im["timings_s"]["detect"].get<double>(), 1e-3) << im.dump();  // HOG time, not a copy of given faces
    }

  // --skip-existing resumes: nothing is redone, the truncated file still fails.
  const auto again = f2s_test::run_cli("restore " + in + " -o " + out + " --scale 1 --skip-existing --models " +
                                       models_dir());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("1 of 1 input(s) failed"), std::string::npos) << again.output;

  // Reference folders: no faces, missing: one clear line each, exit 1.
  fs::create_directories(dir + "/refs_noface");
  write_image(dir + "/refs_noface/flat.png", tensor_to_image(torch::full({3, 64, 64}, 0.5), 8));
  if (FaceDescriptor::available()) {
    const auto nf = f2s_test::run_cli("-q restore " + in + "/d_grey.jpg -o " + dir + "/x.png --scale 1 --models " +
                                      models_dir() + " --refs " + dir + "/refs_noface");
    EXPECT_EQ(nf.exit_code, 1);
    EXPECT_NE(nf.output.find("no usable face in any reference photo"), std::string::npos) << nf.output;
    const auto miss = f2s_test::run_cli("-q restore " + in + "/d_grey.jpg -o " + dir + "/x.png --scale 1 --models " +
                                        models_dir() + " --refs " + dir + "/nope");
    EXPECT_EQ(miss.exit_code, 1);
    EXPECT_NE(miss.output.find("reference folder not found"), std::string::npos) << miss.output;
  }
  // A missing input is reported by name; the existing one is done.
  const auto mixed = f2s_test::run_cli("-q restore " + in + "/a_noface.png " + dir + "/ghost.jpg -o " + dir +
                                       "/mixed --scale 1 --models " + models_dir());
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_NE(mixed.output.find("ghost.jpg: no such file or folder"), std::string::npos) << mixed.output;
  EXPECT_TRUE(file_exists(dir + "/mixed/a_noface.png"));
  f2s_test::remove_tree(dir);
}

// --profile-trace: with Kineto (LibTorch 2.x builds), a Chrome trace whose user scopes name the
// pipeline's stages; without it (Debian's 1.13), one clear line, exit 1, no file left behind.
TEST(PipelineCli, ProfileTraceNamesTheStagesOrSaysItCannot) {
  F2S_REQUIRE_PIPELINE();
  const std::string dir = f2s_test::temp_dir("pipeline_profile");
  torch::manual_seed(3);
  write_image(dir + "/in.png", tensor_to_image(torch::rand({3, 24, 32}) * 0.3 + 0.3, 8));
  const std::string trace = dir + "/trace.json";
  const auto r = f2s_test::run_cli("-q restore " + dir + "/in.png -o " + dir + "/out.png --scale 1 --models " +
                                   models_dir() + " --profile-trace " + trace);
  if (r.exit_code == 0) {
    const auto j = nlohmann::json::parse(read_file(trace));
    bool scene = false;
    for (const auto& e : j["traceEvents"])
      if (e.contains("name") && e["name"].is_string() && e["name"].get<std::string>() == "f2s::scene") scene = true;
    EXPECT_TRUE(scene) << "no f2s::scene scope in the trace";
    EXPECT_TRUE(file_exists(dir + "/out.png"));
  } else {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("cannot write a profile trace"), std::string::npos) << r.output;
    EXPECT_FALSE(file_exists(trace));
    EXPECT_FALSE(file_exists(trace + ".part"));
  }
  f2s_test::remove_tree(dir);
}

TEST(PipelineCli, SideBySideRestoreFaceAndHelp) {
  F2S_REQUIRE_PIPELINE();
  const std::string dir = f2s_test::temp_dir("pipeline_cli2");
  write_image(dir + "/group.png", crop(read_image(example()), 90, 70, 120, 90));
  const auto r = f2s_test::run_cli("-q restore " + dir + "/group.png -o " + dir + "/out/ --scale 2 --side-by-side --models " +
                                   models_dir() + " --report " + dir + "/r.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Image out = read_image(dir + "/out/group.png");
  EXPECT_EQ(out.width, 240);
  const Image sbs = read_image(dir + "/out/group_side_by_side.png");
  EXPECT_GT(sbs.width, 480);
  EXPECT_EQ(sbs.height, 180);
  const auto j = nlohmann::json::parse(read_file(dir + "/r.json"));
  EXPECT_GE(j["images"][0]["faces_restored"].get<int>(), 1);
  EXPECT_TRUE(j["images"][0]["timings_s"].contains("restorer"));

  const auto rf = f2s_test::run_cli("-q restore-face " + dir + "/group.png -o " + dir + "/faces.png --models " +
                                    models_dir() + " --report " + dir + "/f.json");
  ASSERT_EQ(rf.exit_code, 0) << rf.output;
  EXPECT_EQ(read_image(dir + "/faces.png").width, 120);
  const auto jf = nlohmann::json::parse(read_file(dir + "/f.json"));
  EXPECT_GE(jf["images"][0]["faces"].size(), 1u);
  EXPECT_TRUE(jf["images"][0]["faces"][0].contains("box"));

  const auto help = f2s_test::run_cli("restore --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("Examples"), std::string::npos);
  EXPECT_NE(help.output.find("--refs"), std::string::npos);
  f2s_test::remove_tree(dir);
}
