// `face2scene identity`: 128-D identity descriptors of face crops (and the 150x150 crops the net
// sees), and `face2scene identity-lfw`: verification accuracy on the LFW pairs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "lfw.hpp"
#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/image.hpp"
#include "face2scene/tensor.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {

struct CropSpec {
  std::string mode = "ffhq";  // ffhq | lfw | none
  // The median dlib chip (size 150, padding 0.25) over the 1528 shared LFW images is a
  // 117 px square centred 10 px below the image centre (scripts/identity/dlib_chips.cpp).
  int lfw_crop = 117;
  int lfw_shift = 10;
};

// The 150x150 crop in [0,1], quantised to 8 bits like an image file would be, so that what
// --save-crops writes is exactly what the descriptor saw.
torch::Tensor make_crop(const Image& img, const CropSpec& spec) {
  auto t = image_to_tensor(img.to_rgb(), torch::kCPU, torch::kFloat32, true);
  torch::Tensor c;
  if (spec.mode == "ffhq") {
    c = crop_for_descriptor(t);
  } else if (spec.mode == "lfw") {
    c = crop_lfw_deepfunneled(t, spec.lfw_crop, spec.lfw_shift);
  } else if (spec.mode == "none") {
    c = torch::nn::functional::interpolate(
        t.unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{150, 150})
                            .mode(torch::kBilinear)
                            .align_corners(false)
                            .antialias(t.size(1) > 150 || t.size(2) > 150));
  } else {
    throw ArgumentError("--crop must be ffhq, lfw or none, got '" + spec.mode + "'");
  }
  return (c.clamp(0, 1) * 255.0f).round() / 255.0f;
}

void write_ppm(const std::string& path, const torch::Tensor& crop01) {
  auto u8 = (crop01.squeeze(0).clamp(0, 1) * 255.0f).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  std::string bytes = "P6\n" + std::to_string(u8.size(1)) + " " + std::to_string(u8.size(0)) + "\n255\n";
  bytes.append(reinterpret_cast<const char*>(u8.data_ptr<uint8_t>()), static_cast<size_t>(u8.numel()));
  write_file_atomically(path, bytes);
}

void add_crop_options(CLI::App* sub, CropSpec& spec) {
  sub->add_option("--crop", spec.mode,
                  "How to get the 150x150 chip: ffhq (input is FFHQ-aligned, any square size; dlib-chip "
                  "region), lfw (fixed centre crop of a 250x250 deep-funneled LFW image), none (resize whole image)")
      ->check(CLI::IsMember({"ffhq", "lfw", "none"}))
      ->capture_default_str();
  sub->add_option("--lfw-crop", spec.lfw_crop, "Side of the centre crop for --crop lfw (pixels of the 250x250 image)")
      ->capture_default_str();
  sub->add_option("--lfw-shift", spec.lfw_shift, "Move the --crop lfw window down by this many pixels")->capture_default_str();
}

// ---- identity -------------------------------------------------------------------------------

struct IdentityOptions {
  std::vector<std::string> inputs;
  CropSpec crop;
  std::string weights;
  std::string save_crops;
  std::string json;
  std::string device = "cpu";
};

