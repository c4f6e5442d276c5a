// `face2scene restore-scene`: restore a whole image with the degradation code read from a face
// pair (degraded face + clean or restored face of the same photo's degradation), or blind.
// `face2scene read-degradation`: say what FaDeX reads from a face pair, in words.
#include <cstdio>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/oracle_restore.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {

torch::Tensor load_face(const std::string& path) {
  return image_to_tensor(read_image(path), torch::kCPU, torch::kFloat32, /*rgb=*/true).unsqueeze(0);
}

Command setup_restore_scene(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("restore-scene",
                                 "Restore a whole photo with the degradation code read from a face pair (or blind)");
  struct Args {
    std::vector<std::string> inputs;
    std::string out, face_lq, face_hq, models, device = "auto", dtype = "auto";
    int scale = 4, tile = -1;
    double realism = 0;
    bool blind = false, blind_model = false, overwrite = false, keep_orientation = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("inputs", a->inputs, "Degraded images or folders")->required();
  sub->add_option("-o,--out", a->out, "Output file, or folder for several inputs")->required();
  sub->add_option("--face-lq", a->face_lq, "Degraded face crop (aligned, from the same photo or the same degradation)");
  sub->add_option("--face-hq", a->face_hq, "Clean or restored version of that face (aligned, any size; resized to 128²)");
  sub->add_flag("--blind", a->blind, "No face code: the conditioned model with its null tokens");
  sub->add_flag("--blind-model", a->blind_model, "The blind baseline model (trained with null tokens only)");
  sub->add_option("--scale", a->scale, "4 (super-resolve ×4) or 1 (restore at the same size)")->check(CLI::IsMember({1, 4}));
  sub->add_option("--models", a->models, "Folder with fadex.safetensors and scene_restorer*.safetensors (default ./weights)");
  sub->add_option("--tile", a->tile, "Tile side in network positions: input pixels at ×4, 4x4-pixel blocks at ×1 (0 = whole image;\n"
                  "-1 = auto: 256 on every device). The result does not depend on it: every tile is normalised\n"
                  "with statistics of the whole image");
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N");
  sub->add_option("--realism", a->realism,
                  "0 = the fidelity (L1-trained) restorer, 1 = the GAN-trained one (more invented detail); between:\n"
                  "their weights interpolated. > 0 needs scene_restorer*_gan.safetensors in --models")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--dtype", a->dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16"}));
  sub->add_flag("--overwrite", a->overwrite, "Redo outputs that already exist");
  sub->add_flag("--keep-orientation", a->keep_orientation, "Do not turn photos by their EXIF orientation tag (read pixels as stored)");
  sub->footer(
      std::string(kOutputNamesHelp) + "\n"
      "The code tells the restorer what happened to the photo (blur, noise, JPEG, downscale); give a face pair\n"
      "that went through the same degradation: e.g. the degraded face from the photo and a restored face.\n"
      "Examples:\n"
      "  face2scene restore-scene photo.jpg -o big.png --face-lq face_lq.png --face-hq face_restored.png\n"
      "  face2scene restore-scene photos/ -o restored/ --blind --scale 1");
  return {sub, [a]() {
            if (a->blind || a->blind_model) {
              if (!a->face_lq.empty() || !a->face_hq.empty()) throw ArgumentError("--blind and a face pair exclude each other");
            } else if (a->face_lq.empty() || a->face_hq.empty()) {
              throw ArgumentError("give --face-lq and --face-hq (a face pair) or --blind");
            }
            // Inputs and output names first: a clash is reported before the models load.
            const auto files = collect_images(a->inputs);
            if (files.empty()) throw ArgumentError("no images found in the inputs");
            const bool out_is_dir = files.size() > 1 || std::filesystem::is_directory(a->out);
            const auto outs = output_paths_for(files, a->out, out_is_dir);
            OracleOptions o;
            o.device = parse_device(a->device);
            o.dtype = parse_dtype(a->dtype, o.device, torch::kBFloat16);
            // One default on every device, so the CPU and CUDA give the same picture.
            // Overlap 48 and margin 20 (TileOptions' defaults): tiled is within 0.3/255 of untiled
            // (tests/test_oracle_restore.cpp; margin 12 left up to 4/255 at the seams).
            o.tiles.tile = a->tile < 0 ? 256 : a->tile;
            o.realism = a->realism;
            OracleRestorer r(OracleModelPaths::locate(a->models), o, a->blind_model);
            torch::Tensor tokens;
            if (!a->face_lq.empty()) {
              auto lq = load_face(a->face_lq), hq = load_face(a->face_hq);
              log_info("read from the face: " + r.read_degradation(lq, hq).front().describe());
              tokens = r.tokens(r.code_map(lq, hq));
            } else {
              tokens = r.tokens(torch::Tensor());
            }
            if (out_is_dir) ensure_directory(a->out);
            Progress progress("restore-scene", int64_t(files.size()));
            for (size_t i = 0; i < files.size(); ++i) {
              const std::string& f = files[i];
              const std::string& dst = outs[i];
              if (!a->overwrite && file_exists(dst)) {
                log_info("skip (exists): " + dst);
              } else {
                ImageReadOptions ro;
                ro.apply_orientation = !a->keep_orientation;
                write_image(dst, r.restore(read_image(f, ro), tokens, a->scale));
              }
              progress.advance();
            }
            progress.finish();
          }};
}

Command setup_read_degradation(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("read-degradation", "Say what happened to a photo, read from a face pair by FaDeX");
  struct Args {
    std::string lq, hq, models;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("--lq", a->lq, "Degraded face crop")->required();
  sub->add_option("--hq", a->hq, "Clean or restored version of the same face")->required();
  sub->add_option("--models", a->models, "Folder with fadex.safetensors (default ./weights)");
  sub->footer("Prints e.g. \"blur σ≈2.1 px, noise σ≈12/255, JPEG q≈40, ×4.0 downscale\".\n"
              "Example:\n  face2scene read-degradation --lq face_lq.png --hq face_restored.png");
  return {sub, [a]() {
            OracleOptions o;
            OracleRestorer r(OracleModelPaths::locate(a->models), o);
            const auto s = r.read_degradation(load_face(a->lq), load_face(a->hq)).front();
            std::printf("%s\n", s.describe().c_str());
            std::printf("blur_sigma=%.2f noise_sigma=%.1f poisson=%.2f jpeg_quality=%.0f scale=%.2f\n", s.blur_sigma,
                        s.noise_sigma, s.poisson, s.jpeg_quality, s.scale);
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(restore_scene, setup_restore_scene);
F2S_REGISTER_COMMAND(read_degradation, setup_read_degradation);
}  // namespace face2scene::cli
