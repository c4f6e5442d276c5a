// Reference photos for Ref-FR: found, aligned, described and checked for one identity per person.
#include <algorithm>
#include <filesystem>

#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene {
namespace fs = std::filesystem;

torch::Tensor ReferencePersonSet::descriptors() const {
  std::vector<torch::Tensor> rows;
  for (const auto& p : photos) rows.push_back(p.descriptor);
  return rows.empty() ? torch::Tensor() : torch::stack(rows);
}

const ReferencePersonSet* ReferenceSet::find(const std::string& name) const {
  for (const auto& p : people)
    if (p.name == name) return &p;
  return nullptr;
}

size_t ReferenceSet::photo_count() const {
  size_t n = 0;
  for (const auto& p : people) n += p.photos.size();
  return n;
}

namespace {

std::vector<fs::path> images_in(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_path(e.path().string())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// One photo → its largest face aligned at `face_size` (Ref-FR) and described at the descriptor's
// own alignment. Throws Error with the reason when the photo is unusable.
ReferencePhoto describe_photo(const fs::path& file, const FaceDetector& detector, const FaceDescriptor& net,
                              int64_t face_size) {
  const Image img = read_image(file.string());
  auto faces = detector.detect(img);
  if (faces.empty()) throw FormatError("no face found");
  if (!faces[0].has_points5) throw FormatError("no landmarks on its face");
  const auto t = image_to_tensor(img, torch::kCPU, torch::kFloat32, /*rgb=*/true);
  ReferencePhoto p;
  p.file = file.string();
  p.aligned = align_face(t, faces[0].points5, static_cast<int>(face_size)).image.contiguous();
  auto a512 = align_face(t.to(net.device()), faces[0].points5, 512).image;
  p.descriptor = net.embed(crop_for_descriptor(a512))[0].to(torch::kCPU, torch::kFloat32);
  return p;
}

// Drops, worst first, photos whose median distance to the person's other photos is above the
// threshold, until all agree.
void drop_outliers(ReferencePersonSet& person, float threshold, std::vector<std::string>& warnings) {
  while (person.photos.size() >= 2) {
    const auto d = torch::cdist(person.descriptors().unsqueeze(0), person.descriptors().unsqueeze(0))[0];
    const int64_t n = d.size(0);
    int64_t worst = -1;
    float worst_median = threshold;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> others;
      for (int64_t j = 0; j < n; ++j)
        if (j != i) others.push_back(d[i][j].item<float>());
      std::sort(others.begin(), others.end());
      // Lower median, so of two photos that disagree neither wins by rounding; ">=" then picks
      // the later photo in name order.
      const float med = others[(others.size() - 1) / 2];
      if (med >= worst_median) {
        worst_median = med;
        worst = i;
      }
    }
    if (worst < 0) break;
    const std::string w = "reference " + person.photos[size_t(worst)].file + " skipped: its face does not match " +
                          person.name + "'s other references (identity distance " +
                          std::to_string(worst_median).substr(0, 5) + " > " + std::to_string(threshold).substr(0, 4) +
                          ")";
    log_warn(w);
    warnings.push_back(w);
    person.photos.erase(person.photos.begin() + worst);
  }
}

}  // namespace

ReferenceSet load_reference_set(const std::string& dir, const FaceDetector& detector, const FaceDescriptor& net,
                                int64_t face_size, float threshold) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IoError("reference folder not found: " + dir);
  std::vector<std::pair<std::string, std::vector<fs::path>>> groups;
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  std::string own = fs::path(dir).lexically_normal().filename().string();
  if (own.empty() || own == ".") own = fs::path(dir).lexically_normal().parent_path().filename().string();
  if (own.empty()) own = "person";
  const auto top = images_in(dir);
  if (!top.empty()) groups.emplace_back(own, top);
  for (const auto& s : subdirs) {
    auto files = images_in(s);
    if (!files.empty()) groups.emplace_back(s.filename().string(), files);
  }
  if (groups.empty())
    throw IoError("reference folder " + dir + " holds no .jpg/.png photos (expected DIR/*.jpg or DIR/<person>/*.jpg)");
  ReferenceSet set;
  for (auto& [name, files] : groups) {
    ReferencePersonSet person;
    person.name = name;
    for (const auto& f : files) {
      try {
        person.photos.push_back(describe_photo(f, detector, net, face_size));
      } catch (const Error& e) {
        const std::string w = "reference " + f.string() + " skipped: " + e.what();
        log_warn(w);
        set.warnings.push_back(w);
      }
    }
    drop_outliers(person, threshold, set.warnings);
    if (person.photos.empty()) {
      const std::string w = "reference person '" + name + "' has no usable photo";
      log_warn(w);
      set.warnings.push_back(w);
      continue;
    }
    set.people.push_back(std::move(person));
  }
  if (set.people.empty()) throw IoError("no usable face in any reference photo under " + dir);
  return set;
}

void merge_reference_sets(ReferenceSet& into, ReferenceSet more) {
  for (auto& p : more.people) {
    std::string name = p.name;
    for (int k = 2; into.find(name); ++k) name = p.name + "_" + std::to_string(k);
    p.name = name;
    into.people.push_back(std::move(p));
  }
  into.warnings.insert(into.warnings.end(), more.warnings.begin(), more.warnings.end());
}

}  // namespace face2scene
