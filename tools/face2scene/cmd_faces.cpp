// `face2scene faces`: find every face of a photo, place 68/5 landmarks, write FFHQ-aligned crops,
// an annotated preview, a JSON report, and optionally name each face from reference folders.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "face2scene/faces.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/image.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/tensor.hpp"

namespace fs = std::filesystem;

namespace face2scene::cli {
namespace {

struct FacesArgs {
  std::vector<std::string> inputs;
  std::string json_out;
  std::string crops_dir;
  std::string preview;
  std::string refs_dir;
  std::string identity_weights;
  std::string device = "cpu";
  float threshold = 0.6f;
  int crop_size = 512;
  int preview_width = 0;
  bool keep_orientation = false;
  DetectOptions detect;
};

nlohmann::json point_json(const Point2f& p) { return {p.x, p.y}; }

nlohmann::json face_json(const DetectedFace& f, size_t index) {
  nlohmann::json j;
  j["index"] = index;
  j["box"] = {f.box.x0, f.box.y0, f.box.x1, f.box.y1};
  j["score"] = f.score;
  j["detector"] = f.detector;
  if (f.has_points5) {
    nlohmann::json p5 = nlohmann::json::array();
    for (const auto& p : f.points5) p5.push_back(point_json(p));
    j["points5"] = p5;
  }
  if (!f.landmarks68.empty()) {
    nlohmann::json l = nlohmann::json::array();
    for (const auto& p : f.landmarks68) l.push_back(point_json(p));
    j["landmarks68"] = l;
  }
  if (f.identity_distance >= 0.f) {
    j["identity"] = f.identity.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.identity);
    j["identity_distance"] = f.identity_distance;
  }
  return j;
}

void run_faces(const FacesArgs& a) {
  const auto files = collect_images(a.inputs);
  if (files.empty()) throw ArgumentError("faces: no input images");
  // Crops and previews are named after the input's stem: two inputs sharing one (a/x.png, b/x.jpg)
  // would overwrite each other's.
  if (files.size() > 1 && (!a.crops_dir.empty() || !a.preview.empty())) {
    output_paths_for(files, a.crops_dir.empty() ? a.preview : a.crops_dir, true, ".png");
  }
  const torch::Device device = parse_device(a.device);
  DetectOptions detect = a.detect;
  detect.device = device;
  FaceDetector detector(detect);

  std::vector<ReferencePerson> refs;
  DescriptorFn descriptor;
  if (!a.refs_dir.empty()) {
    const std::string w = a.identity_weights.empty() ? default_faceapi_weights_path() : a.identity_weights;
    auto net = std::make_shared<FaceDescriptor>(FaceDescriptor::load(w, device));
    descriptor = make_descriptor_fn(net);
    refs = load_references(a.refs_dir, detector, descriptor);
    size_t n = 0;
    for (const auto& r : refs) n += r.files.size();
    log_info("identity: " + std::to_string(refs.size()) + " reference people, " + std::to_string(n) +
             " photos from " + a.refs_dir);
  }
  if (!a.crops_dir.empty()) ensure_directory(a.crops_dir);

  nlohmann::json report = nlohmann::json::array();
  Progress progress("faces", static_cast<int64_t>(files.size()));
  for (const auto& file : files) {
    ImageReadOptions ro;
    ro.apply_orientation = !a.keep_orientation;
    const Image img = read_image(file, ro);
    const auto t0 = std::chrono::steady_clock::now();
    auto faces = detector.detect(img);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    torch::Tensor tensor;
    if (!refs.empty() || !a.crops_dir.empty())
      tensor = image_to_tensor(img, device, torch::kFloat32, /*rgb=*/img.channels == 3);
    if (!refs.empty() && !faces.empty()) match_faces(refs, tensor, faces, descriptor, a.threshold);

    const std::string stem = fs::path(file).stem().string();
    std::printf("%s: %zu face%s (%dx%d, %.2f s)\n", file.c_str(), faces.size(),
                faces.size() == 1 ? "" : "s", img.width, img.height, secs);
    if (faces.empty()) std::printf("  no face found\n");
    nlohmann::json jfaces = nlohmann::json::array();
    for (size_t i = 0; i < faces.size(); ++i) {
      const auto& f = faces[i];
      std::printf("  #%zu box [%.0f %.0f %.0f %.0f] score %.3f", i, f.box.x0, f.box.y0, f.box.x1,
                  f.box.y1, f.score);
      if (f.has_points5)
        std::printf(" eyes (%.1f,%.1f) (%.1f,%.1f) nose (%.1f,%.1f) mouth (%.1f,%.1f) (%.1f,%.1f)",
                    f.points5[0].x, f.points5[0].y, f.points5[1].x, f.points5[1].y, f.points5[2].x,
                    f.points5[2].y, f.points5[3].x, f.points5[3].y, f.points5[4].x, f.points5[4].y);
      if (f.identity_distance >= 0.f)
        std::printf(" identity %s (distance %.3f)", f.identity.empty() ? "unknown" : f.identity.c_str(),
                    f.identity_distance);
      std::printf("\n");
      auto jf = face_json(f, i);
      if (!a.crops_dir.empty() && f.has_points5) {
        auto aligned = align_face(tensor, f.points5, a.crop_size);
        const std::string crop = (fs::path(a.crops_dir) / (stem + "_face" + std::to_string(i) + ".png")).string();
        write_image(crop, tensor_to_image(aligned.image.cpu(), 8));
        jf["crop"] = crop;
        const auto& m = aligned.transform;
        jf["transform"] = {m.a, m.b, m.tx, m.ty};
      }
      jfaces.push_back(jf);
    }
    std::string preview = a.preview;
    if (!preview.empty() && files.size() > 1) preview = output_path_for(file, a.preview, true, ".png");
    if (preview.empty() && !a.crops_dir.empty())
      preview = (fs::path(a.crops_dir) / (stem + "_faces.png")).string();
    if (!preview.empty()) {
      if (files.size() > 1) ensure_directory(a.preview.empty() ? a.crops_dir : a.preview);
      if (a.preview_width > 0 && img.width > a.preview_width) {
        // Draw on a downscaled copy (lines stay visible), faces scaled to match.
        const double k = static_cast<double>(a.preview_width) / img.width;
        const int64_t ph = std::max<int64_t>(1, std::llround(img.height * k));
        auto small = torch::nn::functional::adaptive_avg_pool2d(
            image_to_tensor(img, torch::kCPU).unsqueeze(0),
            torch::nn::functional::AdaptiveAvgPool2dFuncOptions({ph, a.preview_width}));
        auto scaled = faces;
        auto sp = [k](Point2f& p) {
          p.x = static_cast<float>((p.x + 0.5) * k - 0.5);
          p.y = static_cast<float>((p.y + 0.5) * k - 0.5);
        };
        for (auto& f : scaled) {
          f.box = {static_cast<float>(f.box.x0 * k), static_cast<float>(f.box.y0 * k),
                   static_cast<float>(f.box.x1 * k), static_cast<float>(f.box.y1 * k)};
          for (auto& p : f.landmarks68) sp(p);
          for (auto& p : f.points5) sp(p);
        }
        write_image(preview, draw_faces(tensor_to_image(small[0], 8), scaled));
      } else {
        write_image(preview, draw_faces(img, faces));
      }
    }
    report.push_back({{"image", file},
                      {"width", img.width},
                      {"height", img.height},
                      {"detect_seconds", secs},
                      {"faces", jfaces}});
    progress.advance();
  }
  progress.finish();
  if (!a.json_out.empty()) {
    nlohmann::json doc = {{"images", report}};
    write_file_atomically(a.json_out, doc.dump(1) + "\n");
  }
}

Command setup_faces(CLI::App& app, GlobalOptions&) {
  auto args = std::make_shared<FacesArgs>();
  auto* sub = app.add_subcommand(
      "faces",
      "Find every face (box, score, 68 and 5 landmarks), write FFHQ-aligned crops, an annotated "
      "preview and a JSON report; optionally name each face from reference photos");
  sub->add_option("images", args->inputs, "Photos or folders of photos")->required();
  sub->add_flag("--keep-orientation", args->keep_orientation,
                "Do not turn photos by their EXIF orientation tag (read pixels as stored)");
  sub->add_option("--json", args->json_out,
                  "Write {\"images\":[{image,width,height,faces:[{box,score,points5,landmarks68,"
                  "identity,...}]}]} here");
  sub->add_option("--crops", args->crops_dir,
                  "Folder for the FFHQ-aligned crops <stem>_face<i>.png and the preview "
                  "<stem>_faces.png (two inputs with the same stem are refused, naming both)");
  sub->add_option("--preview", args->preview,
                  "Annotated preview PNG (boxes, landmarks, face numbers; a folder when several "
                  "images are given). Default with --crops: inside the crops folder");
  sub->add_option("--preview-width", args->preview_width,
                  "Downscale the preview to this width (0 = the photo's own size)")
      ->check(CLI::Range(0, 100000));
  sub->add_option("--size", args->crop_size, "Side of the aligned crops (512 = FFHQ; 256 ...)")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  sub->add_option("--refs-dir", args->refs_dir,
                  "Reference photos, one sub-folder per person (DIR/<person>/*.jpg): each face is "
                  "named after the nearest person within --threshold");
  sub->add_option("--threshold", args->threshold,
                  "Identity distance threshold (128-D descriptor, Euclidean; 0.6 = dlib's)")
      ->check(CLI::Range(0.0, 2.0))
      ->capture_default_str();
  sub->add_option("--identity-weights", args->identity_weights,
                  "Converted face-api recognition weights (default: " + default_faceapi_weights_path() + ")");
  sub->add_option("--min-face", args->detect.min_face,
                  "Smallest face side in pixels to look for (smaller = slower: the image is "
                  "upsampled for the detector)")
      ->check(CLI::Range(8, 100000))
      ->capture_default_str();
  sub->add_option("--min-score", args->detect.min_score,
                  "Detector score threshold (HOG SVM margin; lower finds more faces and more false "
                  "alarms)")
      ->capture_default_str();
  sub->add_option("--max-pixels", args->detect.max_detect_pixels,
                  "Work cap: pixels of the (rescaled) image the detector scans")
      ->check(CLI::Range(int64_t{10000}, int64_t{400000000}))
      ->capture_default_str();
  sub->add_option("--detector", args->detect.detector,
                  "hog = dlib's HOG on the CPU; hog-torch = the same detector as torch ops on --device (fast on\n"
                  "a GPU); auto = hog-torch on CUDA, else hog")
      ->check(CLI::IsMember({"auto", "hog", "hog-torch"}))
      ->capture_default_str();
  sub->add_option("--ssd", args->detect.ssd,
                  "Second detector beside HOG, face-api's SSD MobileNet v1 (finds turned faces and faces under caps\n"
                  "and sunglasses): auto = when its weights are installed (scripts/install_faceapi.sh), off, or a\n"
                  "weights file")
      ->capture_default_str();
  sub->add_option("--ssd-min-score", args->detect.ssd_min_score, "The SSD's face probability must reach this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--device", args->device, "Torch device for detection (hog-torch), alignment and identity: cpu, cuda, cuda:N, auto")
      ->capture_default_str();
  sub->footer(
      "Example:\n"
      "  face2scene faces group.jpg --crops out/ --json out/faces.json\n"
      "  face2scene faces party.jpg --refs-dir refs/ --preview party_faces.png\n"
      "A photo without faces prints 'no face found' and exits 0. Detection needs dlib "
      "(libdlib-dev, libdlib-data).");
  return {sub, [args]() { run_faces(*args); }};
}
}  // namespace
F2S_REGISTER_COMMAND(faces, setup_faces);
}  // namespace face2scene::cli
