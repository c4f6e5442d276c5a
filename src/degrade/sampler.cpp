// Presets and the sampler. Each preset is a table of ranges and probabilities (documented in
// docs/degradation.md); `realesrgan` copies Real-ESRGAN's finetune_realesrgan_x4plus.yml.
// Draws use our own splitmix64 stream instead of std:: distributions, whose output differs
// between standard libraries: the same (preset, seed, k) gives the same params everywhere.
#include <algorithm>
#include <cmath>

#include "face2scene/degrade.hpp"

namespace face2scene {
namespace {
constexpr double kPi = 3.14159265358979323846;

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform(0, 1) < p; }
  int odd(int lo, int hi) { return lo + 2 * int(next() % uint64_t((hi - lo) / 2 + 1)); }  // odd in [lo, hi]
  template <typename T>
  T pick(const std::vector<std::pair<T, double>>& choices) {
    double total = 0;
    for (auto& c : choices) total += c.second;
    double u = uniform(0, total);
    for (auto& c : choices) {
      if (u < c.second) return c.first;
      u -= c.second;
    }
    return choices.back().first;
  }

 private:
  uint64_t s_;
};

struct Range {
  double lo, hi;
};

struct StageSpec {
  double blur_prob = 1;
  std::vector<std::pair<KernelType, double>> kernels;
  double sinc_prob = 0;
  Range sigma{0.2, 3}, beta_g{0.5, 4}, beta_p{1, 2};
  bool realesrgan_size = false;  // random odd 7..21 as Real-ESRGAN; else sized from sigma
  Range motion{3, 9}, defocus{1, 3};
  // Resize: direct to the target (first order) or Real-ESRGAN's up/down/keep draw.
  bool to_target = true;
  double up = 0, down = 0, keep = 0;
  Range scale{1, 1};
  double noise_prob = 1, gauss_prob = 0.5, gray_prob = 0.4;
  Range gauss{1, 30}, poisson{0.05, 3};
  double jpeg_prob = 1;
  Range jpeg{30, 95};
};
struct PresetSpec {
  int order = 1;
  float out_scale = 4;
  StageSpec s1, s2;
  double final_sinc_prob = 0;
  double final_jpeg_prob = 0;
  Range final_jpeg{30, 95};
};

const std::vector<std::pair<KernelType, double>> kRealEsrganKernels = {
    {KernelType::kIsoGaussian, 0.45},    {KernelType::kAnisoGaussian, 0.25}, {KernelType::kGeneralizedIso, 0.12},
    {KernelType::kGeneralizedAniso, 0.03}, {KernelType::kPlateauIso, 0.12},  {KernelType::kPlateauAniso, 0.03}};

