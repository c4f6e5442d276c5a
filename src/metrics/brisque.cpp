// BRISQUE (Mittal, Moorthy, Bovik 2012) as OpenCV contrib's quality::QualityBRISQUE (4.x), without
// OpenCV: grey conversion, bicubic half-size, 7x7 Gaussian MSCN, AGGD fits with OpenCV's
// first-local-minimum gamma search, range scaling and the LIVE epsilon-SVR (RBF) read from its
// FileStorage YAML. The steps keep OpenCV's order and float/double choices so scores agree to
// ~1e-3 (tests/test_metrics.cpp compares with cv2.quality).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "face2scene/metrics.hpp"

namespace face2scene::metrics {
namespace {

// Numbers of a YAML flow list or block, with the list punctuation removed.
std::vector<double> numbers_in(const std::string& text, const std::string& source) {
  std::string t = text;
  for (char& c : t) {
    if (c == '[' || c == ']' || c == ',') c = ' ';
  }
  std::istringstream in(t);
  std::vector<double> out;
  std::string tok;
  while (in >> tok) {
    if (tok == "-") continue;  // block-sequence marker
    char* end = nullptr;
    const double v = std::strtod(tok.c_str(), &end);
    if (end == tok.c_str() || *end != '\0') throw FormatError(source + ": unexpected token '" + tok + "'");
    out.push_back(v);
  }
  return out;
}

std::string section(const std::string& text, const std::string& key, const std::string& end_key,
                    const std::string& source, size_t from = 0) {
  const size_t a = text.find(key, from);
  if (a == std::string::npos) throw FormatError(source + ": no '" + key + "'");
  const size_t b = end_key.empty() ? text.size() : text.find(end_key, a + key.size());
  if (b == std::string::npos) throw FormatError(source + ": no '" + end_key + "' after '" + key + "'");
  return text.substr(a + key.size(), b - a - key.size());
}

double scalar_after(const std::string& text, const std::string& key, const std::string& source, size_t from = 0) {
  const size_t a = text.find(key, from);
  if (a == std::string::npos) throw FormatError(source + ": no '" + key + "'");
  return std::strtod(text.c_str() + a + key.size(), nullptr);
}

// OpenCV's interpolateCubic (A = -0.75), in float like cv::resize on CV_32F.
void cubic_coeffs(float x, float* c) {
  const float A = -0.75f;
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = 1.f - c[0] - c[1] - c[2];
}

// cv::resize(INTER_CUBIC) of a float plane: pixel-centre mapping, clamped (replicated) borders.
std::vector<float> resize_cubic(const std::vector<float>& src, int sw, int sh, int dw, int dh) {
  const double sx_scale = static_cast<double>(sw) / dw, sy_scale = static_cast<double>(sh) / dh;
  std::vector<int> xo(dw);
  std::vector<float> xc(4 * dw);
  for (int x = 0; x < dw; ++x) {
    float fx = static_cast<float>((x + 0.5) * sx_scale - 0.5);
    const int s = static_cast<int>(std::floor(fx));
    fx -= s;
    xo[x] = s;
    cubic_coeffs(fx, &xc[4 * x]);
  }
  std::vector<float> tmp(static_cast<size_t>(sh) * dw);
  for (int y = 0; y < sh; ++y) {
    const float* row = src.data() + static_cast<size_t>(y) * sw;
    for (int x = 0; x < dw; ++x) {
      float s = 0;
      for (int k = 0; k < 4; ++k) s += xc[4 * x + k] * row[std::clamp(xo[x] + k - 1, 0, sw - 1)];
      tmp[static_cast<size_t>(y) * dw + x] = s;
    }
  }
  std::vector<float> out(static_cast<size_t>(dw) * dh);
  for (int y = 0; y < dh; ++y) {
    float fy = static_cast<float>((y + 0.5) * sy_scale - 0.5);
    const int s = static_cast<int>(std::floor(fy));
    fy -= s;
    float c[4];
    cubic_coeffs(fy, c);
    for (int x = 0; x < dw; ++x) {
      float v = 0;
      for (int k = 0; k < 4; ++k) v += c[k] * tmp[static_cast<size_t>(std::clamp(s + k - 1, 0, sh - 1)) * dw + x];
      out[static_cast<size_t>(y) * dw + x] = v;
    }
  }
  return out;
}

// cv::GaussianBlur(Size(7,7), 7/6, BORDER_REPLICATE): separable, kernel normalised in double.
std::vector<float> blur7(const std::vector<float>& src, int w, int h) {
  static const std::array<float, 7> k = [] {
    std::array<double, 7> d{};
    double sum = 0, sigma = 7.0 / 6.0;
    for (int i = 0; i < 7; ++i) sum += d[i] = std::exp(-(i - 3) * (i - 3) / (2 * sigma * sigma));
    std::array<float, 7> f{};
    for (int i = 0; i < 7; ++i) f[i] = static_cast<float>(d[i] / sum);
    return f;
  }();
  std::vector<float> tmp(src.size()), out(src.size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int i = 0; i < 7; ++i) s += k[i] * src[static_cast<size_t>(y) * w + std::clamp(x + i - 3, 0, w - 1)];
      tmp[static_cast<size_t>(y) * w + x] = s;
    }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int i = 0; i < 7; ++i) s += k[i] * tmp[static_cast<size_t>(std::clamp(y + i - 3, 0, h - 1)) * w + x];
      out[static_cast<size_t>(y) * w + x] = s;
    }
  return out;
}

