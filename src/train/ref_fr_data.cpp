// Ref-FR data: the identity split, the content guard, packing for the GPU machine and loading
// faces grouped by identity (face2scene/train_ref_fr.hpp).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/image.hpp"
#include "face2scene/tensor.hpp"
#include "face2scene/train_ref_fr.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace fs = std::filesystem;

namespace {
std::vector<std::string> sorted_entries(const fs::path& dir, bool dirs) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) throw IoError(dir.string() + ": folder not found");
  for (const auto& e : fs::directory_iterator(dir)) {
    if (dirs ? e.is_directory() : (e.is_regular_file() && is_image_path(e.path().string())))
      out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> images_under(const fs::path& dir) {
  if (!fs::is_directory(dir)) return {};
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && is_image_path(e.path().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// uint8 [3,h,w] -> float [1,3,size,size] area-resized (the aligned faces are already square).
torch::Tensor resized(const torch::Tensor& u8, int64_t size) {
  auto x = u8.unsqueeze(0).to(torch::kFloat32).div(255.0);
  if (x.size(2) != size || x.size(3) != size) x = resize_images(x, size, size, ResizeMode::kArea);
  return x.clamp(0, 1);
}
}  // namespace

// ---- split ----------------------------------------------------------------------------------
std::vector<FaceSplitEntry> make_face_split(const std::string& root) {
  std::vector<FaceSplitEntry> out;
  const fs::path faces = fs::path(root) / "faces";
  std::vector<std::string> london;
  for (const auto& f : sorted_entries(faces / "hq/london", false)) {
    const std::string id = f.substr(0, f.find('_'));
    if (london.empty() || london.back() != id) london.push_back(id);
  }
  for (size_t i = 0; i < london.size(); ++i)
    out.push_back({i % 3 == 2 ? "test" : "train", "london_" + london[i], "faces/hq/london"});
  for (const auto& f : sorted_entries(faces / "hq/canada", false))
    out.push_back({"train", "canada_" + fs::path(f).stem().string(), "faces/hq/canada"});
  for (const char* split : {"train", "test"})
    for (const auto& id : sorted_entries(faces / "celeba_id" / split, true))
      out.push_back({split, "celeba_" + id, std::string("faces/celeba_id/") + split + "/" + id + "/faces"});
  return out;
}

void write_face_split(const std::string& path, const std::vector<FaceSplitEntry>& split) {
  std::ostringstream s;
  s << "# Ref-FR identity split (face2scene pack-ref-fr): split, identity, aligned-face folder under ../shared/data\n";
  for (const auto& e : split) s << e.split << "\t" << e.identity << "\t" << e.source << "\n";
  write_file_atomically(path, s.str());
}

std::vector<FaceSplitEntry> read_face_split(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<FaceSplitEntry> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    FaceSplitEntry e;
    if (!std::getline(ls, e.split, '\t') || !std::getline(ls, e.identity, '\t') || !std::getline(ls, e.source) ||
        (e.split != "train" && e.split != "test"))
      throw FormatError(path + ":" + std::to_string(n) + ": expected 'train|test<TAB>identity<TAB>folder'");
    out.push_back(e);
  }
  if (out.empty()) throw FormatError(path + ": no identities in the split file");
  return out;
}

std::vector<std::string> identity_face_files(const std::string& root, const FaceSplitEntry& e) {
  const fs::path dir = fs::path(root) / e.source;
  std::vector<std::string> out;
  const std::string prefix = e.identity.substr(e.identity.find('_') + 1);
  const bool shared_folder = e.source.rfind("faces/hq/", 0) == 0;  // London/Canada: one folder for all people
  for (const auto& f : sorted_entries(dir, false)) {
    if (shared_folder && f.rfind(prefix, 0) != 0) continue;
    if (shared_folder && f.size() > prefix.size() && f[prefix.size()] != '_' && f[prefix.size()] != '.') continue;
    out.push_back((dir / f).string());
  }
  if (out.empty()) throw IoError(dir.string() + ": no faces of " + e.identity);
  return out;
}

// ---- content guard ----------------------------------------------------------------------------
torch::Tensor content_thumbnails(const std::vector<std::string>& files, int threads) {
  auto rows = decode_all(files, {}, threads, [](torch::Tensor t) {
    // High-pass of a 64² grey thumbnail: aligned studio faces share their low frequencies (two
    // different London people reach NCC 0.95 on plain 32² thumbnails), their details differ.
    auto g = resized(t, 64).mean(1, true);  // [1,1,64,64]
    auto low = torch::nn::functional::interpolate(
        resize_images(g, 16, 16, ResizeMode::kArea),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{64, 64}).mode(torch::kBilinear).align_corners(false));
    auto h = (g - low).reshape({-1});
    h = h - h.mean();
    return h / h.norm().clamp_min(1e-6);
  });
  if (rows.empty()) return torch::zeros({0, 4096});
  return torch::stack(rows);
}