PresetSpec preset_spec(const std::string& name) {
  PresetSpec p;
  if (name == "mild") {
    p.out_scale = 2;
    auto& s = p.s1;
    s.kernels = {{KernelType::kIsoGaussian, 0.6}, {KernelType::kAnisoGaussian, 0.4}};
    s.sigma = {0.2, 1.5};
    s.noise_prob = 0.8;
    s.gauss_prob = 0.6;
    s.gauss = {1, 5};
    s.poisson = {0.05, 0.5};
    s.jpeg = {70, 95};
  } else if (name == "moderate") {
    auto& s = p.s1;
    s.kernels = {{KernelType::kIsoGaussian, 0.35}, {KernelType::kAnisoGaussian, 0.25}, {KernelType::kGeneralizedIso, 0.05},
                 {KernelType::kGeneralizedAniso, 0.05}, {KernelType::kPlateauIso, 0.05}, {KernelType::kPlateauAniso, 0.05},
                 {KernelType::kMotion, 0.1}, {KernelType::kDefocus, 0.1}};
    s.sinc_prob = 0.05;
    s.sigma = {0.5, 2.5};
    s.motion = {3, 9};
    s.defocus = {1, 3};
    s.gauss = {2, 15};
    s.poisson = {0.2, 1.5};
    s.jpeg = {40, 90};
  } else if (name == "severe") {
    auto& s = p.s1;
    s.kernels = {{KernelType::kIsoGaussian, 0.25}, {KernelType::kAnisoGaussian, 0.25}, {KernelType::kGeneralizedIso, 0.05},
                 {KernelType::kGeneralizedAniso, 0.05}, {KernelType::kPlateauIso, 0.05}, {KernelType::kPlateauAniso, 0.05},
                 {KernelType::kMotion, 0.15}, {KernelType::kDefocus, 0.15}};
    s.sinc_prob = 0.1;
    s.sigma = {1.5, 4};
    s.motion = {7, 17};
    s.defocus = {2, 5};
    s.gauss = {10, 30};
    s.poisson = {1, 3};
    s.jpeg = {30, 60};
  } else if (name == "realesrgan") {
    p.order = 2;
    p.s1.kernels = p.s2.kernels = kRealEsrganKernels;
    p.s1.realesrgan_size = p.s2.realesrgan_size = true;
    p.s1.sinc_prob = p.s2.sinc_prob = 0.1;
    p.s1.sigma = {0.2, 3};
    p.s2.sigma = {0.2, 1.5};
    p.s2.blur_prob = 0.8;
    p.s1.to_target = p.s2.to_target = false;
    p.s1.up = 0.2, p.s1.down = 0.7, p.s1.keep = 0.1, p.s1.scale = {0.15, 1.5};
    p.s2.up = 0.3, p.s2.down = 0.4, p.s2.keep = 0.3, p.s2.scale = {0.3, 1.2};
    p.s1.gauss = {1, 30};
    p.s1.poisson = {0.05, 3};
    p.s2.gauss = {1, 25};
    p.s2.poisson = {0.05, 2.5};
    p.s1.jpeg = {30, 95};
    p.s2.jpeg_prob = 0;  // stage 2's JPEG is the final one
    p.final_sinc_prob = 0.8;
    p.final_jpeg_prob = 1;
    p.final_jpeg = {30, 95};
  } else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw ArgumentError("unknown degradation preset '" + name + "' (known: " + known + ")");
  }
  return p;
}

ResizeMode random_mode(Rng& r) {
  return r.pick<ResizeMode>({{ResizeMode::kArea, 1}, {ResizeMode::kBilinear, 1}, {ResizeMode::kBicubic, 1}});
}

void sample_sinc(Rng& r, int size, int& size_out, float& cutoff) {
  size_out = size;
  cutoff = float(size < 13 ? r.uniform(kPi / 3, kPi) : r.uniform(kPi / 5, kPi));
}

BlurParams sample_blur(Rng& r, const StageSpec& s) {
  BlurParams b;
  if (!r.chance(s.blur_prob)) return b;
  int size = s.realesrgan_size ? r.odd(7, 21) : 0;
  if (r.chance(s.sinc_prob)) {
    if (size == 0) size = r.odd(7, 21);
    b.type = KernelType::kSinc;
    sample_sinc(r, size, b.size, b.cutoff);
    return b;
  }
  b.type = r.pick(s.kernels);
  const bool aniso = b.type == KernelType::kAnisoGaussian || b.type == KernelType::kGeneralizedAniso ||
                     b.type == KernelType::kPlateauAniso;
  switch (b.type) {
    case KernelType::kMotion:
      b.length = float(r.uniform(s.motion.lo, s.motion.hi));
      b.theta = float(r.uniform(-kPi, kPi));
      b.size = (int(std::ceil(b.length)) + 2) | 1;
      return b;
    case KernelType::kDefocus:
      b.radius = float(r.uniform(s.defocus.lo, s.defocus.hi));
      b.size = (2 * int(std::ceil(b.radius)) + 1) | 1;
      return b;
    default:
      break;
  }
  b.sigma_x = float(r.uniform(s.sigma.lo, s.sigma.hi));
  b.sigma_y = aniso ? float(r.uniform(s.sigma.lo, s.sigma.hi)) : b.sigma_x;
  b.theta = aniso ? float(r.uniform(-kPi, kPi)) : 0.f;
  if (b.type == KernelType::kGeneralizedIso || b.type == KernelType::kGeneralizedAniso)
    b.beta = float(r.uniform(s.beta_g.lo, s.beta_g.hi));
  if (b.type == KernelType::kPlateauIso || b.type == KernelType::kPlateauAniso)
    b.beta = float(r.uniform(s.beta_p.lo, s.beta_p.hi));
  // Real-ESRGAN draws the size at random; otherwise cover +-3 sigma (7..31).
  b.size = size ? size : std::clamp((2 * int(std::ceil(3 * std::max(b.sigma_x, b.sigma_y))) + 1) | 1, 7, 31);
  return b;
}

