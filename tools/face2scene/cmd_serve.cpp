// `face2scene serve`: the local web page (docs/server.md). Loads the models once, serves until
// SIGINT/SIGTERM, then stops cleanly (the running job is interrupted, temporary files removed).
#include <csignal>
#include <cstdio>

#include <pthread.h>

#include "cli_common.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/serve.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {
struct ServeArgs {
  ServeOptions o;
  std::string models, identity_weights, device = "auto", dtype = "auto";
  int tile = -1;
  int max_upload_mb = 64;
  double max_megapixels = 16, max_output_megapixels = 64;
};

Command setup_serve(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("serve", "A local web page: restore a photo, see its faces and the degradation read, compare");
  auto a = std::make_shared<ServeArgs>();
  sub->add_option("--host", a->o.host, "Address to listen on; anything but loopback is reachable from the network")
      ->capture_default_str();
  sub->add_option("--port", a->o.port, "Port (0 = any free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N");
  sub->add_option("--dtype", a->dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16"}));
  sub->add_option("--models", a->models, "Folder with our weights (default ./weights, $F2S_MODELS)");
  sub->add_option("--identity-weights", a->identity_weights, "face-api recognition weights (default: the cache)");
  sub->add_option("--tile", a->tile, "Scene restorer tile side (input pixels; -1 = auto: 256 CPU, 512 CUDA)");
  sub->add_option("--queue", a->o.queue_size, "Jobs that may wait behind the running one (more: 503)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub->add_option("--max-upload-mb", a->max_upload_mb, "Largest upload (MB; more: 413)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub->add_option("--max-megapixels", a->max_megapixels, "Largest photo (megapixels; more: 413)")
      ->check(CLI::Range(0.01, 1000.0))
      ->capture_default_str();
  sub->add_option("--max-output-megapixels", a->max_output_megapixels, "Largest result (photo x scale^2; more: 413)")
      ->check(CLI::Range(0.01, 10000.0))
      ->capture_default_str();
  sub->add_option("--job-ttl", a->o.job_ttl_s, "Seconds a finished job and its files are kept")
      ->check(CLI::Range(1.0, 1e7))
      ->capture_default_str();
  sub->add_option("--temp", a->o.temp_root, "Folder for job files (default $TMPDIR or /tmp)");
  sub->add_option("--web", a->o.web_dir, "Serve the page from this folder instead of the built-in copy (editing web/)");
  sub->footer(
      "Open the printed address in a browser: drop a photo (and reference photos per person), see the faces\n"
      "and the degradation read from them, compare before and after, download. The JSON API the page uses\n"
      "is in docs/server.md. Ctrl-C stops it and removes its temporary files.\n"
      "Examples:\n"
      "  face2scene serve\n"
      "  face2scene serve --port 9000 --device cuda");
  return {sub, [a]() {
            // SIGINT/SIGTERM are blocked in every thread (threads inherit the mask, so block first)
            // and taken synchronously below: stop() then runs on the main thread, not in a handler.
            sigset_t sigs;
            sigemptyset(&sigs);
            sigaddset(&sigs, SIGINT);
            sigaddset(&sigs, SIGTERM);
            pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

            Face2SceneConfig c;
            c.device = parse_device(a->device);
            c.dtype = parse_dtype(a->dtype, c.device, torch::kBFloat16);
            c.models_dir = a->models;
            c.identity_weights = a->identity_weights;
            c.tiles.tile = a->tile < 0 ? (c.device.is_cuda() ? 512 : 256) : a->tile;
            c.tiles.overlap = 32;
            c.tiles.margin = 12;
            Face2Scene f2s(c);
            ServeOptions o = a->o;
            o.max_upload_bytes = static_cast<size_t>(a->max_upload_mb) << 20;
            o.max_pixels = static_cast<uint64_t>(a->max_megapixels * 1e6);
            o.max_reference_pixels = o.max_pixels;
            o.max_output_pixels = static_cast<uint64_t>(a->max_output_megapixels * 1e6);
            o.device_name = c.device.str();
            Server server(f2s, o);
            server.start();
            std::printf("face2scene serve: %s  (Ctrl-C stops)\n", server.url().c_str());
            std::fflush(stdout);
            int sig = 0;
            sigwait(&sigs, &sig);
            log_info(std::string("serve: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping");
            server.stop();
          }};
}
}  // namespace
F2S_REGISTER_COMMAND(serve, setup_serve);
}  // namespace face2scene::cli
