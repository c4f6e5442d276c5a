// `face2scene import-faceapi`: converts @vladmandic/face-api's face recognition weights (TF.js
// manifest + uint8-quantised .bin) once into face2scene's safetensors, checked by a strict load.
#include <cstdio>
#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/safetensors.hpp"
#include "models/face_recognition_net.hpp"

namespace face2scene::cli {
namespace {

struct ImportFaceapiOptions {
  std::string manifest;
  std::string out;
  bool fp16 = false;
};

std::string default_manifest() {
  return face2scene_cache_dir() +
         "/npm-faceapi/node_modules/@vladmandic/face-api/model/face_recognition_model-weights_manifest.json";
}

Command setup_import_faceapi(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<ImportFaceapiOptions>();
  auto* sub = app.add_subcommand(
      "import-faceapi",
      "Convert face-api's face recognition weights (TF.js) to safetensors for the identity descriptor");
  sub->add_option("--manifest", opts->manifest,
                  "face_recognition_model-weights_manifest.json of @vladmandic/face-api (its .bin must sit beside it)")
      ->default_str(default_manifest());
  sub->add_option("--out", opts->out, "Output safetensors file")->default_str(default_faceapi_weights_path());
  sub->add_flag("--fp16", opts->fp16,
                "Store float16 instead of float32 (half the size; descriptors move by ~1e-4 in cosine, see docs/identity.md)");
  sub->footer(
      "The network always runs in float32; --fp16 only changes storage. Usually run by\n"
      "scripts/install_faceapi.sh. Example:\n"
      "  face2scene import-faceapi --manifest ~/.cache/face2scene/npm-faceapi/node_modules/"
      "@vladmandic/face-api/model/face_recognition_model-weights_manifest.json");
  return {sub, [opts, &g]() {
            const std::string manifest = opts->manifest.empty() ? default_manifest() : opts->manifest;
            const std::string out = opts->out.empty() ? default_faceapi_weights_path() : opts->out;
            TensorMap tensors = read_faceapi_recognition_weights(manifest);
            // Strict load into the module proves every tensor is there with the right shape
            // before anything is written.
            FaceRecognitionNet net;
            load_state_dict_strict(*net, tensors, manifest);
            Metadata meta{{"arch", kFaceRecognitionArch},
                          {"version", kFaceRecognitionVersion},
                          {"source", "@vladmandic/face-api model/face_recognition_model (dlib_face_recognition_resnet_model_v1)"},
                          {"input", "RGB 150x150, 0..255, dlib face chip (size 150, padding 0.25)"}};
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