std::vector<ContentClash> content_clashes(const std::vector<std::string>& train, const std::vector<std::string>& heldout,
                                          double threshold, double* max_ncc, int threads) {
  std::vector<ContentClash> out;
  if (max_ncc) *max_ncc = -1;
  if (train.empty() || heldout.empty()) return out;
  auto a = content_thumbnails(train, threads), b = content_thumbnails(heldout, threads);
  auto ncc = torch::matmul(a, b.t());  // [Ntrain, Nheld]
  auto [best, arg] = ncc.max(1);
  if (max_ncc) *max_ncc = best.max().item<double>();
  for (int64_t i = 0; i < best.size(0); ++i) {
    const double v = best[i].item<double>();
    if (v >= threshold) out.push_back({train[size_t(i)], heldout[size_t(arg[i].item<int64_t>())], v});
  }
  return out;
}

// ---- packing --------------------------------------------------------------------------------
PackReport pack_ref_fr_data(const std::string& root, const std::vector<FaceSplitEntry>& split, const std::string& out_dir,
                            int64_t size) {
  std::vector<std::string> heldout;
  std::vector<std::pair<std::string, std::vector<std::string>>> train;
  for (const auto& e : split) {
    auto files = identity_face_files(root, e);
    if (e.split == "test") {
      heldout.insert(heldout.end(), files.begin(), files.end());
      // The whole scene photos of a test identity are benchmark ground truth too.
      auto scenes = images_under(fs::path(root) / e.source / ".." / "scenes");
      heldout.insert(heldout.end(), scenes.begin(), scenes.end());
    } else {
      train.emplace_back(e.identity, std::move(files));
    }
  }
  for (const char* other : {"faces/celebref", "faces/celebref_pairs", "faces/other"}) {
    auto f = images_under(fs::path(root) / other);
    heldout.insert(heldout.end(), f.begin(), f.end());
  }
  std::vector<std::string> all_train;
  for (const auto& [id, files] : train) all_train.insert(all_train.end(), files.begin(), files.end());
  PackReport r;
  const auto clashes = content_clashes(all_train, heldout, 0.95, &r.max_ncc);
  if (!clashes.empty())
    throw FormatError(clashes[0].train_file + ": its content matches the held-out " + clashes[0].heldout_file +
                      " (thumbnail NCC " + std::to_string(clashes[0].ncc) + " >= 0.95); " +
                      std::to_string(clashes.size()) + " training file(s) clash, refusing to pack");
  r.heldout_files = int64_t(heldout.size());
  for (const auto& [id, files] : train) {
    const fs::path dir = fs::path(out_dir) / id;
    fs::create_directories(dir);
    auto faces = decode_all(files, {}, 0, [&](torch::Tensor t) { return resized(t, size).squeeze(0); });
    for (size_t i = 0; i < faces.size(); ++i) {
      WriteOptions wo;
      wo.jpeg_quality = 95;
      write_image((dir / (fs::path(files[i]).stem().string() + ".jpg")).string(), tensor_to_image(faces[i]), wo);
    }
    r.faces += int64_t(faces.size());
    ++r.identities;
  }
  return r;
}

