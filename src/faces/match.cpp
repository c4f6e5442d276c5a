// Identity matching of detected faces against per-person reference folders.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <sstream>

#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {

namespace fs = std::filesystem;

std::vector<ReferencePerson> load_references(const std::string& dir, const FaceDetector& detector,
                                             const DescriptorFn& descriptor) {
  if (!fs::is_directory(dir)) throw IoError("reference folder not found: " + dir);
  std::vector<fs::path> people;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) people.push_back(e.path());
  std::sort(people.begin(), people.end());
  if (people.empty())
    throw IoError("reference folder " + dir + " has no person sub-folders (expected DIR/<person>/*.jpg)");
  std::vector<ReferencePerson> refs;
  for (const auto& p : people) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(p))
      if (e.is_regular_file() && is_image_path(e.path().string())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    ReferencePerson person;
    person.name = p.filename().string();
    std::vector<torch::Tensor> rows;
    for (const auto& f : files) {
      try {
        Image img = read_image(f.string());
        auto faces = detector.detect(img);
        if (faces.empty() || !faces[0].has_points5) {
          // Reference crops are often tight face crops, too tight for the detector's window:
          // take the whole image as the face box and only place the landmarks.
          DetectedFace whole;
          whole.box = {0.f, 0.f, static_cast<float>(img.width), static_cast<float>(img.height)};
          whole.detector = "whole-image";
          faces = {whole};
          detector.add_landmarks(img, faces);
        }
        auto t = image_to_tensor(img, torch::kCPU, torch::kFloat32, /*rgb=*/true);
        rows.push_back(descriptor(t, faces[0]).to(torch::kCPU, torch::kFloat32).flatten());
        person.files.push_back(f.string());
      } catch (const Error& e) {
        log_warn("reference " + f.string() + " skipped: " + e.what());
      }
    }
    if (rows.empty()) {
      log_warn("reference person '" + person.name + "' has no usable photo in " + p.string());
      continue;
    }
    person.descriptors = torch::stack(rows);
    refs.push_back(std::move(person));
  }
  if (refs.empty()) throw IoError("no usable reference photo under " + dir);
  return refs;
}

namespace {
// Distance of `d` to each person's nearest reference.
std::vector<float> person_distances(const std::vector<ReferencePerson>& refs, const torch::Tensor& d) {
  auto q = d.to(torch::kCPU, torch::kFloat32).flatten();
  std::vector<float> out;
  for (const auto& r : refs) {
    if (r.descriptors.size(1) != q.size(0))
      throw ArgumentError("descriptor length " + std::to_string(q.size(0)) +
                          " differs from the references' " + std::to_string(r.descriptors.size(1)));
    out.push_back((r.descriptors - q.unsqueeze(0)).norm(2, 1).min().item<float>());
  }
  return out;
}
}  // namespace

FaceMatch match_descriptor(const std::vector<ReferencePerson>& refs, const torch::Tensor& descriptor,
                           float threshold) {
  FaceMatch m;
  auto d = person_distances(refs, descriptor);
  if (d.empty()) return m;
  const size_t best = std::min_element(d.begin(), d.end()) - d.begin();
  m.nearest = refs[best].name;
  m.distance = d[best];
  if (d[best] < threshold) m.person = refs[best].name;
  return m;
}

void match_faces(const std::vector<ReferencePerson>& refs, const torch::Tensor& image,
                 std::vector<DetectedFace>& faces, const DescriptorFn& descriptor, float threshold) {
  const size_t nf = faces.size(), np = refs.size();
  std::vector<std::vector<float>> dist(nf);
  for (size_t i = 0; i < nf; ++i) {
    faces[i].identity.clear();
    faces[i].identity_distance = -1.f;
    if (!faces[i].has_points5) continue;
    dist[i] = person_distances(refs, descriptor(image, faces[i]));
  }
  // One person appears at most once in a photo: assign the globally closest (face, person) pairs
  // first, so two look-alikes do not both get the same name.
  struct Pair {
    float d;
    size_t f, p;
  };
  std::vector<Pair> pairs;
  for (size_t i = 0; i < nf; ++i)
    for (size_t j = 0; j < dist[i].size(); ++j) pairs.push_back({dist[i][j], i, j});
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.d < b.d; });
  std::vector<bool> face_done(nf, false), person_done(np, false);
  for (const auto& pr : pairs) {
    if (pr.d >= threshold) break;
    if (face_done[pr.f] || person_done[pr.p]) continue;
    faces[pr.f].identity = refs[pr.p].name;
    faces[pr.f].identity_distance = pr.d;
    face_done[pr.f] = person_done[pr.p] = true;
  }
  std::vector<std::string> unmatched_people;
  for (size_t j = 0; j < np; ++j)
    if (!person_done[j]) unmatched_people.push_back(refs[j].name);
  size_t unknown = 0;
  for (size_t i = 0; i < nf; ++i) {
    if (face_done[i] || dist[i].empty()) continue;
    ++unknown;
    faces[i].identity_distance = *std::min_element(dist[i].begin(), dist[i].end());
  }
  if (!unmatched_people.empty()) {
    std::ostringstream msg;
    msg << "identity: " << unmatched_people.size() << " of " << np
        << " reference people match no face in this photo (distance threshold " << threshold
        << "):";
    for (const auto& n : unmatched_people) msg << " " << n;
    log_warn(msg.str());
  }
  if (unknown > 0)
    log_warn("identity: " + std::to_string(unknown) + " of " + std::to_string(nf) +
             " faces match none of the references");
}

DescriptorFn make_descriptor_fn(std::shared_ptr<const FaceDescriptor> net) {
  if (!net) throw ArgumentError("make_descriptor_fn: no descriptor network");
  return [net](const torch::Tensor& image, const DetectedFace& face) {
    if (!face.has_points5) throw ArgumentError("identity: the face has no landmarks");
    auto aligned = align_face(image.to(net->device()), face.points5, 512);
    return net->embed(crop_for_descriptor(aligned.image))[0];
  };
}

ImageIdentity describe_image_identity(const Image& image, const FaceDetector& detector,
                                      const DescriptorFn& descriptor, bool aligned_crop_fallback) {
  ImageIdentity out;
  auto faces = detector.detect(image);
  out.detected = faces.size();
  DetectedFace face;
  if (!faces.empty() && faces[0].has_points5) {
    face = faces[0];  // detect() sorts by decreasing box area
    out.source = "detected";
  } else if (aligned_crop_fallback && image.width == image.height && image.width >= 16) {
    // The FFHQ template scaled to this size maps the image onto itself (up to the resampling to
    // 512 in align_face), so the chip is crop_for_descriptor's fixed region.
    face.points5 = ffhq_template(image.width);
    face.has_points5 = true;
    face.box = {0.f, 0.f, static_cast<float>(image.width), static_cast<float>(image.height)};
    face.detector = "aligned-crop";
    out.source = "aligned-crop";
  } else {
    return out;
  }
  auto t = image_to_tensor(image, torch::kCPU, torch::kFloat32, /*rgb=*/true);
  out.descriptor = descriptor(t, face).to(torch::kCPU, torch::kFloat32).flatten();
  return out;
}

}  // namespace face2scene
