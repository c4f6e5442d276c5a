// `face2scene restore`: the main job. Faces found and restored from references (Ref-FR), read as
// the oracle of the photo's degradation (FaDeX), the whole photo restored with that reading, the
// faces pasted back. `face2scene restore-face`: Ref-FR alone, on aligned crops or on every face of
// a photo. Both run through the library's Face2Scene API (face2scene/pipeline.hpp).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <ATen/ThreadLocalState.h>
#include <c10/core/DeviceGuard.h>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/profile.hpp"
#include "face2scene/shard.hpp"
#include "face2scene/tensor.hpp"

namespace face2scene::cli {
namespace {
namespace fs = std::filesystem;

struct RunArgs {
  std::vector<std::string> inputs;
  std::string out, refs, report, models, identity_weights, fadex, device = "auto", dtype = "auto";
  std::string shard = "0/1", manifest, devices;  // scale-out: docs/scale-out.md
  std::string profile_trace, detector = "auto", ssd = "auto";
  std::vector<std::string> face_refs;
  int scale = 4, tile = -1, max_faces = 64, min_face = 12, detect_threads = -1, workers = -1;
  // The consistency and fidelity defaults are the library's (Face2SceneOptions), so the two cannot drift apart.
  double realism = 0, blind_paste_min = 0, blind_face_consistency = Face2SceneOptions{}.blind_face_consistency,
         ref_face_consistency = Face2SceneOptions{}.ref_face_consistency,
         blind_face_fidelity = Face2SceneOptions{}.blind_face_fidelity, ref_face_fidelity = Face2SceneOptions{}.ref_face_fidelity;
  float match_threshold = Face2SceneOptions{}.match_threshold;
  bool blind = false, largest_face = false, skip_existing = false, side_by_side = false, aligned = false,
       no_detail_transfer = false, no_paste = false, no_second_look = false;
};

bool any_cuda(const std::vector<torch::Device>& devices) {
  return std::any_of(devices.begin(), devices.end(), [](const torch::Device& d) { return d.is_cuda(); });
}

struct Failure {
  std::string file, why;
};

// Inputs → image files, with each file's path relative to its input root (a folder given, or the
// file's own folder: its name), which --shard hashes and the manifest records. A missing input or
// an empty folder is a failure of that input, reported at the end; the others still run.
std::vector<std::string> gather(const std::vector<std::string>& inputs, std::vector<Failure>& failures, bool& any_dir,
                                std::vector<std::string>* keys = nullptr) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      any_dir = true;
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(in, ec))
        if (e.is_regular_file() && is_image_path(e.path().string())) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) failures.push_back({in, "folder holds no .png/.jpg images"});
      out.insert(out.end(), files.begin(), files.end());
      if (keys)
        for (const auto& f : files) keys->push_back(relative_to_root(f, in));
    } else if (fs::exists(in, ec)) {
      out.push_back(in);
      if (keys) keys->push_back(relative_to_root(in, ""));
    } else {
      failures.push_back({in, "no such file or folder"});
    }
  }
  return out;
}

std::string side_by_side_path(const std::string& dst) {
  fs::path p(dst);
  return (p.parent_path() / (p.stem().string() + "_side_by_side" + p.extension().string())).string();
}

// before | after: the input bicubic-upscaled to the output size beside the result.
Image side_by_side(const Image& input, const Image& result) {
  namespace F = torch::nn::functional;
  auto a = image_to_tensor(input, torch::kCPU, torch::kFloat32, /*rgb=*/result.channels == 3).unsqueeze(0);
  a = F::interpolate(a, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{result.height, result.width})
                            .mode(torch::kBicubic)
                            .align_corners(false))
          .clamp(0, 1);
  auto b = image_to_tensor(result, torch::kCPU, torch::kFloat32, /*rgb=*/result.channels == 3).unsqueeze(0);
  const int64_t gap = std::max<int64_t>(4, result.width / 200);
  auto sep = torch::ones({1, b.size(1), b.size(2), gap});
  return tensor_to_image(torch::cat({a, sep, b}, 3), result.bit_depth);
}

