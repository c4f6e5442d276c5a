// `face2scene import-faceapi`: converts @vladmandic/face-api's face recognition weights or its SSD
// MobileNet v1 face detector (TF.js manifest + uint8-quantised .bin) once into face2scene's
// safetensors, checked by a strict load.
#include <cstdio>
#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/safetensors.hpp"
#include "models/face_recognition_net.hpp"
#include "models/ssd_mobilenet.hpp"

namespace face2scene::cli {
namespace {

struct ImportFaceapiOptions {
  std::string model = "recognition";
  std::string manifest;
  std::string out;
  bool fp16 = false;
};

std::string default_manifest(const std::string& model) {
  return face2scene_cache_dir() + "/npm-faceapi/node_modules/@vladmandic/face-api/model/" +
         (model == "ssd" ? "ssd_mobilenetv1_model" : "face_recognition_model") + "-weights_manifest.json";
}

Command setup_import_faceapi(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<ImportFaceapiOptions>();
  auto* sub = app.add_subcommand(
      "import-faceapi",
      "Convert face-api's face recognition weights or its face detector (TF.js) to safetensors");
  sub->add_option("--model", opts->model,
                  "recognition: the identity descriptor (dlib's ResNet); ssd: the SSD MobileNet v1 face detector")
      ->check(CLI::IsMember({"recognition", "ssd"}))
      ->capture_default_str();
  sub->add_option("--manifest", opts->manifest,
                  "<model>-weights_manifest.json of @vladmandic/face-api (its .bin must sit beside it)")
      ->default_str(default_manifest("recognition") + " (ssd: ssd_mobilenetv1_model-…)");
  sub->add_option("--out", opts->out, "Output safetensors file")
      ->default_str(default_faceapi_weights_path() + " (ssd: " + default_ssd_weights_path() + ")");
  sub->add_flag("--fp16", opts->fp16,
                "Store float16 instead of float32 (half the size; descriptors move by ~1e-4 in cosine, see docs/identity.md)");
  sub->footer(
      "The network always runs in float32; --fp16 only changes storage. Usually run by\n"
      "scripts/install_faceapi.sh. Example:\n"
      "  face2scene import-faceapi --manifest ~/.cache/face2scene/npm-faceapi/node_modules/"
      "@vladmandic/face-api/model/face_recognition_model-weights_manifest.json\n"
      "  face2scene import-faceapi --model ssd");
  return {sub, [opts, &g]() {
            const bool ssd = opts->model == "ssd";
            const std::string manifest = opts->manifest.empty() ? default_manifest(opts->model) : opts->manifest;
            const std::string out =
                !opts->out.empty() ? opts->out : (ssd ? default_ssd_weights_path() : default_faceapi_weights_path());
            TensorMap tensors = ssd ? read_faceapi_ssd_weights(manifest) : read_faceapi_recognition_weights(manifest);
            // Strict load into the module proves every tensor is there with the right shape
            // before anything is written.
            std::shared_ptr<torch::nn::Module> net;
            Metadata meta;
            if (ssd) {
              SsdMobilenetV1 m;
              load_state_dict_strict(*m, tensors, manifest);
              net = m.ptr();
              meta = {{"arch", kSsdMobilenetArch},
                      {"version", kSsdMobilenetVersion},
                      {"source", "@vladmandic/face-api model/ssd_mobilenetv1_model"},
                      {"input", "RGB 512x512, 0..255"}};
            } else {
              FaceRecognitionNet m;
              load_state_dict_strict(*m, tensors, manifest);
              net = m.ptr();
              meta = {{"arch", kFaceRecognitionArch},
                      {"version", kFaceRecognitionVersion},
                      {"source", "@vladmandic/face-api model/face_recognition_model (dlib_face_recognition_resnet_model_v1)"},
                      {"input", "RGB 150x150, 0..255, dlib face chip (size 150, padding 0.25)"}};
            }
            auto parent = std::filesystem::path(out).parent_path();
            if (!parent.empty()) ensure_directory(parent.string());
            save_safetensors(out, state_dict(*net), meta,
                             opts->fp16 ? c10::optional<torch::Dtype>(torch::kHalf) : c10::nullopt);
            int64_t n = 0;
            for (const auto& [k, v] : tensors) n += v.numel();
            if (!g.quiet) {
              std::printf("wrote %s (%zu tensors, %lld parameters, %s)\n", out.c_str(), tensors.size(),
                          static_cast<long long>(n), opts->fp16 ? "float16" : "float32");
            }
          }};
}

}  // namespace
F2S_REGISTER_COMMAND(import_faceapi, setup_import_faceapi);
}  // namespace face2scene::cli
