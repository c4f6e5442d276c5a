// Mean and Student-t 95% confidence interval for the folder summaries; bootstrap intervals for
// the benchmarks.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "face2scene/metrics.hpp"

namespace face2scene::metrics {
namespace {

// Continued fraction of the regularised incomplete beta function (modified Lentz).
double beta_cf(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double lbt = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(lbt) * beta_cf(a, b, x) / a;
  return 1.0 - std::exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double student_t_cdf(double t, int df) {
  const double x = df / (df + t * t);
  const double tail = 0.5 * incomplete_beta(df / 2.0, 0.5, x);
  return t >= 0 ? 1.0 - tail : tail;
}

}  // namespace

double student_t_quantile(double p, int df) {
  if (!(p > 0 && p < 1)) throw ArgumentError("student_t_quantile: p must be in (0,1)");
  if (df < 1) throw ArgumentError("student_t_quantile: df must be >= 1");
  double lo = -1e4, hi = 1e4;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (student_t_cdf(mid, df) < p) lo = mid; else hi = mid;
  }
  return 0.5 * (lo + hi);
}

Summary summarize(const std::vector<double>& values, int* skipped) {
  Summary s;
  int skip = 0;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) {
      ++skip;
      continue;
    }
    sum += v;
    ++s.n;
  }
  if (skipped) *skipped = skip;
  if (s.n == 0) {
    s.mean = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  s.mean = sum / s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) {
    if (std::isfinite(v)) ss += (v - s.mean) * (v - s.mean);
  }
  s.sd = std::sqrt(ss / (s.n - 1));
  s.ci95 = student_t_quantile(0.975, s.n - 1) * s.sd / std::sqrt(static_cast<double>(s.n));
  return s;
}

BootstrapCI bootstrap_mean_ci(const std::vector<double>& values, int resamples, double level, uint64_t seed) {
  if (!(level > 0 && level < 1)) throw ArgumentError("bootstrap_mean_ci: level must be in (0,1)");
  if (resamples < 1) throw ArgumentError("bootstrap_mean_ci: resamples must be >= 1");
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  BootstrapCI ci;
  ci.n = static_cast<int>(v.size());
  if (v.empty()) {
    ci.mean = ci.lo = ci.hi = std::numeric_limits<double>::quiet_NaN();
    return ci;
  }
  double sum = 0;
  for (double x : v) sum += x;
  ci.mean = sum / double(v.size());
  if (v.size() == 1) {
    ci.lo = ci.hi = ci.mean;
    return ci;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
  std::vector<double> means(static_cast<size_t>(resamples));
  for (auto& m : means) {
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += v[pick(rng)];
    m = s / double(v.size());
  }
  std::sort(means.begin(), means.end());
  // Linear interpolation between order statistics (numpy's default quantile).
  auto quantile = [&](double q) {
    const double pos = q * double(means.size() - 1);
    const size_t i = static_cast<size_t>(std::floor(pos));
    const size_t j = std::min(i + 1, means.size() - 1);
    return means[i] + (pos - double(i)) * (means[j] - means[i]);
  };
  ci.lo = quantile((1 - level) / 2);
  ci.hi = quantile((1 + level) / 2);
  return ci;
}

BootstrapCI paired_bootstrap_ci(const std::vector<double>& a, const std::vector<double>& b, int resamples, double level,
                                uint64_t seed) {
  if (a.size() != b.size())
    throw ArgumentError("paired_bootstrap_ci: " + std::to_string(a.size()) + " and " + std::to_string(b.size()) +
                        " values (a paired difference needs equal lengths)");
  std::vector<double> d;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) d.push_back(a[i] - b[i]);
  return bootstrap_mean_ci(d, resamples, level, seed);
}

}  // namespace face2scene::metrics