// --devices "0,1" (CUDA indices), "cuda:0,cuda:1", "cpu,cpu" (two CPU workers), …; empty: --device.
std::vector<torch::Device> parse_devices(const RunArgs& a) {
  if (a.devices.empty()) return {parse_device(a.device)};
  std::vector<torch::Device> out;
  std::string rest = a.devices;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string d = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    if (d.empty()) continue;
    const bool index = d.find_first_not_of("0123456789") == std::string::npos;
    out.push_back(parse_device(index ? "cuda:" + d : d));
  }
  if (out.empty()) throw ArgumentError("--devices '" + a.devices + "': expected e.g. 0,1 or cpu,cpu");
  return out;
}

// --workers N: N workers (model copies) on each device. One worker feeds its GPU from one thread,
// and its CPU work between kernels (alignment, launches, syncs) leaves the GPU idle: on the H100,
// 100 photos 512² → 2048² ran (session 15, after the GPU's own time a photo fell from 139 to 53 ms)
// at 5.16 photos/s with 1, 9.3–12.8 with 2, 10.4–10.5 with 3 and 7.2 with 4: past 2 the workers
// only contend (docs/pipeline.md, "GPU speed"). Auto: 2 on a CUDA device, 1 on the CPU (its cores
// are the restorer's already).
std::vector<torch::Device> with_workers(const RunArgs& a, const std::vector<torch::Device>& devices) {
  // Files named one by one (no folder): no more workers than files, each copy costs ~0.5 s to load.
  size_t files = 0;
  for (const auto& in : a.inputs) files += fs::is_directory(in) ? 1000 : 1;
  std::vector<torch::Device> out;
  for (const auto& d : devices) {
    int n = a.workers > 0 ? a.workers : (d.is_cuda() ? 2 : 1);
    if (a.workers <= 0) n = static_cast<int>(std::min<size_t>(n, std::max<size_t>(files, 1)));
    // --devices 0,0 names its workers itself.
    if (a.workers <= 0 && std::count(devices.begin(), devices.end(), d) > 1) n = 1;
    if (n > 1) log_info(std::to_string(n) + " workers on " + d.str() + " (--workers)");
    for (int i = 0; i < n; ++i) out.push_back(d);
  }
  return out;
}

Face2SceneConfig make_config(const RunArgs& a, bool scene, const torch::Device& device) {
  Face2SceneConfig c;
  c.device = device;
  c.dtype = parse_dtype(a.dtype, c.device, torch::kBFloat16);
  c.models_dir = a.models;
  c.identity_weights = a.identity_weights;
  c.fadex = a.fadex;
  c.tiles.tile = a.tile < 0 ? (c.device.is_cuda() ? 512 : 256) : a.tile;
  c.realism = a.realism;
  c.tiles.overlap = 32;
  c.tiles.margin = 12;
  c.load_scene_restorer = scene;
  c.detect.min_face = a.min_face;
  c.detect.detector = a.detector;  // on the worker's device (Face2Scene's)
  c.detect.ssd = a.ssd;
  return c;
}

// --refs and --face-refs N=DIR → one reference set; face_refs maps face N to its person.
ReferenceSet load_refs(const RunArgs& a, const Face2Scene& f2s, std::map<int, std::string>& face_refs) {
  ReferenceSet set;
  if (a.refs.empty() && a.face_refs.empty()) return set;
  if (a.blind) {
    log_warn("--blind: references are not used");
    return set;
  }
  if (!f2s.descriptor())
    throw ArgumentError("--refs needs the identity descriptor (run scripts/install_faceapi.sh, or --identity-weights F)");
  const int64_t s = f2s.geometry().face_size;
  if (!a.refs.empty()) set = load_reference_set(a.refs, f2s.detector(), *f2s.descriptor(), s);
  for (const auto& spec : a.face_refs) {
    const auto eq = spec.find('=');
    int n = -1;
    try {
      n = eq == std::string::npos ? -1 : std::stoi(spec.substr(0, eq));
    } catch (const std::exception&) {
    }
    if (n < 0) throw ArgumentError("--face-refs " + spec + ": expected N=DIR (N = face number, as `faces` prints it)");
    ReferenceSet one = load_reference_set(spec.substr(eq + 1), f2s.detector(), *f2s.descriptor(), s);
    // The folder is one person, whatever its layout.
    ReferencePersonSet person;
    person.name = "face" + std::to_string(n);
    for (auto& p : one.people)
      for (auto& ph : p.photos) person.photos.push_back(std::move(ph));
    one.people = {std::move(person)};
    const size_t before = set.people.size();
    merge_reference_sets(set, std::move(one));
    face_refs[n] = set.people[before].name;
  }
  log_info("references: " + std::to_string(set.people.size()) + " person(s), " + std::to_string(set.photo_count()) +
           " photo(s)" + (set.warnings.empty() ? "" : ", " + std::to_string(set.warnings.size()) + " skipped"));
  return set;
}