Command setup_identity(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<IdentityOptions>();
  auto* sub = app.add_subcommand("identity", "128-D identity descriptors of face crops and their cosine similarity to the first");
  sub->add_option("inputs", o->inputs, "Face images or folders of them")->required();
  add_crop_options(sub, o->crop);
  sub->add_option("--weights", o->weights, "Converted descriptor weights")->default_str(default_faceapi_weights_path());
  sub->add_option("--save-crops", o->save_crops, "Write each 150x150 network input as <stem>.ppm into this folder");
  sub->add_option("--json", o->json, "Write {\"descriptors\": {stem: [128 floats]}} to this file");
  sub->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  sub->footer(
      "Prints, per image, the cosine similarity and Euclidean distance of its descriptor to the first\n"
      "image's. Same person: distance < 0.6 (dlib's threshold); the descriptors are not centred, so\n"
      "unrelated faces still have cosine ~0.8. Example:\n"
      "  face2scene identity --crop ffhq --json ids.json a_aligned.png b_aligned.png");
  return {sub, [o, &g]() {
            auto files = collect_images(o->inputs);
            auto device = parse_device(o->device);
            auto desc = FaceDescriptor::load(o->weights.empty() ? default_faceapi_weights_path() : o->weights, device);
            if (!o->save_crops.empty()) ensure_directory(o->save_crops);
            nlohmann::json out;
            out["weights"] = o->weights.empty() ? default_faceapi_weights_path() : o->weights;
            out["crop"] = o->crop.mode;
            torch::Tensor first;
            Progress progress("identity", static_cast<int64_t>(files.size()));
            for (const auto& f : files) {
              auto crop = make_crop(read_image(f), o->crop);
              const std::string stem = fs::path(f).stem().string();
              if (!o->save_crops.empty()) write_ppm((fs::path(o->save_crops) / (stem + ".ppm")).string(), crop);
              auto d = desc.embed(crop).squeeze(0).cpu();
              if (!first.defined()) first = d;
              std::vector<float> v(d.data_ptr<float>(), d.data_ptr<float>() + d.numel());
              out["descriptors"][stem] = v;
              if (!g.quiet) {
                std::printf("%-40s cos_to_first %.4f  dist_to_first %.4f  norm %.4f\n", stem.c_str(), identity_similarity(first, d),
                            (first - d).norm().item<float>(), d.norm().item<float>());
              }
              progress.advance();
            }
            progress.finish();
            if (!o->json.empty()) write_file_atomically(o->json, out.dump(1) + "\n");
          }};
}

// ---- identity-lfw ---------------------------------------------------------------------------

struct LfwOptions {
  std::string dir;
  std::string pairs;
  std::string ext = "jpg";
  CropSpec crop;
  std::string weights;
  std::string json;
  std::string device = "cpu";
  int batch = 32;
};

