// LFW pairs and the 10-fold protocol (lfw.hpp).
#include "lfw.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "face2scene/core.hpp"

namespace face2scene::cli {

namespace {

double accuracy_at(const std::vector<double>& dist, const std::vector<LfwPair>& pairs, double thr, int fold, bool train) {
  int n = 0, ok = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if ((pairs[i].fold == fold) == train) continue;
    ++n;
    ok += ((dist[i] < thr) == pairs[i].same);
  }
  return n ? static_cast<double>(ok) / n : 0.0;
}

}  // namespace

static std::string lfw_file(const std::string& dir, const std::string& name, int n, const std::string& ext) {
  char num[16];
  std::snprintf(num, sizeof num, "%04d", n);
  return dir + "/" + name + "/" + name + "_" + num + "." + ext;
}

// pairs.txt (View 2): "10 300", then per fold 300 matched "name n1 n2" and 300 mismatched
// "name1 n1 name2 n2". Keeps the pairs whose files are present; then, because the shared subset
// holds almost no mismatched pairs, adds mismatched pairs built inside each fold (person i's first
// matched image vs person i+1's second), so folds stay person-disjoint and balanced.
std::vector<LfwPair> read_lfw_pairs(const std::string& dir, const std::string& pairs_file, const std::string& ext,
                                    int* official_neg) {
  std::ifstream in(pairs_file);
  if (!in) throw IoError(pairs_file + ": cannot open (LFW pairs list)");
  int folds = 0, per = 0;
  in >> folds >> per;
  if (folds <= 0 || per <= 0) throw FormatError(dir + "/pairs.txt: bad header (expected '10 300')");
  std::vector<LfwPair> pairs;
  *official_neg = 0;
  std::string line;
  std::getline(in, line);
  for (int f = 0; f < folds; ++f) {
    std::vector<LfwPair> pos;
    int neg_here = 0;
    for (int i = 0; i < 2 * per; ++i) {
      if (!std::getline(in, line)) throw FormatError(dir + "/pairs.txt: ends early in fold " + std::to_string(f + 1));
      std::istringstream ls(line);
      std::vector<std::string> tok;
      for (std::string t; ls >> t;) tok.push_back(t);
      LfwPair p;
      p.fold = f;
      if (tok.size() == 3) {
        p.a = lfw_file(dir, tok[0], std::stoi(tok[1]), ext);
        p.b = lfw_file(dir, tok[0], std::stoi(tok[2]), ext);
        p.same = true;
      } else if (tok.size() == 4) {
        p.a = lfw_file(dir, tok[0], std::stoi(tok[1]), ext);
        p.b = lfw_file(dir, tok[2], std::stoi(tok[3]), ext);
      } else {
        throw FormatError(dir + "/pairs.txt: bad line '" + line + "'");
      }
      if (!file_exists(p.a) || !file_exists(p.b)) continue;
      if (p.same) {
        pos.push_back(p);
      } else {
        ++neg_here;
        ++*official_neg;
      }
      pairs.push_back(p);
    }
    const int need = static_cast<int>(pos.size()) - neg_here;
    for (int i = 0; i < need && pos.size() > 1; ++i) {
      LfwPair n;
      n.a = pos[i % pos.size()].a;
      n.b = pos[(i + 1) % pos.size()].b;
      n.fold = f;
      n.official = false;
      pairs.push_back(n);
    }
  }
  return pairs;
}

LfwAccuracy lfw_10fold(const std::vector<double>& dist, const std::vector<LfwPair>& pairs) {
  std::vector<double> cand(dist);
  std::sort(cand.begin(), cand.end());
  std::vector<double> thr_c;
  for (size_t i = 0; i + 1 < cand.size(); ++i) thr_c.push_back(0.5 * (cand[i] + cand[i + 1]));
  int folds = 0;
  for (const auto& p : pairs) folds = std::max(folds, p.fold + 1);
  LfwAccuracy r;
  for (int f = 0; f < folds; ++f) {
    double best = -1, best_t = 0.6;
    for (double t : thr_c) {
      double a = accuracy_at(dist, pairs, t, f, /*train=*/true);
      if (a > best) best = a, best_t = t;
    }
    r.fold_accuracy.push_back(accuracy_at(dist, pairs, best_t, f, /*train=*/false));
    r.fold_threshold.push_back(best_t);
  }
  for (double a : r.fold_accuracy) r.mean += a;
  r.mean /= std::max<size_t>(1, r.fold_accuracy.size());
  for (double a : r.fold_accuracy) r.sd += (a - r.mean) * (a - r.mean);
  r.sd = std::sqrt(r.sd / std::max<size_t>(1, r.fold_accuracy.size()));
  return r;
}

}  // namespace face2scene::cli