// An input made ready on a background thread: decoded and, with --detect-threads, its faces found
// (restore()'s own detection stage, run ahead so that the device never waits for dlib's HOG).
struct Prepared {
  Image image;
  std::optional<std::vector<DetectedFace>> faces;
  double detect_seconds = 0;
};
using Preparer = std::function<Prepared(const std::string& path)>;
using Processor = std::function<Face2SceneResult(const Prepared&)>;

Prepared decode_only(const std::string& path) {
  Prepared p;
  p.image = read_image(path);
  return p;
}

// The folder/file loop shared by both commands. One worker per processor (one per --devices entry,
// each with its own Face2Scene): workers take the next input from a shared cursor, so inputs
// stream to whichever device is free. Within a worker, the next input is decoded while the current
// one is restored and outputs are written on a background thread (write_image writes to a
// temporary name and renames); an input that fails is reported by name and the run goes on; a
// failure makes the exit code non-zero at the end, with a summary. --shard keeps this job's share
// of the inputs; --manifest skips finished inputs and records each one once its outputs exist.
// `prepare` runs on background threads, up to `lookahead` inputs ahead of each worker.
void run_batch(const RunArgs& a, const std::string& label, const std::vector<Processor>& workers,
               const std::vector<torch::Device>& devices, const std::vector<std::string>& ref_warnings,
               const Preparer& prepare = decode_only, size_t lookahead = 1) {
  std::vector<Failure> failures;
  bool any_dir = false;
  std::vector<std::string> keys;
  const auto files = gather(a.inputs, failures, any_dir, &keys);
  const size_t unreadable_inputs = failures.size();
  const bool out_is_dir = files.size() > 1 || any_dir || fs::is_directory(a.out) || !is_image_path(a.out);
  if (out_is_dir) ensure_directory(a.out);
  const ShardSpec shard = ShardSpec::parse(a.shard);
  Manifest manifest(a.manifest);
  struct Todo {
    std::string src, dst, key;
  };
  std::vector<Todo> todo;
  size_t other_shards = 0, in_manifest = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!in_shard(keys[i], shard)) {
      ++other_shards;
      continue;
    }
    const std::string dst = output_path_for(files[i], a.out, out_is_dir);
    if (manifest.enabled() && manifest.done(keys[i])) {
      ++in_manifest;
      continue;
    }
    if (a.skip_existing && file_exists(dst)) {
      log_info("skip (exists): " + dst);
      manifest.add(keys[i]);  // the output exists: finished
      continue;
    }
    todo.push_back({files[i], dst, keys[i]});
  }
  if (!shard.whole())
    log_info("shard " + shard.str() + ": " + std::to_string(files.size() - other_shards) + " of " +
             std::to_string(files.size()) + " input(s)");
  if (in_manifest) log_info(std::to_string(in_manifest) + " input(s) already finished (" + manifest.path() + ")");
  std::mutex mu;  // reports, failures, progress, the report file and stdout
  nlohmann::json reports = nlohmann::json::array();
  auto write_report = [&]() {
    if (a.report.empty()) return;
    nlohmann::json doc = {{"command", label}, {"reference_warnings", ref_warnings}, {"images", reports}};
    nlohmann::json fails = nlohmann::json::array();
    for (const auto& f : failures) fails.push_back({{"input", f.file}, {"error", f.why}});
    doc["failures"] = fails;
    if (!shard.whole()) doc["shard"] = shard.str();
    write_file_atomically(a.report, doc.dump(1) + "\n");
  };
  auto fail = [&](const std::string& src, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    failures.push_back({src, why});
  };
  lookahead = std::max<size_t>(1, lookahead);
  std::optional<TraceProfile> profile;
  if (!a.profile_trace.empty())
    profile.emplace(a.profile_trace, any_cuda(devices));
  // LibTorch's thread-local state (the profiler's callbacks among it) does not follow std::thread:
  // without this, a --profile-trace of several workers or detection threads recorded their kernels
  // but not the f2s:: stage scopes around them.
  const at::ThreadLocalState tls;
  auto prepare_async = [&prepare, &tls](const std::string& path) {
    return std::async(std::launch::async, [&prepare, &tls, path]() {
      at::ThreadLocalStateGuard g(tls);
      return prepare(path);
    });
  };
  Progress progress(label, static_cast<int64_t>(todo.size()));
  std::atomic<size_t> cursor{0};
  auto worker = [&](const Processor& process, const torch::Device& device) {
    at::ThreadLocalStateGuard tls_guard(tls);
    // Tensors made without a device index land on this worker's GPU.
    c10::DeviceGuard guard(device);
    std::deque<std::pair<std::string, std::future<void>>> pending;  // (input, write)
    auto drain = [&](size_t keep) {
      while (pending.size() > keep) {
        try {
          pending.front().second.get();
        } catch (const std::exception& e) {
          fail(pending.front().first, std::string("write failed: ") + e.what());
        }
        pending.pop_front();
      }
    };
    // Inputs claimed by this worker, oldest first, each being prepared in the background.
    std::deque<std::pair<size_t, std::future<Prepared>>> ahead;
    auto claim = [&]() {
      while (ahead.size() < lookahead) {
        const size_t k = cursor++;
        if (k >= todo.size()) break;
        ahead.emplace_back(k, prepare_async(todo[k].src));
      }
    };
    claim();
    while (!ahead.empty()) {
      const size_t i = ahead.front().first;
      std::future<Prepared> mine = std::move(ahead.front().second);
      ahead.pop_front();
      const Todo& t = todo[i];
      try {
        Prepared in;
        try {
          in = mine.get();
        } catch (...) {
          claim();
          throw;
        }
        claim();
        const Image& img = in.image;
        auto r = process(in);
        if (in.faces) r.timings.detect += in.detect_seconds;  // found ahead, on another thread
        {
          std::lock_guard<std::mutex> lock(mu);
          const std::string again =
              r.faces_found_again ? " (" + std::to_string(r.faces_found_again) + " in the restored photo)" : "";
          std::printf("%s: %d face%s detected%s, %d restored; %s; %.1f s\n", t.src.c_str(), r.faces_detected,
                      r.faces_detected == 1 ? "" : "s", again.c_str(), r.faces_restored, r.degradation_words.c_str(),
                      r.timings.total);
          std::fflush(stdout);
          reports.push_back(nlohmann::json::parse(result_to_json(r, t.src, t.dst, -1)));
        }
        drain(1);  // at most one write in flight besides this one: outputs are large
        Image sbs;
        if (a.side_by_side) sbs = side_by_side(img, r.image);
        pending.emplace_back(t.src, std::async(std::launch::async, [&manifest, t, out = r.image, sbs = std::move(sbs),
                                                                    sbs_on = a.side_by_side]() {
                               lower_thread_priority();
                               WriteOptions wo;
                               wo.png_level = 2;
                               write_image(t.dst, out, wo);
                               if (sbs_on) write_image(side_by_side_path(t.dst), sbs, wo);
                               manifest.add(t.key);  // every output of this input is in place
                             }));
      } catch (const Error& e) {
        // Library errors usually name the file already.
        const std::string why = e.what();
        log_warn(why.find(t.src) == std::string::npos ? t.src + ": " + why : why);
        fail(t.src, why.find(t.src + ": ") == 0 ? why.substr(t.src.size() + 2) : why);
      } catch (const c10::Error& e) {
        log_warn(t.src + ": " + e.what_without_backtrace());
        fail(t.src, e.what_without_backtrace());
      } catch (const std::exception& e) {
        log_warn(t.src + ": " + e.what());
        fail(t.src, e.what());
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        progress.advance();
        write_report();
      }
    }
    drain(0);
  };
  if (workers.size() == 1) {
    worker(workers[0], devices[0]);
  } else {
    std::vector<std::thread> threads;
    for (size_t w = 0; w < workers.size(); ++w) threads.emplace_back(worker, std::cref(workers[w]), devices[w]);
    for (auto& th : threads) th.join();
  }
  progress.finish();
  if (profile) profile->finish();
  write_report();
  if (todo.empty() && failures.empty()) log_info("all outputs exist; nothing to do");
  if (!failures.empty()) {
    std::string msg = std::to_string(failures.size()) + " of " + std::to_string(todo.size() + unreadable_inputs) +
                      " input(s) failed (the others were written):";
    for (const auto& f : failures) msg += "\n  " + f.file + ": " + f.why;
    throw Error(msg);
  }
}

