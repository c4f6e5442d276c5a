// DegradationParams: the fixed-layout vector, JSON, a human description and range checks.
// The slot order here is the documented layout (docs/degradation.md): change both together and
// bump kVersion.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "face2scene/degrade.hpp"

namespace face2scene {
namespace {
using json = nlohmann::json;
constexpr double kPi = 3.14159265358979323846;

const char* kernel_name(KernelType t) {
  static const char* names[] = {"none", "iso_gaussian", "aniso_gaussian", "generalized_iso", "generalized_aniso",
                                "plateau_iso", "plateau_aniso", "sinc", "motion", "defocus"};
  const int i = int(t);
  return i >= 0 && i < 10 ? names[i] : "?";
}
const char* resize_name(ResizeMode m) {
  static const char* names[] = {"none", "nearest", "bilinear", "bicubic", "area"};
  const int i = int(m);
  return i >= 0 && i < 5 ? names[i] : "?";
}
const char* noise_name(NoiseType t) {
  static const char* names[] = {"none", "gaussian", "poisson"};
  const int i = int(t);
  return i >= 0 && i < 3 ? names[i] : "?";
}

void push_stage(std::vector<float>& v, const StageParams& s) {
  const auto& b = s.blur;
  v.insert(v.end(), {float(int(b.type)), float(b.size), b.sigma_x, b.sigma_y, b.theta, b.beta, b.cutoff, b.length, b.radius,
                     float(int(s.resize.mode)), s.resize.scale, float(int(s.noise.type)), s.noise.gray ? 1.f : 0.f,
                     s.noise.level, float(s.jpeg_quality)});
}
StageParams read_stage(const float* v) {
  StageParams s;
  s.blur = {KernelType(int(std::lround(v[0]))), int(std::lround(v[1])), v[2], v[3], v[4], v[5], v[6], v[7], v[8]};
  s.resize = {ResizeMode(int(std::lround(v[9]))), v[10]};
  s.noise = {NoiseType(int(std::lround(v[11]))), v[12] > 0.5f, v[13]};
  s.jpeg_quality = int(std::lround(v[14]));
  return s;
}

json stage_json(const StageParams& s) {
  const auto& b = s.blur;
  return {{"blur", {{"type", kernel_name(b.type)}, {"size", b.size}, {"sigma_x", b.sigma_x}, {"sigma_y", b.sigma_y},
                    {"theta", b.theta}, {"beta", b.beta}, {"cutoff", b.cutoff}, {"length", b.length}, {"radius", b.radius}}},
          {"resize", {{"mode", resize_name(s.resize.mode)}, {"scale", s.resize.scale}}},
          {"noise", {{"type", noise_name(s.noise.type)}, {"gray", s.noise.gray}, {"level", s.noise.level}}},
          {"jpeg_quality", s.jpeg_quality}};
}
}  // namespace

std::vector<std::string> DegradationParams::slot_names() {
  std::vector<std::string> n = {"version", "order", "out_scale", "keep_size"};
  for (const char* st : {"s1.", "s2."})
    for (const char* f : {"blur.type", "blur.size", "blur.sigma_x", "blur.sigma_y", "blur.theta", "blur.beta", "blur.cutoff",
                          "blur.length", "blur.radius", "resize.mode", "resize.scale", "noise.type", "noise.gray",
                          "noise.level", "jpeg_quality"})
      n.push_back(std::string(st) + f);
  for (const char* f : {"final.resize_mode", "final.sinc_size", "final.sinc_cutoff", "final.jpeg_quality", "final.jpeg_first"})
    n.push_back(f);
  return n;
}

std::vector<float> DegradationParams::to_vector() const {
  std::vector<float> v = {float(kVersion), float(order), out_scale, keep_size ? 1.f : 0.f};
  push_stage(v, stage1);
  push_stage(v, stage2);
  v.insert(v.end(), {float(int(final_step.resize_mode)), float(final_step.sinc_size), final_step.sinc_cutoff,
                     float(final_step.jpeg_quality), final_step.jpeg_first ? 1.f : 0.f});
  return v;
}

DegradationParams DegradationParams::from_vector(const std::vector<float>& v, uint64_t seed) {
  if (v.size() != size_t(kVectorSize)) {
    throw ArgumentError("degradation vector has " + std::to_string(v.size()) + " slots, expected " + std::to_string(kVectorSize));
  }
  if (std::lround(v[0]) != kVersion) throw ArgumentError("degradation vector version " + std::to_string(v[0]) + " (this build reads 1)");
  DegradationParams p;
  p.order = int(std::lround(v[1]));
  p.out_scale = v[2];
  p.keep_size = v[3] > 0.5f;
  p.stage1 = read_stage(v.data() + 4);
  p.stage2 = read_stage(v.data() + 4 + StageParams::kSlots);
  const float* f = v.data() + 4 + 2 * StageParams::kSlots;
  p.final_step = {ResizeMode(int(std::lround(f[0]))), int(std::lround(f[1])), f[2], int(std::lround(f[3])), f[4] > 0.5f};
  p.seed = seed;
  p.validate();
  return p;
}

std::string DegradationParams::to_json() const {
  json j = {{"format", "face2scene.degradation"},
            {"version", kVersion},
            {"preset", preset},
            {"seed", seed},
            {"order", order},
            {"out_scale", out_scale},
            {"keep_size", keep_size},
            {"stage1", stage_json(stage1)},
            {"stage2", stage_json(stage2)},
            {"final", {{"resize_mode", resize_name(final_step.resize_mode)}, {"sinc_size", final_step.sinc_size},
                       {"sinc_cutoff", final_step.sinc_cutoff}, {"jpeg_quality", final_step.jpeg_quality},
                       {"jpeg_first", final_step.jpeg_first}}},
            {"description", describe()},
            {"vector", to_vector()}};
  return j.dump(2);
}

DegradationParams DegradationParams::from_json(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(name + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("vector")) throw FormatError(name + ": not a face2scene degradation (no \"vector\")");
  // The vector is the authority; the named fields are for people.
  try {
    const auto v = j.at("vector").get<std::vector<float>>();
    const uint64_t seed = j.value("seed", uint64_t(0));
    DegradationParams p = from_vector(v, seed);
    p.preset = j.value("preset", std::string());
    return p;
  } catch (const ArgumentError& e) {
    throw ArgumentError(name + ": " + e.what());
  } catch (const json::exception& e) {
    throw FormatError(name + ": bad degradation JSON (" + e.what() + ")");
  }
}

std::string DegradationParams::describe() const {
  std::string out;
  char buf[160];
  auto add = [&](const std::string& s) { out += (out.empty() || out.back() == ' ' ? "" : ", ") + s; };
  auto blur = [&](const BlurParams& b) {
    switch (b.type) {
      case KernelType::kNone: return;
      case KernelType::kSinc: std::snprintf(buf, sizeof buf, "sinc ωc≈%.2f", b.cutoff); break;
      case KernelType::kMotion: std::snprintf(buf, sizeof buf, "motion blur %.0f px at %.0f°", b.length, b.theta * 180 / kPi); break;
      case KernelType::kDefocus: std::snprintf(buf, sizeof buf, "defocus r≈%.1f", b.radius); break;
      case KernelType::kAnisoGaussian: case KernelType::kGeneralizedAniso: case KernelType::kPlateauAniso:
        std::snprintf(buf, sizeof buf, "%s blur σ≈%.1f/%.1f", kernel_name(b.type), b.sigma_x, b.sigma_y); break;
      default: std::snprintf(buf, sizeof buf, "%s blur σ≈%.1f", kernel_name(b.type), b.sigma_x); break;
    }
    add(buf);
  };
  auto stage = [&](const StageParams& s) {
    blur(s.blur);
    if (s.resize.mode != ResizeMode::kNone && s.resize.scale != 1.f) {
      std::snprintf(buf, sizeof buf, "%s resize ×%.2f", resize_name(s.resize.mode), s.resize.scale);
      add(buf);
    }
    if (s.noise.type == NoiseType::kGaussian) {
      std::snprintf(buf, sizeof buf, "%snoise σ≈%.0f/255", s.noise.gray ? "grey " : "", s.noise.level);
      add(buf);
    } else if (s.noise.type == NoiseType::kPoisson) {
      std::snprintf(buf, sizeof buf, "%sPoisson noise ×%.2f", s.noise.gray ? "grey " : "", s.noise.level);
      add(buf);
    }
    if (s.jpeg_quality > 0) add("JPEG q≈" + std::to_string(s.jpeg_quality));
  };
  stage(stage1);
  if (order == 2) {
    out += "; then ";
    const size_t mark = out.size();
    stage(stage2);
    if (out.size() > mark + 2 && out.compare(mark, 2, ", ") == 0) out.erase(mark, 2);
  }
  std::string fin;
  if (final_step.sinc_size > 0) {
    std::snprintf(buf, sizeof buf, "sinc ωc≈%.2f", final_step.sinc_cutoff);
    fin = buf;
  }
  if (final_step.jpeg_quality > 0) {
    const std::string jq = "JPEG q≈" + std::to_string(final_step.jpeg_quality);
    fin = fin.empty() ? jq : final_step.jpeg_first ? jq + " before " + fin : fin + " before " + jq;
  }
  if (!fin.empty()) add("final " + fin);
  std::snprintf(buf, sizeof buf, keep_size ? "×%g degradation, resized back" : "×%g downscale", double(out_scale));
  add(buf);
  return out;
}

void DegradationParams::validate() const {
  auto bad = [](const std::string& field, double value, const std::string& range) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", value);
    throw ArgumentError("degradation parameter " + field + " = " + buf + " is out of range (" + range + ")");
  };
  auto in = [&](const std::string& f, double v, double lo, double hi) {
    if (!std::isfinite(v) || v < lo || v > hi) bad(f, v, std::to_string(lo).substr(0, 6) + " .. " + std::to_string(hi).substr(0, 6));
  };
  in("order", order, 1, 2);
  in("out_scale", out_scale, 1, 8);
  auto stage = [&](const std::string& s, const StageParams& st) {
    const auto& b = st.blur;
    in(s + "blur.type", int(b.type), 0, 9);
    if (b.type != KernelType::kNone) {
      in(s + "blur.size", b.size, 1, 63);
      if (b.size % 2 == 0) bad(s + "blur.size", b.size, "odd");
      in(s + "blur.theta", b.theta, -2 * kPi, 2 * kPi);
    }
    if (b.type >= KernelType::kIsoGaussian && b.type <= KernelType::kPlateauAniso) {
      in(s + "blur.sigma_x", b.sigma_x, 0.05, 20);
      if (b.type == KernelType::kAnisoGaussian || b.type == KernelType::kGeneralizedAniso || b.type == KernelType::kPlateauAniso)
        in(s + "blur.sigma_y", b.sigma_y, 0.05, 20);
      if (b.type >= KernelType::kGeneralizedIso) in(s + "blur.beta", b.beta, 0.1, 10);
    }
    if (b.type == KernelType::kSinc) in(s + "blur.cutoff", b.cutoff, 0.05, kPi + 1e-6);
    if (b.type == KernelType::kMotion) in(s + "blur.length", b.length, 1, b.size);
    if (b.type == KernelType::kDefocus) in(s + "blur.radius", b.radius, 0.5, b.size / 2.0 + 0.5);
    in(s + "resize.mode", int(st.resize.mode), 0, 4);
    if (st.resize.mode != ResizeMode::kNone) in(s + "resize.scale", st.resize.scale, 0.05, 4);
    in(s + "noise.type", int(st.noise.type), 0, 2);
    if (st.noise.type == NoiseType::kGaussian) in(s + "noise.level", st.noise.level, 0, 255);
    if (st.noise.type == NoiseType::kPoisson) in(s + "noise.level", st.noise.level, 0, 20);
    in(s + "jpeg_quality", st.jpeg_quality, 0, 100);
  };
  stage("s1.", stage1);
  if (order == 2) stage("s2.", stage2);
  in("final.resize_mode", int(final_step.resize_mode), 1, 4);
  if (final_step.sinc_size != 0) {
    in("final.sinc_size", final_step.sinc_size, 1, 63);
    if (final_step.sinc_size % 2 == 0) bad("final.sinc_size", final_step.sinc_size, "odd");
    in("final.sinc_cutoff", final_step.sinc_cutoff, 0.05, kPi + 1e-6);
  }
  in("final.jpeg_quality", final_step.jpeg_quality, 0, 100);
}

}  // namespace face2scene
