// `face2scene compare-images`: agreement of two renderings of the same picture (e.g. our
// upscale vs upscayl-bin's): PSNR over all pixels and over the "sane" ones, with the pixels an
// fp16 engine got badly wrong (and their halo) counted and excluded.
#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {
namespace fs = std::filesystem;

Command setup_compare_images(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand("compare-images", "PSNR of A against B, all pixels and with outlier pixels excluded");
  struct Args {
    std::string a, b;
    double threshold = 32;
    int halo = 3;
    int border = 0;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("A", args->a, "Image or folder (folders: files of the same name in both)")->required();
  sub->add_option("B", args->b, "Reference image or folder")->required();
  sub->add_option("--threshold", args->threshold, "A pixel is an outlier when a channel differs by more (of 255; default 32)");
  sub->add_option("--halo", args->halo, "Also exclude pixels this close to an outlier (default 3)");
  sub->add_option("--border", args->border, "Ignore this many pixels at each edge (default 0)");
  sub->footer("Prints one CSV line per image: name,psnr_all,psnr_sane,outlier_px,excluded_px,pixels\n"
              "Example:\n  face2scene compare-images ours/ upscayl/ --threshold 32");
  return {sub, [args]() {
            std::vector<std::pair<std::string, std::string>> pairs;
            if (fs::is_directory(args->a)) {
              for (const auto& f : collect_images({args->a})) {
                const std::string other = (fs::path(args->b) / fs::path(f).filename()).string();
                if (file_exists(other)) pairs.emplace_back(f, other);
              }
            } else {
              pairs.emplace_back(args->a, args->b);
            }
            std::printf("name,psnr_all,psnr_sane,outlier_px,excluded_px,pixels\n");
            for (const auto& [x, y] : pairs) {
              auto ta = image_to_tensor(read_image(x), torch::kCPU, torch::kFloat32, true);
              auto tb = image_to_tensor(read_image(y), torch::kCPU, torch::kFloat32, true);
              const auto r = compare_outputs(ta, tb, args->threshold / 255.0, args->halo, args->border);
              std::printf("%s,%.2f,%.2f,%lld,%lld,%lld\n", fs::path(x).filename().string().c_str(), r.psnr_all,
                          r.psnr_sane, static_cast<long long>(r.outliers), static_cast<long long>(r.excluded),
                          static_cast<long long>(r.pixels));
            }
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(compare_images, setup_compare_images);
}  // namespace face2scene::cli