void add_common(CLI::App* sub, RunArgs& a) {
  sub->add_option("inputs", a.inputs, "Photos (PNG/JPEG, 8/16-bit, grey/RGB, alpha kept) or folders of them")->required();
  sub->add_option("-o,--out", a.out, "Output file, or folder (created; names kept) for several inputs or a folder")
      ->required();
  sub->add_option("--refs", a.refs,
                  "Reference photos: DIR/*.jpg of one person, or DIR/<person>/*.jpg; each face is matched to a person\n"
                  "by the identity descriptor (unmatched faces are restored blind and listed in the report)");
  sub->add_flag("--blind", a.blind, "No references (Ref-FR's blind twin)");
  sub->add_option("--match-threshold", a.match_threshold,
                  "Identity distance under which a face takes a reference person's photos (0.6 = dlib's). Degraded\n"
                  "faces sit farther from their person: on 66 LFW validation faces (moderate x4) 0.6 matched 41 and no\n"
                  "stranger, 0.65 matched 51 and 5 of 66 strangers, 0.7 matched 61 and 15 strangers (docs/pipeline.md)")
      ->check(CLI::Range(0.0, 2.0))
      ->capture_default_str();
  sub->add_option("--report", a.report, "JSON report of every image and face (written as the run goes)");
  sub->add_flag("--skip-existing", a.skip_existing, "Skip inputs whose output exists (resume an interrupted folder)");
  sub->add_option("--models", a.models, "Folder with our weights (default ./weights, $F2S_MODELS)");
  sub->add_option("--identity-weights", a.identity_weights, "face-api recognition weights (default: the cache)");
  sub->add_option("--min-face", a.min_face,
                  "Smallest face side (photo pixels) the detector looks for; smaller is slower (the photo is\n"
                  "upsampled for it). Faces of 8 px or more are restored")
      ->check(CLI::Range(8, 100000))
      ->capture_default_str();
  sub->add_option("--detector", a.detector,
                  "Face detector: hog = dlib's HOG run by dlib on the CPU; hog-torch = the same detector (dlib's\n"
                  "filters, features and pyramid) as torch ops on the --device, seconds of CPU a photo become\n"
                  "milliseconds of GPU; auto = hog-torch on CUDA, hog on the CPU")
      ->check(CLI::IsMember({"auto", "hog", "hog-torch"}))
      ->capture_default_str();
  sub->add_option("--ssd", a.ssd,
                  "Second face detector beside HOG, face-api's SSD MobileNet v1 (finds turned faces and faces\n"
                  "under caps and sunglasses): auto = when its weights are installed (scripts/install_faceapi.sh),\n"
                  "off, or a weights file")
      ->capture_default_str();
  sub->add_option("--device", a.device, "auto, cpu, cuda or cuda:N");
  sub->add_option("--devices", a.devices,
                  "Several workers in this process, one model copy each, inputs streamed to whichever is free:\n"
                  "GPU indices (0,1,2,3) or devices (cuda:0,cpu,…); overrides --device");
  sub->add_option("--workers", a.workers,
                  "Workers (model copies, each on its own thread) per device: on a GPU one thread cannot keep it busy\n"
                  "(-1 or 0 = auto: 2 on CUDA, 1 on the CPU; use 1 on a GPU with little memory)")
      ->check(CLI::Range(-1, 16))
      ->capture_default_str();
  sub->add_option("--shard", a.shard,
                  "I/N: this job restores shard I of N (by a hash of each input's path relative to its folder;\n"
                  "N jobs cover the inputs exactly once; adding files moves no other). docs/scale-out.md");
  sub->add_option("--manifest", a.manifest,
                  "File listing finished inputs (appended as each one's outputs are written): a rerun skips them");
  sub->add_option("--dtype", a.dtype, "auto (bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16"}));
  sub->add_option("--profile-trace", a.profile_trace,
                  "For developers: record the run's operators and CUDA kernels (LibTorch's Kineto profiler) and\n"
                  "write them as a Chrome trace to this JSON file (open in ui.perfetto.dev). Slows the run");
}