struct AggdFit {
  double lsigma, rsigma, gamma;
};

AggdFit aggd_fit(const std::vector<float>& v) {
  double pos_sq = 0, neg_sq = 0, abs_sum = 0;
  long pos_n = 0, neg_n = 0;
  for (float x : v) {
    if (x > 0) {
      pos_sq += static_cast<double>(x * x);
      ++pos_n;
    } else if (x < 0) {
      neg_sq += static_cast<double>(x * x);
      ++neg_n;
    }
    if (!std::isnan(x)) abs_sum += std::fabs(x);
  }
  AggdFit f;
  f.lsigma = std::sqrt(neg_sq / neg_n);
  f.rsigma = std::sqrt(pos_sq / pos_n);
  const double gh = f.lsigma / f.rsigma;
  const double total = static_cast<double>(v.size());
  const double rhat = std::pow(abs_sum / total, 2.0) / ((neg_sq + pos_sq) / total);
  const double rn = rhat * (std::pow(gh, 3) + 1) * (gh + 1) / std::pow(std::pow(gh, 2) + 1, 2);
  // OpenCV stops at the first local minimum of |r(gam) - rn|, stepping gam by accumulation.
  double prev_gamma = 0, prev_diff = 1e10;
  for (double gam = 0.2; gam < 10; gam += 0.001) {
    const double r = std::tgamma(2 / gam) * std::tgamma(2 / gam) / (std::tgamma(1 / gam) * std::tgamma(3 / gam));
    const double diff = std::fabs(r - rn);
    if (diff > prev_diff) break;
    prev_diff = diff;
    prev_gamma = gam;
  }
  f.gamma = prev_gamma;
  return f;
}

std::vector<float> brisque_features(const std::vector<float>& grey01, int width, int height) {
  std::vector<float> feat;
  for (int scale = 1; scale <= 2; ++scale) {
    const int w = scale == 1 ? width : width / 2, h = scale == 1 ? height : height / 2;
    const std::vector<float> img = scale == 1 ? grey01 : resize_cubic(grey01, width, height, w, h);
    const auto mu = blur7(img, w, h);
    std::vector<float> sq(img.size());
    for (size_t i = 0; i < img.size(); ++i) sq[i] = img[i] * img[i];
    const auto sigma2 = blur7(sq, w, h);
    std::vector<float> mscn(img.size());
    for (size_t i = 0; i < img.size(); ++i) {
      // cv::pow with a non-integer exponent takes |x|.
      const float sigma = std::sqrt(std::fabs(sigma2[i] - mu[i] * mu[i])) + static_cast<float>(1.0 / 255);
      mscn[i] = (img[i] - mu[i]) / sigma;
    }
    AggdFit f = aggd_fit(mscn);
    feat.push_back(static_cast<float>(f.gamma));
    feat.push_back(static_cast<float>((f.lsigma * f.lsigma + f.rsigma * f.rsigma) / 2));
    static constexpr int kShifts[4][2] = {{0, 1}, {1, 0}, {1, 1}, {-1, 1}};
    std::vector<float> prod(img.size());
    for (const auto& s : kShifts) {
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int yy = y + s[0], xx = x + s[1];
          const float other = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? mscn[static_cast<size_t>(yy) * w + xx] : 0.f;
          prod[static_cast<size_t>(y) * w + x] = mscn[static_cast<size_t>(y) * w + x] * other;
        }
      f = aggd_fit(prod);
      const double constant = std::sqrt(std::tgamma(1 / f.gamma)) / std::sqrt(std::tgamma(3 / f.gamma));
      const double mean = (f.rsigma - f.lsigma) * (std::tgamma(2 / f.gamma) / std::tgamma(1 / f.gamma)) * constant;
      feat.push_back(static_cast<float>(f.gamma));
      feat.push_back(static_cast<float>(mean));
      feat.push_back(static_cast<float>(f.lsigma * f.lsigma));
      feat.push_back(static_cast<float>(f.rsigma * f.rsigma));
    }
  }
  return feat;
}

}  // namespace

