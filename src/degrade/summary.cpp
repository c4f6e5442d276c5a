// A handful of interpretable numbers per degradation: what FaDeX reads out in words and what the
// linear probes of the benchmark predict.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"

namespace face2scene {
namespace {
constexpr double kPiValue = 3.14159265358979323846;

// Standard deviation (pixels) of a kernel-like spread: Gaussian family by sqrt(σx·σy), a motion
// line of length L by L/sqrt(12), a disk of radius r by r/2, a sinc by π/(2ωc); 0 for none.
double blur_spread(const BlurParams& b) {
  switch (b.type) {
    case KernelType::kNone: return 0;
    case KernelType::kMotion: return b.length / std::sqrt(12.0);
    case KernelType::kDefocus: return b.radius / 2.0;
    case KernelType::kSinc: return b.cutoff > 0 ? kPiValue / (2.0 * b.cutoff) : 0;
    default: return std::sqrt(std::max(0.f, b.sigma_x) * std::max(0.f, b.sigma_y));
  }
}
}  // namespace

DegradationSummary summarize(const DegradationParams& p) {
  DegradationSummary s;
  const double b1 = blur_spread(p.stage1.blur);
  double total = b1 * b1;
  double gauss = 0, poisson = 0;
  int jpeg = 100;
  auto noise = [&](const NoiseParams& n) {
    if (n.type == NoiseType::kGaussian) gauss += double(n.level) * n.level;
    if (n.type == NoiseType::kPoisson) poisson += n.level;
  };
  noise(p.stage1.noise);
  if (p.stage1.jpeg_quality > 0) jpeg = std::min(jpeg, p.stage1.jpeg_quality);
  if (p.order == 2) {
    // Stage 2 blurs after stage 1's resize: its spread in input pixels is σ / scale.
    const double scale1 = p.stage1.resize.scale > 0 ? p.stage1.resize.scale : 1.0;
    const double b2 = blur_spread(p.stage2.blur) / scale1;
    total += b2 * b2;
    noise(p.stage2.noise);
    if (p.stage2.jpeg_quality > 0) jpeg = std::min(jpeg, p.stage2.jpeg_quality);
  }
  if (p.final_step.jpeg_quality > 0) jpeg = std::min(jpeg, p.final_step.jpeg_quality);
  s.blur_sigma = float(std::sqrt(total));
  s.noise_sigma = float(std::sqrt(gauss));
  s.poisson = float(poisson);
  s.jpeg_quality = float(jpeg);
  s.scale = p.out_scale;
  return s;
}

std::vector<float> DegradationSummary::to_vector() const { return {blur_sigma, noise_sigma, poisson, jpeg_quality, scale}; }

DegradationSummary DegradationSummary::from_vector(const float* v) {
  DegradationSummary s;
  s.blur_sigma = std::max(0.f, v[0]);
  s.noise_sigma = std::max(0.f, v[1]);
  s.poisson = std::max(0.f, v[2]);
  s.jpeg_quality = std::clamp(v[3], 1.f, 100.f);
  s.scale = std::max(1.f, v[4]);
  return s;
}

std::vector<std::string> DegradationSummary::names() { return {"blur_sigma", "noise_sigma", "poisson", "jpeg_quality", "scale"}; }

std::string DegradationSummary::describe() const {
  std::string out;
  char buf[96];
  auto add = [&](const char* s) { out += (out.empty() ? "" : ", ") + std::string(s); };
  if (blur_sigma >= 0.3f) std::snprintf(buf, sizeof buf, "blur σ≈%.1f px", blur_sigma), add(buf);
  else add("no visible blur");
  if (noise_sigma >= 1.f) std::snprintf(buf, sizeof buf, "noise σ≈%.0f/255", noise_sigma), add(buf);
  if (poisson >= 0.1f) std::snprintf(buf, sizeof buf, "Poisson noise ×%.1f", poisson), add(buf);
  if (noise_sigma < 1.f && poisson < 0.1f) add("little noise");
  if (jpeg_quality <= 97.f) std::snprintf(buf, sizeof buf, "JPEG q≈%.0f", jpeg_quality), add(buf);
  else add("no JPEG");
  std::snprintf(buf, sizeof buf, "×%.1f downscale", scale);
  add(buf);
  return out;
}

std::vector<float> degradation_targets(const DegradationParams& p) {
  auto v = p.to_vector();
  const auto s = summarize(p).to_vector();
  v.insert(v.end(), s.begin(), s.end());
  return v;
}

}  // namespace face2scene