// --detect-threads: -1 = auto (on a GPU the scene restorer is fast, so the faces of the next photos
// are found on background threads while it runs; on the CPU the cores are the restorer's, so
// detection stays in line).
size_t detect_threads(const RunArgs& a, const std::vector<torch::Device>& devices) {
  int n = a.detect_threads;
  if (n < 0) {
    // All cores but two (the thread that feeds the GPU, the writer), at most 16: on the H100 machine
    // (16 cores) dlib's HOG at the default --min-face took 1.6 s a 512² photo, so 8 threads capped
    // the run at 4.8 photos/s; 15 threads did not slow the GPU worker (docs/pipeline.md, "GPU speed").
    // With hog-torch (auto on CUDA) the scan itself runs on the GPU and a thread spends ~10 ms of
    // CPU a photo (kernel launches, landmarks), so 4 threads keep ahead of the worker.
    const unsigned cores = std::max(3u, std::thread::hardware_concurrency());
    const bool on_gpu = a.detector == "hog-torch" || a.detector == "auto";
    n = any_cuda(devices) && face_detection_available() ? static_cast<int>(std::min(cores - 2, on_gpu ? 4u : 16u)) : 0;
  }
  if (n > 0 && !face_detection_available())
    throw ArgumentError("--detect-threads " + std::to_string(n) + ": this build has no face detector (dlib)");
  return static_cast<size_t>(n);
}