StageParams sample_stage(Rng& r, const StageSpec& s, float out_scale) {
  StageParams st;
  st.blur = sample_blur(r, s);
  st.resize.mode = random_mode(r);
  if (s.to_target) {
    st.resize.scale = 1.f / out_scale;
  } else {
    const int dir = r.pick<int>({{0, s.up}, {1, s.down}, {2, s.keep}});
    st.resize.scale = float(dir == 0 ? r.uniform(1, s.scale.hi) : dir == 1 ? r.uniform(s.scale.lo, 1) : 1.0);
  }
  if (r.chance(s.noise_prob)) {
    st.noise.type = r.chance(s.gauss_prob) ? NoiseType::kGaussian : NoiseType::kPoisson;
    st.noise.gray = r.chance(s.gray_prob);
    st.noise.level = float(st.noise.type == NoiseType::kGaussian ? r.uniform(s.gauss.lo, s.gauss.hi)
                                                                  : r.uniform(s.poisson.lo, s.poisson.hi));
  }
  if (r.chance(s.jpeg_prob)) st.jpeg_quality = int(std::lround(r.uniform(s.jpeg.lo, s.jpeg.hi)));
  return st;
}
}  // namespace

std::vector<std::string> preset_names() { return {"mild", "moderate", "severe", "realesrgan"}; }

DegradationSampler::DegradationSampler(const std::string& preset, uint64_t seed) : preset_(preset), seed_(seed) {
  preset_spec(preset);  // throws for unknown names
}

DegradationParams DegradationSampler::sample() {
  const PresetSpec spec = preset_spec(preset_);
  const uint64_t k = count_++;
  // The preset name enters the stream so that presets sharing a seed are not correlated.
  uint64_t base = seed_;
  for (unsigned char ch : preset_) base = (base ^ ch) * 1099511628211ULL;
  Rng r(mix_seed(base, 2 * k));
  DegradationParams p;
  p.preset = preset_;
  p.seed = mix_seed(base, 2 * k + 1);
  p.order = spec.order;
  const float out_scale = out_scale_ > 0 ? out_scale_ : spec.out_scale;
  p.out_scale = out_scale;
  p.keep_size = keep_size_;
  p.stage1 = sample_stage(r, spec.s1, out_scale);
  if (spec.order == 2) p.stage2 = sample_stage(r, spec.s2, out_scale);
  p.final_step.resize_mode = random_mode(r);
  if (r.chance(spec.final_sinc_prob)) {
    p.final_step.sinc_size = r.odd(7, 21);
    p.final_step.sinc_cutoff = float(r.uniform(kPi / 3, kPi));  // Real-ESRGAN's final range
  }
  if (r.chance(spec.final_jpeg_prob)) p.final_step.jpeg_quality = int(std::lround(r.uniform(spec.final_jpeg.lo, spec.final_jpeg.hi)));
  p.final_step.jpeg_first = r.chance(0.5);
  p.validate();
  return p;
}

std::vector<DegradationParams> DegradationSampler::sample_batch(int n) {
  if (n < 1) throw ArgumentError("sample_batch: n = " + std::to_string(n) + " (need >= 1)");
  std::vector<DegradationParams> out;
  for (int i = 0; i < n; ++i) {
    DegradationParams p = sample();
    if (i > 0) {
      const auto& f = out.front();
      p.stage1.resize = f.stage1.resize;
      p.stage2.resize = f.stage2.resize;
      p.final_step.resize_mode = f.final_step.resize_mode;
      p.final_step.jpeg_first = f.final_step.jpeg_first;
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace face2scene