struct Brisque::Impl {
  int var_count = 36;
  double gamma = 0, rho = 0;
  std::vector<float> sv;  // sv_total x var_count
  std::vector<double> alpha;
  std::vector<float> range_min, range_max;
};

Brisque::Brisque(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  const std::string model_path = dir + "/brisque_model_live.yml", range_path = dir + "/brisque_range_live.yml";
  const std::string model = read_file(model_path), range = read_file(range_path);
  auto& m = *impl_;
  if (model.find("svmType: EPS_SVR") == std::string::npos || model.find("type: RBF") == std::string::npos) {
    throw FormatError(model_path + ": expected an EPS_SVR model with an RBF kernel");
  }
  m.var_count = static_cast<int>(scalar_after(model, "var_count:", model_path));
  const int sv_total = static_cast<int>(scalar_after(model, "sv_total:", model_path));
  m.gamma = scalar_after(model, "gamma:", model_path, model.find("kernel:"));
  const auto sv = numbers_in(section(model, "support_vectors:", "decision_functions:", model_path), model_path);
  if (m.var_count != 36 || static_cast<int>(sv.size()) != sv_total * m.var_count) {
    throw FormatError(model_path + ": expected " + std::to_string(sv_total) + " support vectors of 36 values, read " +
                      std::to_string(sv.size()) + " numbers");
  }
  m.sv.assign(sv.begin(), sv.end());
  const size_t df = model.find("decision_functions:");
  m.rho = scalar_after(model, "rho:", model_path, df);
  const size_t a = model.find("alpha:", df);
  const size_t b = a == std::string::npos ? a : model.find(']', a);
  if (b == std::string::npos) throw FormatError(model_path + ": no 'alpha: [...]' in decision_functions");
  m.alpha = numbers_in(model.substr(a + 6, b - a - 6), model_path);
  if (static_cast<int>(m.alpha.size()) != sv_total) throw FormatError(model_path + ": alpha count differs from sv_total");
  const auto r = numbers_in(section(range, "data:", "", range_path), range_path);
  if (r.size() != 72) throw FormatError(range_path + ": expected a 2x36 range matrix, read " + std::to_string(r.size()) + " values");
  m.range_min.assign(r.begin(), r.begin() + 36);
  m.range_max.assign(r.begin() + 36, r.end());
}

Brisque::~Brisque() = default;
Brisque::Brisque(Brisque&&) noexcept = default;

std::vector<double> Brisque::features(const Image& image) const {
  if (image.empty()) throw ArgumentError("brisque: empty image");
  if (image.width < 16 || image.height < 16) throw ArgumentError("brisque: image smaller than 16x16");
  // OpenCV: 8-bit grey (cvtColor BGR2GRAY fixed point: 4899 R + 9617 G + 1868 B, >> 14, rounded),
  // then float / 255. 16-bit images are first rounded to 8 bits.
  const Image img = image.bit_depth == 8 ? image : image.with_bit_depth(8);
  std::vector<float> grey(img.pixel_count());
  for (size_t i = 0; i < grey.size(); ++i) {
    int g;
    if (img.channels == 3) {
      const uint16_t* p = &img.data[i * 3];
      g = (p[0] * 4899 + p[1] * 9617 + p[2] * 1868 + (1 << 13)) >> 14;
    } else {
      g = img.data[i];
    }
    grey[i] = static_cast<float>(g) * static_cast<float>(1.0 / 255.0);
  }
  const auto f = brisque_features(grey, img.width, img.height);
  return {f.begin(), f.end()};
}

double Brisque::operator()(const Image& image) const {
  const auto& m = *impl_;
  const auto feat = features(image);
  std::vector<float> x(36);
  for (int j = 0; j < 36; ++j) {
    x[j] = -1.f + 2.f * (static_cast<float>(feat[j]) - m.range_min[j]) / (m.range_max[j] - m.range_min[j]);
  }
  double sum = -m.rho;
  for (size_t i = 0; i < m.alpha.size(); ++i) {
    const float* s = &m.sv[i * 36];
    double d = 0;
    for (int j = 0; j < 36; ++j) {
      const double t = static_cast<double>(s[j]) - x[j];
      d += t * t;
    }
    sum += m.alpha[i] * static_cast<double>(static_cast<float>(std::exp(-m.gamma * d)));
  }
  return std::clamp(static_cast<double>(static_cast<float>(sum)), 0.0, 100.0);
}

}  // namespace face2scene::metrics