Command setup_restore(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("restore", "Restore whole photos of people the Face2Scene way (the main job)");
  auto a = std::make_shared<RunArgs>();
  add_common(sub, *a);
  sub->add_option("--face-refs", a->face_refs,
                  "N=DIR: face N (largest first, as `face2scene faces` numbers them) uses the photos in DIR")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--scale", a->scale, "4, 2 (×4 then area-downscaled) or 1 (same size)")->check(CLI::IsMember({1, 2, 4}));
  sub->add_flag("--largest-face", a->largest_face, "Read the degradation from the largest face only");
  sub->add_option("--max-faces", a->max_faces, "Restore at most this many faces (the largest); the rest are listed")
      ->check(CLI::Range(0, 100000));
  sub->add_option("--realism", a->realism,
                  "Scene restorer: 0 = fidelity (L1-trained, default), 1 = GAN-trained (more invented detail),\n"
                  "between = interpolated weights; > 0 needs scene_restorer*_gan.safetensors in --models")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--tile", a->tile, "Scene restorer tile side in input pixels (0 = whole image; -1 = auto: 256 CPU, 512 CUDA)");
  sub->add_option("--fadex", a->fadex,
                  "FaDeX weights that read the degradation from the faces (default: <models>/fadex_sizes.safetensors,\n"
                  "which reads a face at its own size in the photo; fadex.safetensors is v1, which cuts every face at 32 px)");
  sub->add_flag("--side-by-side", a->side_by_side,
                "Also write <name>_side_by_side: the input bicubic-upscaled | the result");
  sub->add_flag("--no-detail-transfer", a->no_detail_transfer,
                "Paste Ref-FR's faces as they are, even where they are larger than its 128² output");
  sub->add_option("--blind-paste-min", a->blind_paste_min,
                  "Do not paste faces restored without references whose box is under PX pixels in the input\n"
                  "(their degradation is still read). Ref-FR invents a plausible stranger from a 14 px face;\n"
                  "on Solvay 1927, 20 keeps the scene restorer's faces, closer to who they were (docs/pipeline.md)")
      ->check(CLI::Range(0.0, 1e6));
  sub->add_option("--blind-face-consistency", a->blind_face_consistency,
                  "Faces restored without references keep the scene restorer's structure up to K x the detail\n"
                  "the input face holds (1 = its own resolution; 0 = off): Ref-FR's invented features are\n"
                  "moved back to where the pixels put them; 2 suits group photos of tiny faces\n(docs/pipeline.md, \"Faces kept consistent with the input\")")
      ->check(CLI::Range(0.0, 8.0))
      ->capture_default_str();
  sub->add_option("--ref-face-consistency", a->ref_face_consistency,
                  "The same for faces restored from a person's reference photos (0 = Ref-FR's face as it is)")
      ->check(CLI::Range(0.0, 8.0))
      ->capture_default_str();
  sub->add_option("--blind-face-fidelity", a->blind_face_fidelity,
                  "Faces restored without references become (1 - W) x the restored face + W x the input face\n"
                  "(the degraded photo's face, upscaled): 0 = the restored face as it is, 1 = the input face.\n"
                  "Higher keeps more of who the person is and less of the restorer's invented detail\n"
                  "(docs/pipeline.md, \"Fidelity to the input\")")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--ref-face-fidelity", a->ref_face_fidelity,
                  "The same for faces restored from a person's reference photos")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--detect-threads", a->detect_threads,
                  "Find the faces of the next N photos of a folder on N background threads while one is restored\n"
                  "(-1 = auto with a GPU: 4 for hog-torch, all cores but two (at most 16) for dlib's hog; 0 on the\n"
                  "CPU; 0 = in line)")
      ->check(CLI::Range(-1, 64))
      ->capture_default_str();
  sub->add_flag("--no-second-look", a->no_second_look,
                "Do not look for faces again in the restored photo (by default faces that only the restored\n"
                "photo shows, as small faces of a blurred photo often are, are restored and pasted too)");
  sub->add_flag("--no-face-paste", a->no_paste,
                "Leave the restored faces out of the output (the scene restorer alone, still conditioned on\n"
                "their code): for comparisons");
  sub->footer(
      "What happens: every face is found, aligned and restored by Ref-FR (from the person's reference photos\n"
      "when --refs has them, blind otherwise); FaDeX reads the photo's degradation from each (degraded,\n"
      "restored) face pair; one code for the photo (faces weighted by area x detector confidence) conditions\n"
      "the scene restorer; the restored faces are pasted back. A photo without a usable face is restored\n"
      "blind (a warning says so). --blind is the control: no references, no code. docs/pipeline.md.\n"
      "Examples:\n"
      "  face2scene restore old_photo.jpg -o restored.png\n"
      "  face2scene restore examples/solvay_group.jpg -o out/ --side-by-side\n"
      "  face2scene restore album/ -o restored/ --refs people/ --report restored/report.json --skip-existing\n"
      "  face2scene restore album/ -o restored/ --shard 3/16 --manifest restored/done-3.txt --devices 0,1\n"
      "  face2scene restore party.jpg -o party_x2.png --scale 2 --refs people/ --face-refs 3=people/Bob\n"
      "  face2scene restore scan.png -o scan_clean.png --scale 1 --device cuda");
  return {sub, [a]() {
            ShardSpec::parse(a->shard);  // a bad --shard fails before any model loads
            const auto devices = with_workers(*a, parse_devices(*a));
            std::vector<std::unique_ptr<Face2Scene>> f2s;
            for (const auto& d : devices) f2s.push_back(std::make_unique<Face2Scene>(make_config(*a, /*scene=*/true, d)));
            Face2SceneOptions o;
            o.scale = a->scale;
            o.blind = a->blind;
            o.largest_face = a->largest_face;
            o.max_faces = a->max_faces;
            o.detail_transfer = !a->no_detail_transfer;
            o.paste_faces = !a->no_paste;
            o.second_look = !a->no_second_look;
            o.blind_paste_min = a->blind_paste_min;
            o.blind_face_consistency = a->blind_face_consistency;
            o.ref_face_consistency = a->ref_face_consistency;
            o.blind_face_fidelity = a->blind_face_fidelity;
            o.ref_face_fidelity = a->ref_face_fidelity;
            o.match_threshold = a->match_threshold;
            // References are decoded once and shared, read-only, by every worker.
            const ReferenceSet refs = load_refs(*a, *f2s[0], o.face_refs);
            std::vector<Processor> workers;
            for (auto& f : f2s)
              workers.push_back([&f, &refs, &o](const Prepared& in) {
                if (!in.faces) return f->restore(in.image, refs, o);
                Face2SceneOptions with = o;
                with.faces = in.faces;
                return f->restore(in.image, refs, with);
              });
            const size_t n = detect_threads(*a, devices);
            if (n == 0) {
              run_batch(*a, "restore", workers, devices, refs.warnings);
              return;
            }
            const Face2Scene* finder = f2s[0].get();  // find_faces is thread-safe
            const Preparer prepare = [finder](const std::string& path) {
              Prepared p = decode_only(path);
              const auto t0 = std::chrono::steady_clock::now();
              p.faces = finder->find_faces(p.image);
              p.detect_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              return p;
            };
            run_batch(*a, "restore", workers, devices, refs.warnings, prepare, (n + workers.size() - 1) / workers.size());
          }};
}

