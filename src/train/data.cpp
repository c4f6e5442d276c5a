// Training data on the device: faces and scene photos decoded once (threads), held as uint8
// tensors on the GPU, cropped and flipped there; degradation mix; parameter normaliser; AdamW.
#include <algorithm>
#include <cmath>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "face2scene/core.hpp"
#include "face2scene/image.hpp"
#include "face2scene/train.hpp"
#include "train/train_util.hpp"

namespace face2scene {
namespace fs = std::filesystem;

std::set<std::string> read_sha256_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot read the held-out checksum list");
  std::set<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string hash;
    ls >> hash;
    if (hash.empty() || hash[0] == '#') continue;
    if (hash.size() != 64) throw FormatError(path + ": not a sha256sum line: '" + line + "'");
    out.insert(hash);
  }
  return out;
}

std::vector<std::string> list_images(const std::string& dir) {
  if (!fs::is_directory(dir)) throw IoError(dir + ": training folder not found");
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw IoError(dir + ": no PNG/JPEG images in the training folder");
  return out;
}

// uint8 [3,H,W] from an image (grey replicated, 16-bit rounded to 8).
torch::Tensor to_u8_chw(const Image& im) {
  const Image rgb = im.to_rgb().with_bit_depth(8);
  auto t = torch::empty({rgb.height, rgb.width, 3}, torch::kUInt8);
  auto* p = t.data_ptr<uint8_t>();
  for (size_t i = 0; i < rgb.data.size(); ++i) p[i] = static_cast<uint8_t>(rgb.data[i]);
  return t.permute({2, 0, 1}).contiguous();
}