Command setup_identity_lfw(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<LfwOptions>();
  o->crop.mode = "lfw";
  auto* sub = app.add_subcommand("identity-lfw", "Face verification accuracy of the identity descriptor on LFW pairs (10 folds)");
  sub->add_option("--lfw", o->dir, "LFW folder (deep-funneled <Name>/<Name>_NNNN.jpg + pairs.txt)")
      ->default_str("../shared/data/faces/lfw");
  sub->add_option("--pairs", o->pairs, "pairs.txt to use (default: <lfw>/pairs.txt)");
  sub->add_option("--ext", o->ext, "Image extension under --lfw (png for pre-aligned chips, e.g. with --crop none)")
      ->capture_default_str();
  add_crop_options(sub, o->crop);
  sub->add_option("--weights", o->weights, "Converted descriptor weights")->default_str(default_faceapi_weights_path());
  sub->add_option("--json", o->json, "Write the per-fold results and settings to this file");
  sub->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  sub->add_option("--batch", o->batch, "Faces per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  sub->footer(
      "Distance: Euclidean between descriptors (dlib's). For each fold the threshold that is best on the\n"
      "other nine is applied (LFW View-2 protocol); the fixed dlib threshold 0.6 is reported too.\n"
      "Only pairs whose images exist are used; mismatched pairs are completed inside each fold.\n"
      "Example:\n  face2scene --threads 2 identity-lfw --lfw ../shared/data/faces/lfw");
  return {sub, [o, &g]() {
            const std::string dir = o->dir.empty() ? "../shared/data/faces/lfw" : o->dir;
            int official_neg = 0;
            auto pairs = read_lfw_pairs(dir, o->pairs.empty() ? dir + "/pairs.txt" : o->pairs, o->ext, &official_neg);
            if (pairs.empty()) throw IoError(dir + ": no usable LFW pairs (images missing?)");
            std::vector<std::string> files;
            for (const auto& p : pairs) files.push_back(p.a), files.push_back(p.b);
            std::sort(files.begin(), files.end());
            files.erase(std::unique(files.begin(), files.end()), files.end());
            auto desc = FaceDescriptor::load(o->weights.empty() ? default_faceapi_weights_path() : o->weights, parse_device(o->device));
            std::map<std::string, torch::Tensor> emb;
            Progress progress("identity-lfw embed", static_cast<int64_t>(files.size()));
            const auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < files.size(); i += o->batch) {
              std::vector<torch::Tensor> crops;
              const size_t end = std::min(files.size(), i + o->batch);
              for (size_t j = i; j < end; ++j) crops.push_back(make_crop(read_image(files[j]), o->crop));
              auto d = desc.embed(torch::cat(crops, 0)).cpu();
              for (size_t j = i; j < end; ++j) emb[files[j]] = d[j - i];
              progress.advance(static_cast<int64_t>(end - i));
            }
            progress.finish();
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::vector<double> dist(pairs.size());
            double same_cos = 0, diff_cos = 0;
            int n_same = 0, n_diff = 0;
            for (size_t i = 0; i < pairs.size(); ++i) {
              const auto& a = emb[pairs[i].a];
              const auto& b = emb[pairs[i].b];
              dist[i] = (a - b).norm().item<double>();
              const double c = identity_similarity(a, b);
              if (pairs[i].same) same_cos += c, ++n_same;
              else diff_cos += c, ++n_diff;
            }
            nlohmann::json report;
            const LfwAccuracy acc = lfw_10fold(dist, pairs);
            for (size_t f = 0; f < acc.fold_accuracy.size(); ++f) {
              report["folds"].push_back(
                  {{"fold", f + 1}, {"threshold", acc.fold_threshold[f]}, {"accuracy", acc.fold_accuracy[f]}});
            }
            const double mean = acc.mean, sd = acc.sd;
            int ok06 = 0;
            for (size_t i = 0; i < pairs.size(); ++i) ok06 += ((dist[i] < 0.6) == pairs[i].same);
            const double acc06 = static_cast<double>(ok06) / pairs.size();
            report["pairs"] = pairs.size();
            report["matched"] = n_same;
            report["mismatched_official"] = official_neg;
            report["mismatched_generated"] = n_diff - official_neg;
            report["crop"] = {{"mode", o->crop.mode}, {"lfw_crop", o->crop.lfw_crop}, {"lfw_shift", o->crop.lfw_shift}};
            report["accuracy_10fold_mean"] = mean;
            report["accuracy_10fold_std"] = sd;
            report["accuracy_threshold_0.6"] = acc06;
            report["mean_cos_matched"] = same_cos / std::max(1, n_same);
            report["mean_cos_mismatched"] = diff_cos / std::max(1, n_diff);
            report["embed_seconds"] = secs;
            report["images"] = files.size();
            std::printf(
                "LFW pairs: %zu (%d matched, %d official + %d generated mismatched), %zu images embedded in %.1f s\n"
                "10-fold accuracy: %.2f%% +- %.2f%%   fixed threshold 0.6: %.2f%%\n"
                "mean cosine: matched %.3f, mismatched %.3f\n",
                pairs.size(), n_same, official_neg, n_diff - official_neg, files.size(), secs, 100 * mean, 100 * sd,
                100 * acc06, same_cos / std::max(1, n_same), diff_cos / std::max(1, n_diff));
            if (!o->json.empty()) write_file_atomically(o->json, report.dump(1) + "\n");
          }};
}

}  // namespace
F2S_REGISTER_COMMAND(identity, setup_identity);
F2S_REGISTER_COMMAND(identity_lfw, setup_identity_lfw);
}  // namespace face2scene::cli
