// LFW View-2 verification pairs and the 10-fold protocol, shared by `identity-lfw` (dlib
// descriptor) and `faceres-lfw` (the training identity network).
#pragma once

#include <string>
#include <vector>

namespace face2scene::cli {

struct LfwPair {
  std::string a, b;
  bool same = false;
  int fold = 0;
  bool official = true;
};

// pairs.txt (View 2): "10 300", then per fold 300 matched "name n1 n2" and 300 mismatched
// "name1 n1 name2 n2". Keeps the pairs whose files are present; then, because the shared subset
// holds almost no mismatched pairs, adds mismatched pairs built inside each fold (person i's first
// matched image vs person i+1's second), so folds stay person-disjoint and balanced.
std::vector<LfwPair> read_lfw_pairs(const std::string& dir, const std::string& pairs_file, const std::string& ext,
                                    int* official_neg);

struct LfwAccuracy {
  std::vector<double> fold_accuracy, fold_threshold;
  double mean = 0, sd = 0;
};
// For each fold, the distance threshold best on the other nine folds is applied to it (candidate
// thresholds: midpoints of the sorted distances). A pair counts as "same" when dist < threshold.
LfwAccuracy lfw_10fold(const std::vector<double>& dist, const std::vector<LfwPair>& pairs);

}  // namespace face2scene::cli
