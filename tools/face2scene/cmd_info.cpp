// `face2scene info`: versions, devices and threads: the first thing to paste into a bug report.
#include <cstdio>

#include "cli_common.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {
Command setup_info(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand("info", "Print versions, available devices and thread count");
  return {sub, [&g]() {
            std::printf("face2scene %s\nLibTorch %s\nCUDA available: %s (%d device(s))\nthreads: %d\n"
                        "CPU native bf16: %s (face models run in %s on the CPU; F2S_CPU_BF16=0|1 overrides)\n",
                        version_string().c_str(), torch_version_string().c_str(),
                        torch::cuda::is_available() ? "yes" : "no",
                        static_cast<int>(torch::cuda::device_count()), torch::get_num_threads(),
                        cpu_native_bf16() ? "yes" : "no", cpu_native_bf16() ? "bf16" : "float32");
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(info, setup_info);
}  // namespace face2scene::cli
