// `face2scene degrade`: synthetic degradation of images (files or folders) with a preset and a
// seed, the parameters saved as JSON, or re-applied from JSON; --contact-sheet draws the visual
// check of every degradation type.
#include <nlohmann/json.hpp>

#include <filesystem>

#include "cli_common.hpp"
#include "face2scene/degrade.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/tensor.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {
struct DegradeOptions {
  std::vector<std::string> inputs;
  std::string output;
  std::string preset = "realesrgan";
  uint64_t seed = 0;
  std::string params_out;
  std::string params_in;
  bool keep_size = false;
  std::string jpeg = "auto";
  std::string device = "cpu";
  std::string contact_sheet;
  int tile = 192;
  bool keep_orientation = false;

  ImageReadOptions read_options() const {
    ImageReadOptions r;
    r.apply_orientation = !keep_orientation;
    return r;
  }
};

// A file's degradation depends on (seed, file name), not on its position in a folder: the same
// image gets the same degradation alone or with others.
uint64_t name_hash(const std::string& path) { return fnv1a(fs::path(path).filename().string()); }

JpegMode parse_jpeg(const std::string& s) {
  if (s == "auto") return JpegMode::kAuto;
  if (s == "codec") return JpegMode::kCodec;
  if (s == "emulated") return JpegMode::kEmulated;
  throw ArgumentError("--jpeg '" + s + "': expected auto, codec or emulated");
}

void run_contact_sheet(const DegradeOptions& o) {
  if (o.inputs.size() != 1 || fs::is_directory(o.inputs[0])) throw ArgumentError("--contact-sheet takes exactly one input image");
  if (!is_image_path(o.contact_sheet)) throw ArgumentError(o.contact_sheet + ": contact sheet must be .png or .jpg");
  const Image src = read_image(o.inputs[0], o.read_options());
  write_image(o.contact_sheet, make_contact_sheet(src, o.seed, o.tile));
  log_info("wrote " + o.contact_sheet);
}

void run_degrade(const DegradeOptions& o) {
  if (!o.contact_sheet.empty()) return run_contact_sheet(o);
  if (o.output.empty()) throw ArgumentError("-o OUT is required (a file, or a folder for several inputs)");
  const JpegMode jpeg = parse_jpeg(o.jpeg);
  const torch::Device device = parse_device(o.device);
  DegradationParams fixed;
  const bool use_fixed = !o.params_in.empty();
  if (use_fixed) {
    fixed = DegradationParams::from_json(read_file(o.params_in), o.params_in);
    if (o.keep_size) fixed.keep_size = true;
  } else {
    DegradationSampler check(o.preset, o.seed);  // unknown preset: fail before any work
  }
  const std::vector<std::string> files = collect_images(o.inputs);
  const bool out_is_dir = files.size() > 1 || fs::is_directory(o.inputs[0]) || fs::is_directory(o.output);
  if (!out_is_dir && !is_image_path(o.output)) throw ArgumentError(o.output + ": output must end in .png or .jpg (or be a folder)");
  if (!o.params_out.empty() && fs::path(o.params_out).extension() != ".json") {
    throw ArgumentError(o.params_out + ": --params file must end in .json");
  }
  const auto outs = output_paths_for(files, o.output, out_is_dir, ".png");
  // Decode everything first: a bad input stops the run before any output exists.
  for (const auto& f : files) {
    const Image img = read_image(f, o.read_options());
    if (img.empty()) throw FormatError(f + ": image has zero size");
  }
  if (out_is_dir) ensure_directory(o.output);
  torch::NoGradGuard no_grad;
  nlohmann::json all = nlohmann::json::object();
  std::string single_json;
  std::vector<std::string> written;
  Progress progress("degrade", int64_t(files.size()));
  try {
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string& f = files[i];
      DegradationParams p = fixed;
      if (!use_fixed) {
        DegradationSampler sampler(o.preset, mix_seed(o.seed, name_hash(f)));
        sampler.set_keep_size(o.keep_size);
        p = sampler.sample();
      }
      const Image img = read_image(f, o.read_options());
      auto x = image_to_tensor(img, device);
      auto y = apply_degradation(x, p, {jpeg});
      const std::string& out = outs[i];
      write_image(out, tensor_to_image(y.to(torch::kCPU), 8));
      written.push_back(out);
      log_debug(f + ": " + p.describe());
      if (files.size() == 1) single_json = p.to_json();
      all[fs::path(f).filename().string()] = nlohmann::json::parse(p.to_json());
      progress.advance();
    }
    if (!o.params_out.empty()) write_file_atomically(o.params_out, (files.size() == 1 ? single_json : all.dump(2)) + "\n");
  } catch (...) {
    std::error_code ec;
    for (const auto& w : written) fs::remove(w, ec);  // no partial output
    throw;
  }
  progress.finish();
}

Command setup_degrade(CLI::App& app, GlobalOptions& g) {
  auto o = std::make_shared<DegradeOptions>();
  auto* sub = app.add_subcommand("degrade", "Degrade images synthetically (blur, resize, noise, JPEG) by preset and seed");
  sub->add_option("inputs", o->inputs, "Input images or folders (PNG/JPEG)")->required();
  sub->add_option("-o,--output", o->output, "Output image, or folder when several inputs or a folder are given (PNG)");
  std::string presets;
  for (auto& n : preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  sub->add_option("--preset", o->preset, "Degradation preset: " + presets + " (see docs/degradation.md)")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed: the same seed and file name give bit-identical output on CPU")->capture_default_str();
  sub->add_option("--params", o->params_out, "Write the sampled parameters as JSON (one object per file for folders)");
  auto* apply = sub->add_option("--apply", o->params_in, "Apply the degradation stored in this JSON (from --params) instead of sampling");
  apply->excludes(sub->get_option("--preset"));
  sub->add_flag("--keep-size", o->keep_size, "x1 mode: resize the degraded image back to the input size");
  sub->add_flag("--keep-orientation", o->keep_orientation, "Do not turn photos by their EXIF orientation tag (read pixels as stored)");
  sub->add_option("--jpeg", o->jpeg, "JPEG step: auto (libjpeg on CPU, emulation on CUDA), codec, emulated")->capture_default_str();
  sub->add_option("--device", o->device, "Torch device: cpu, cuda, cuda:N, auto")->capture_default_str();
  sub->add_option("--contact-sheet", o->contact_sheet, "Instead: draw a labelled contact sheet of every degradation type from one image");
  sub->add_option("--tile", o->tile, "Contact sheet tile size in pixels")->check(CLI::Range(64, 1024))->capture_default_str();
  sub->footer(
      std::string(kOutputNamesHelp) + "\n"
      "Examples:\n"
      "  face2scene degrade photo.png -o lq.png --preset severe --seed 7 --params lq.json\n"
      "  face2scene degrade hq_folder/ -o lq_folder/ --preset realesrgan --seed 1\n"
      "  face2scene degrade face.png -o face_lq.png --apply lq.json   # same degradation as before\n"
      "  face2scene degrade solvay1927.jpg --contact-sheet sheet.png");
  return {sub, [o]() { run_degrade(*o); }};
}
}  // namespace
F2S_REGISTER_COMMAND(degrade, setup_degrade);
}  // namespace face2scene::cli