Command setup_restore_face(CLI::App& app, GlobalOptions&) {
  auto* sub = app.add_subcommand("restore-face", "Restore faces with Ref-FR alone (aligned crops, or every face of a photo)");
  auto a = std::make_shared<RunArgs>();
  add_common(sub, *a);
  sub->add_flag("--aligned", a->aligned,
                "Inputs are FFHQ-aligned square face crops (as `face2scene faces --crops` writes); output side\n"
                "max(input, 128). Without it every face of each photo is found, restored and pasted back");
  sub->footer(
      "References are ordinary photos of the person (DIR/*.jpg, or DIR/<person>/*.jpg): the face in each is\n"
      "found and aligned; a photo without a face, or whose face does not match the person's other photos, is\n"
      "reported and skipped. The report gives, per face: box, references used, identity distance to them.\n"
      "Examples:\n"
      "  face2scene restore-face group.jpg -o group_faces.png --refs people/ --report faces.json\n"
      "  face2scene restore-face crops/ -o restored_crops/ --aligned --refs alice/");
  return {sub, [a]() {
            ShardSpec::parse(a->shard);
            const auto devices = with_workers(*a, parse_devices(*a));
            std::vector<std::unique_ptr<Face2Scene>> f2s;
            for (const auto& d : devices) f2s.push_back(std::make_unique<Face2Scene>(make_config(*a, /*scene=*/false, d)));
            Face2SceneOptions o;
            o.scene = false;
            o.blind = a->blind;
            o.match_threshold = a->match_threshold;
            const ReferenceSet refs = load_refs(*a, *f2s[0], o.face_refs);
            std::vector<Processor> workers;
            for (auto& f : f2s)
              workers.push_back([&f, &refs, &o, aligned = a->aligned](const Prepared& in) {
                return aligned ? f->restore_aligned(in.image, refs, o) : f->restore(in.image, refs, o);
              });
            run_batch(*a, "restore-face", workers, devices, refs.warnings);
          }};
}

}  // namespace
F2S_REGISTER_COMMAND(restore, setup_restore);
F2S_REGISTER_COMMAND(restore_face, setup_restore_face);
}  // namespace face2scene::cli