// ---- loading --------------------------------------------------------------------------------
FaceSet load_face_set(const std::string& dir, int64_t size, const std::vector<FaceSplitEntry>& split,
                      const torch::Device& device, int threads, int shard_rank, int shard_count) {
  std::map<std::string, std::string> split_of;
  for (const auto& e : split) split_of[e.identity] = e.split;
  FaceSet set;
  std::vector<std::string> files;
  const auto all_ids = sorted_entries(dir, true);
  std::vector<std::string> ids;
  for (size_t i : dist::shard_indices(all_ids.size(), shard_rank, std::max(shard_count, 1))) ids.push_back(all_ids[i]);
  for (const auto& id : ids) {
    auto it = split_of.find(id);
    if (it == split_of.end())
      throw FormatError(dir + "/" + id + ": identity not in the split file; refusing to train on an unlisted identity");
    if (it->second != "train")
      throw FormatError(dir + "/" + id + ": a held-out (test) identity; refusing to train on it");
    const int64_t idx = int64_t(set.names.size());
    set.names.push_back(id);
    set.members.emplace_back();
    for (const auto& f : sorted_entries(fs::path(dir) / id, false)) {
      set.members.back().push_back(int64_t(files.size()));
      set.identity.push_back(idx);
      files.push_back((fs::path(dir) / id / f).string());
    }
  }
  if (files.empty()) throw IoError(dir + ": no identity folders with faces");
  auto faces = decode_all(files, {}, threads, [&](torch::Tensor t) {
    return resized(t, size).squeeze(0).mul(255.0).round().clamp(0, 255).to(torch::kUInt8);
  });
  set.faces = torch::stack(faces).to(device);
  set.files = files;
  int64_t multi = 0;
  for (const auto& m : set.members) multi += m.size() > 1;
  log_info("Ref-FR data: " + std::to_string(files.size()) + " faces of " + std::to_string(set.names.size()) +
           " train identities (" + std::to_string(multi) + " with 2+ photos) from " + dir +
           (shard_count > 1 ? " (shard " + std::to_string(shard_rank) + " of " + std::to_string(shard_count) + ")" : ""));
  return set;
}

RefFRBatch sample_ref_fr_batch(const FaceSet& set, int64_t n, int64_t refs, std::mt19937_64& rng) {
  std::vector<int64_t> eligible;
  for (size_t i = 0; i < set.members.size(); ++i)
    if (refs == 0 || set.members[i].size() > 1) eligible.push_back(int64_t(i));
  if (eligible.empty()) throw ArgumentError("Ref-FR batch: no identity has two photos to draw references from");
  RefFRBatch b;
  std::vector<int64_t> ref_flat;
  for (int64_t k = 0; k < n; ++k) {
    const auto& m = set.members[size_t(eligible[rng() % eligible.size()])];
    const int64_t t = m[rng() % m.size()];
    b.target_index.push_back(t);
    std::vector<int64_t> others;
    for (auto f : m)
      if (f != t) others.push_back(f);
    std::shuffle(others.begin(), others.end(), rng);
    b.ref_index.emplace_back();
    // Without replacement while there are enough other photos; then repeats (never the target).
    for (int64_t r = 0; r < refs; ++r) b.ref_index.back().push_back(others[size_t(r) % others.size()]);
    ref_flat.insert(ref_flat.end(), b.ref_index.back().begin(), b.ref_index.back().end());
  }
  auto dev = set.faces.device();
  auto pick = [&](const std::vector<int64_t>& idx) {
    auto i = torch::tensor(idx, torch::kInt64).to(dev);
    return set.faces.index_select(0, i).to(torch::kFloat32).div_(255.0);
  };
  b.hq = pick(b.target_index);
  if (refs > 0) {
    const int64_t s = set.faces.size(2);
    b.refs = pick(ref_flat).reshape({n, refs, 3, s, s});
  }
  return b;
}

}  // namespace face2scene