// Decodes files on `threads` threads; checks each file's sha256 against the held-out set first.
std::vector<torch::Tensor> decode_all(const std::vector<std::string>& files, const std::set<std::string>& heldout,
                                      int threads, const std::function<torch::Tensor(torch::Tensor)>& post) {
  std::vector<torch::Tensor> out(files.size());
  std::vector<std::string> errors(files.size());
  std::atomic<size_t> next{0};
  const int n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < n; ++t) {
    pool.emplace_back([&]() {
      for (size_t i = next++; i < files.size(); i = next++) {
        try {
          const std::string bytes = read_file(files[i]);
          if (heldout.count(sha256_hex(bytes))) {
            errors[i] = files[i] + ": this image is in the held-out benchmark set (sha256 match); refusing to train on it";
            continue;
          }
          out[i] = post(to_u8_chw(decode_image(bytes, files[i])));
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& e : errors) {
    if (!e.empty()) throw Error(e);
  }
  return out;
}

TrainData load_train_data(const TrainDataOptions& o, const torch::Device& device) {
  std::set<std::string> heldout;
  if (!o.heldout_list.empty()) heldout = read_sha256_list(o.heldout_list);
  TrainData d;
  d.face_files = list_images(o.faces_dir);
  d.scene_files = list_images(o.scenes_dir);
  if (o.shard_count > 1) {
    auto keep = [&](std::vector<std::string>& files) {
      std::vector<std::string> mine;
      for (size_t i : dist::shard_indices(files.size(), o.shard_rank, o.shard_count)) mine.push_back(files[i]);
      files = std::move(mine);
    };
    keep(d.face_files);
    keep(d.scene_files);
  }
  const int64_t fc = o.face_crop, fsz = o.face_size;
  auto faces = decode_all(d.face_files, heldout, o.threads, [&](torch::Tensor t) {
    const int64_t h = t.size(1), w = t.size(2);
    const int64_t c = std::min({fc, h, w});
    t = t.slice(1, (h - c) / 2, (h - c) / 2 + c).slice(2, (w - c) / 2, (w - c) / 2 + c);
    if (c != fsz) {
      auto f = torch::nn::functional::interpolate(
          t.unsqueeze(0).to(torch::kFloat32),
          torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{fsz, fsz}).mode(torch::kBicubic).align_corners(false).antialias(c > fsz));
      t = f.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
    }
    return t.contiguous();
  });
  d.faces = torch::stack(faces).to(device);
  d.scenes = decode_all(d.scene_files, heldout, o.threads, [&](torch::Tensor t) { return t.to(device); });
  if (!o.people_dir.empty()) {
    d.people_files = list_images(o.people_dir);
    d.people = decode_all(d.people_files, heldout, o.threads, [&](torch::Tensor t) { return t.to(device); });
  }
  log_info("training data: " + std::to_string(d.faces.size(0)) + " faces (" + o.faces_dir + "), " +
           std::to_string(d.scenes.size()) + " scenes (" + o.scenes_dir + ")" +
           (o.people_dir.empty() ? "" : ", " + std::to_string(d.people.size()) + " people photos (" + o.people_dir + ")") +
           ", none in the held-out list (" + std::to_string(heldout.size()) + " checksums)" +
           (o.shard_count > 1 ? "; shard " + std::to_string(o.shard_rank) + " of " + std::to_string(o.shard_count) : ""));
  return d;
}

torch::Tensor sample_faces(const TrainData& d, int64_t n, torch::Generator& gen) {
  auto idx = torch::randint(d.faces.size(0), {n}, gen, torch::TensorOptions().dtype(torch::kInt64)).to(d.faces.device());
  auto x = d.faces.index_select(0, idx).to(torch::kFloat32).div_(255.0);
  auto flip = torch::rand({n}, gen).lt(0.5).to(d.faces.device()).view({n, 1, 1, 1});
  return torch::where(flip, x.flip({3}), x);
}

torch::Tensor sample_scene_crops(const TrainData& d, int64_t n, int64_t crop, torch::Generator& gen) {
  std::vector<torch::Tensor> out;
  auto pick = torch::randint(int64_t(d.scenes.size()), {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
  auto u = torch::rand({n, 3}, gen);
  for (int64_t i = 0; i < n; ++i) {
    const auto& s = d.scenes[size_t(pick[i].item<int64_t>())];
    const int64_t h = s.size(1), w = s.size(2);
    if (h < crop || w < crop) throw ArgumentError("training scene smaller than the crop (" + std::to_string(crop) + ")");
    const int64_t y = int64_t(u[i][0].item<float>() * float(h - crop + 1)) % (h - crop + 1);
    const int64_t x = int64_t(u[i][1].item<float>() * float(w - crop + 1)) % (w - crop + 1);
    auto c = s.slice(1, y, y + crop).slice(2, x, x + crop);
    if (u[i][2].item<float>() < 0.5) c = c.flip({2});
    out.push_back(c);
  }
  return torch::stack(out).to(torch::kFloat32).div_(255.0);
}

torch::Tensor sample_scene_crops(const TrainData& d, int64_t n, int64_t crop, torch::Generator& gen,
                                 double people_fraction, double min_zoom) {
  // The plain draws first, so people_fraction 0 reproduces the overload above exactly.
  auto out = sample_scene_crops(d, n, crop, gen);
  if (people_fraction <= 0 || d.people.empty()) return out;
  if (!(min_zoom > 0 && min_zoom <= 1)) throw ArgumentError("people crops: min_zoom must be in (0, 1]");
  auto use = torch::rand({n}, gen);
  auto pick = torch::randint(int64_t(d.people.size()), {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
  auto u = torch::rand({n, 4}, gen);
  for (int64_t i = 0; i < n; ++i) {
    if (use[i].item<double>() >= people_fraction) continue;
    const auto& s = d.people[size_t(pick[i].item<int64_t>())];
    const int64_t h = s.size(1), w = s.size(2);
    if (h < crop || w < crop) throw ArgumentError("people photo smaller than the crop (" + std::to_string(crop) + ")");
    // Side of the square cut from the photo: crop (full resolution) … crop / min_zoom (a wider
    // view, area-downscaled), at most the photo's short side.
    const int64_t max_side = std::min({h, w, int64_t(std::floor(double(crop) / min_zoom))});
    const int64_t side = crop + int64_t(u[i][0].item<float>() * float(max_side - crop + 1)) % (max_side - crop + 1);
    const int64_t y = int64_t(u[i][1].item<float>() * float(h - side + 1)) % (h - side + 1);
    const int64_t x = int64_t(u[i][2].item<float>() * float(w - side + 1)) % (w - side + 1);
    auto c = s.slice(1, y, y + side).slice(2, x, x + side).unsqueeze(0).to(torch::kFloat32).div(255.0);
    if (side != crop) {
      c = torch::nn::functional::interpolate(
          c, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{crop, crop}).mode(torch::kArea));
    }
    if (u[i][3].item<float>() < 0.5) c = c.flip({3});
    out[i].copy_(c.squeeze(0).to(out.device()));
  }
  return out;
}

torch::Tensor add_shallow_dof(const torch::Tensor& hq, double prob, torch::Generator& gen, double max_radius) {
  if (prob <= 0) return hq;
  const int64_t n = hq.size(0), h = hq.size(2), w = hq.size(3);
  auto u = torch::rand({n, 7}, gen);
  auto out = hq.clone();
  const auto opt = hq.options();
  for (int64_t i = 0; i < n; ++i) {
    auto ui = u[i];
    if (ui[0].item<double>() >= prob) continue;
    // A disk kernel (a lens's circle of confusion), anti-aliased at its rim.
    const double r = 1.5 + ui[1].item<double>() * std::max(0.0, max_radius - 1.5);
    const int64_t k = int64_t(std::ceil(r));
    auto ax = torch::arange(-k, k + 1, opt);
    auto dist = (ax.view({-1, 1}).pow(2) + ax.view({1, -1}).pow(2)).sqrt();
    auto kernel = (r + 0.5 - dist).clamp(0, 1);
    kernel = (kernel / kernel.sum()).view({1, 1, 2 * k + 1, 2 * k + 1}).repeat({3, 1, 1, 1});
    auto x = hq[i].unsqueeze(0);
    auto pad = torch::nn::functional::PadFuncOptions({k, k, k, k});
    if (k < std::min(h, w)) pad.mode(torch::kReflect);
    else pad.mode(torch::kReplicate);
    auto padded = torch::nn::functional::pad(x, pad);
    auto blurred = torch::nn::functional::conv2d(padded, kernel, torch::nn::functional::Conv2dFuncOptions().groups(3));
    // Focus region: a disc around a random point (a subject), or the side of a random line (a
    // ground plane); out of focus grows over a soft edge of 10–40 % of the crop.
    auto ys = torch::arange(h, opt).view({-1, 1}).div(double(std::max(h, w)));
    auto xs = torch::arange(w, opt).view({1, -1}).div(double(std::max(h, w)));
    const double cy = ui[2].item<double>(), cx = ui[3].item<double>();
    const double edge = 0.1 + 0.3 * ui[5].item<double>();
    torch::Tensor m;
    if (ui[4].item<double>() < 0.6) {
      const double radius = 0.1 + 0.3 * ui[6].item<double>();
      m = (((ys - cy).pow(2) + (xs - cx).pow(2)).sqrt() - radius) / edge;
    } else {
      // Sharp below the line (near), blurred above it (far), or the other way round.
      // The line stays in the middle half, so both sides are in the crop.
      const double sign = ui[6].item<double>() < 0.7 ? 1.0 : -1.0;
      m = ((0.25 + 0.5 * cy) * double(h) / double(std::max(h, w)) - ys).mul(sign).expand({h, w}) / edge;
    }
    m = m.clamp(0, 1).view({1, 1, h, w});
    out[i].copy_((x * (1 - m) + blurred * m).squeeze(0));
  }
  return out;
}

// ---- degradation mix / normaliser -----------------------------------------------------------------
DegradationMix::DegradationMix(const std::vector<std::string>& presets, float out_scale, uint64_t seed) {
  if (presets.empty()) throw ArgumentError("training needs at least one degradation preset");
  for (size_t i = 0; i < presets.size(); ++i) {
    samplers_.emplace_back(presets[i], mix_seed(seed, 100 + i));
    samplers_.back().set_out_scale(out_scale);
  }
}

std::vector<DegradationParams> DegradationMix::sample_batch(int n, bool keep_size, std::mt19937_64& rng) {
  auto& s = samplers_[rng() % samplers_.size()];
  s.set_keep_size(keep_size);
  return s.sample_batch(n);
}

ParamNormaliser ParamNormaliser::estimate(const std::vector<std::string>& presets, float out_scale, int draws,
                                          uint64_t seed) {
  DegradationMix mix(presets, out_scale, seed);
  std::mt19937_64 rng(mix_seed(seed, 7));
  std::vector<torch::Tensor> rows;
  for (int i = 0; i < draws; i += 16) {
    for (const auto& p : mix.sample_batch(16, (i / 16) % 3 == 0, rng)) rows.push_back(torch::tensor(degradation_targets(p)));
  }
  auto all = torch::stack(rows);
  ParamNormaliser n;
  n.mean = all.mean(0);
  auto sd = all.std(0);
  n.mask = sd.gt(1e-6).to(torch::kFloat32);
  n.std = torch::where(sd.gt(1e-6), sd, torch::ones_like(sd));
  return n;
}

ParamNormaliser ParamNormaliser::of(const FaDeX& fadex) {
  ParamNormaliser n;
  n.mean = fadex->param_mean.detach().cpu().to(torch::kFloat32);
  n.std = fadex->param_std.detach().cpu().to(torch::kFloat32);
  n.mask = torch::ones_like(n.mean);
  return n;
}

torch::Tensor ParamNormaliser::normalise(const std::vector<DegradationParams>& params, const torch::Device& device) const {
  std::vector<torch::Tensor> rows;
  for (const auto& p : params) rows.push_back(torch::tensor(degradation_targets(p)));
  return ((torch::stack(rows) - mean) / std * mask).to(device);
}

// ---- AdamW ---------------------------------------------------------------------------------------
AdamW::AdamW(std::vector<torch::Tensor> params, double lr, double b1, double b2, double wd)
    : params_(std::move(params)), lr_(lr), b1_(b1), b2_(b2), wd_(wd) {
  for (auto& p : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(torch::zeros_like(p));
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

void AdamW::step() {
  torch::NoGradGuard ng;
  ++t_;
  const double c1 = 1 - std::pow(b1_, double(t_)), c2 = 1 - std::pow(b2_, double(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    m_[i].mul_(b1_).add_(g, 1 - b1_);
    v_[i].mul_(b2_).addcmul_(g, g, 1 - b2_);
    if (wd_ > 0) p.mul_(1 - lr_ * wd_);
    p.addcdiv_(m_[i] / c1, (v_[i] / c2).sqrt_().add_(1e-8), -lr_);
  }
}

int64_t AdamW::numel() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.numel();
  return n;
}

TensorMap AdamW::state(torch::Dtype moments) const {
  TensorMap s;
  // Copies (never views of the live moments), so a saved state does not change with later steps.
  for (size_t i = 0; i < params_.size(); ++i) {
    s["m." + std::to_string(i)] = m_[i].detach().to(torch::kCPU, moments, false, true).contiguous();
    s["v." + std::to_string(i)] = v_[i].detach().to(torch::kCPU, moments, false, true).contiguous();
  }
  s["t"] = torch::tensor({t_}, torch::kInt64);
  return s;
}

void AdamW::load_state(const TensorMap& s, const std::string& source) {
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto* pair : {&m_, &v_}) {
      const std::string key = std::string(pair == &m_ ? "m." : "v.") + std::to_string(i);
      auto it = s.find(key);
      if (it == s.end() || it->second.sizes() != params_[i].sizes()) {
        throw FormatError(source + ": optimizer state '" + key + "' missing or of the wrong shape");
      }
      (*pair)[i] = it->second.to(params_[i].device(), params_[i].scalar_type(), false, /*copy=*/true);
    }
  }
  if (s.size() != 2 * params_.size() + 1) throw FormatError(source + ": optimizer state has unexpected entries");
  t_ = s.at("t").item<int64_t>();
}

}  // namespace face2scene
