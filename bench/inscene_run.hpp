// bench_inscene's measuring loop (included once by bench_inscene.cpp, after its helpers): every
// case × condition × method, resumable from <out>/per_image.csv.
#pragma once

struct RunConfig {
  std::string out, data, models, upscayl_bin, upscayl_models, md, docs_images, note, command;
  torch::Device device = torch::kCPU;
  int resamples = 2000;
  std::vector<std::string> conds, methods;
};

namespace {

std::string machine_text(const torch::Device& device) {
  const std::string cpu = cpu_model_text();
  return (device.is_cuda() ? "CUDA (" + device.str() + "), host " : std::string()) + cpu + ", " +
         std::to_string(torch::get_num_threads()) + " torch threads, LibTorch " + torch_version_string();
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return b;
}

std::string out_path(const RunConfig& rc, const std::string& set, const std::string& cond, const std::string& method,
                     const std::string& name, const std::string& ext) {
  return rc.out + "/outputs/" + set + "/" + cond + "/" + method + "/" + name + ext;
}

// Face / person / background masks [3,1,H,W] from face boxes: the person is the box widened to 3
// face widths and extended from half a face above it to 7 face heights below it (a body region),
// union over faces; the background is the rest. No face: all zero (region LPIPS = NaN).
torch::Tensor region_masks(const std::vector<FaceBox>& boxes, int64_t h, int64_t w) {
  auto m = torch::zeros({3, 1, h, w});
  if (boxes.empty()) return m;
  auto fill = [&](int k, double x0, double y0, double x1, double y1) {
    const int64_t a = std::clamp<int64_t>(std::llround(x0), 0, w), b = std::clamp<int64_t>(std::llround(x1), 0, w);
    const int64_t c = std::clamp<int64_t>(std::llround(y0), 0, h), d = std::clamp<int64_t>(std::llround(y1), 0, h);
    if (b > a && d > c) m[k][0].slice(0, c, d).slice(1, a, b).fill_(1);
  };
  for (const auto& f : boxes) {
    const double fw = f.width(), fh = f.height(), cx = (f.x0 + f.x1) / 2;
    fill(0, f.x0, f.y0, f.x1, f.y1);
    fill(1, cx - 1.5 * fw, f.y0 - 0.5 * fh, cx + 1.5 * fw, f.y0 + 7 * fh);
  }
  m[1] = torch::max(m[1], m[0]);
  m[2] = 1 - m[1];
  return m;
}

struct FaceInfo {
  std::vector<FaceBox> boxes;
  bool has = false;
  DetectedFace largest;
  torch::Tensor desc;  // [128] of the largest face
};

struct Ctx {
  RunConfig rc;
  std::unique_ptr<metrics::Lpips> lpips;
  std::unique_ptr<metrics::Niqe> niqe;
  std::unique_ptr<metrics::Brisque> brisque;
  std::unique_ptr<FaceDetector> det;
  std::unique_ptr<FaceDescriptor> desc;
  std::map<int, std::unique_ptr<Upscaler>> esr;
  std::unique_ptr<Face2Scene> f2s;
  std::string desc_path;
};

torch::Tensor describe_at(const Ctx& c, const torch::Tensor& img, const DetectedFace& f) {
  const auto a = align_face(img.to(c.desc->device()), f.points5, 512).image;
  return c.desc->embed(crop_for_descriptor(a.unsqueeze(0))).to(torch::kCPU, torch::kFloat32)[0];
}

int64_t& packed_mismatches() {
  static int64_t n = 0;
  return n;
}

// The detector's answer for these pixels: from the pack's faces.tsv (checked against the pixels'
// checksum), else detected here (needs dlib).
std::vector<DetectedFace> detections(const Ctx& c, const FaceMap& fm, const std::string& key, const torch::Tensor& img) {
  auto it = fm.find(key);
  if (it != fm.end()) {
    if (it->second.first != pixels_sha(img)) {
      // LibTorch versions may round a few degraded samples differently (1.13 here, 2.x on the GPU
      // machine); the detector would find the same faces within a pixel. Re-detect where dlib is
      // present, else use the packed answer and count it (the run prints the count).
      if (c.det) return c.det->detect(tensor_to_image(img));
      if (++packed_mismatches() <= 3) log_warn("faces.tsv '" + key + "': packed detections used on pixels that differ from the packed ones (rounding)");
    }
    return it->second.second;
  }
  if (!c.det) throw Error("no detections for '" + key + "' in the pack and no face detector in this build (dlib): pack with these conditions");
  return c.det->detect(tensor_to_image(img));
}

FaceInfo faces_of(const Ctx& c, const std::vector<DetectedFace>& faces, const torch::Tensor& img) {
  FaceInfo fi;
  for (const auto& f : faces) fi.boxes.push_back(f.box);
  for (const auto& f : faces)
    if (f.has_points5) {
      fi.largest = f, fi.has = true;
      break;
    }
  if (fi.has && c.desc) fi.desc = describe_at(c, img, fi.largest);
  return fi;
}

Upscaler& esrgan(Ctx& c, RealEsrganModel m) {
  auto& u = c.esr[int(m)];
  if (!u) {
    UpscaleOptions o;
    o.model = m;
    o.device = c.rc.device;
    o.dtype = torch::kFloat32;
    o.tiles.tile = c.rc.device.is_cuda() ? 0 : 200;
    const std::string packed = c.rc.data + "/weights/" + weights_filename(m);
    u = std::make_unique<Upscaler>(o, fs::exists(packed) ? packed : realesrgan_weights_path(m));
  }
  return *u;
}

// ×4: the network on the degraded photo. ×1: the photo area-downscaled ×4 first (the degradation
// was made at ¼ size and resized back), then ×4: what our ×1 stem does inside.
torch::Tensor down4(const torch::Tensor& x) { return resize_images(x.unsqueeze(0), x.size(1) / 4, x.size(2) / 4, ResizeMode::kArea)[0].clamp(0, 1); }

torch::Tensor run_upscayl(Ctx& c, const std::string& model, const torch::Tensor& in) {
  if (c.rc.upscayl_bin.empty() || !fs::exists(c.rc.upscayl_bin))
    throw IoError("upscayl-bin not found: pass --upscayl-bin PATH --upscayl-models DIR (scripts/install_models.sh prints them)");
  const std::string dir = c.rc.out + "/tmp";
  fs::create_directories(dir);
  const std::string a = dir + "/upscayl_in.png", b = dir + "/upscayl_out.png";
  write_image(a, tensor_to_image(in));
  fs::remove(b);
  const std::string cmd = "'" + c.rc.upscayl_bin + "' -i '" + a + "' -o '" + b + "' -n realesrgan-" + model + " -m '" + c.rc.upscayl_models +
                          "' -s 4 -f png >'" + dir + "/upscayl.log' 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(b)) throw Error("upscayl-bin failed (" + dir + "/upscayl.log): " + cmd);
  return load_rgb(b);
}

// One method on one degraded input. `cache` keeps the x4plus output for "faces only".
torch::Tensor run_method(Ctx& c, const std::string& m, const torch::Tensor& lq, int scale, const ReferenceSet* refs,
                         const std::vector<DetectedFace>& faces, double& secs, std::map<std::string, std::pair<torch::Tensor, double>>& cache) {
  torch::NoGradGuard ng;
  const auto t0 = Clock::now();
  torch::Tensor y;
  const torch::Tensor small = scale == 1 ? down4(lq) : lq;
  if (m == "bicubic") {
    y = scale == 1 ? lq.clone() : resize_images(lq.unsqueeze(0), lq.size(1) * 4, lq.size(2) * 4, ResizeMode::kBicubic)[0];
  } else if (m == "esrgan-x4plus" || m == "esrgan-x4v3") {
    y = esrgan(c, m == "esrgan-x4plus" ? RealEsrganModel::kX4Plus : RealEsrganModel::kGeneralX4V3).upscale_x4(small.unsqueeze(0))[0];
  } else if (m == "upscayl-x4plus" || m == "upscayl-x4fast") {
    y = run_upscayl(c, m.substr(8), small);
  } else {
    Face2SceneOptions o;
    o.scale = scale;
    o.measure_identity = false;
    o.faces = faces;
    ReferenceSet none;
    const ReferenceSet* r = &none;
    double extra = 0;
    if (m == "faces-only") {
      if (!cache.count("esrgan-x4plus")) {
        double s = 0;
        auto bg = run_method(c, "esrgan-x4plus", lq, scale, refs, faces, s, cache);
        cache["esrgan-x4plus"] = {bg, s};
      }
      o.background = tensor_to_image(cache["esrgan-x4plus"].first);
      extra = cache["esrgan-x4plus"].second;
      if (refs) r = refs;
    } else if (m == "ours-blind") {
      o.blind = true;
    } else if (m == "ours-refs") {
      r = refs;
    }
    // The person is known: the largest face is pinned to them (`--face-refs 0=DIR`), as a user
    // who gives references would, instead of trusting a descriptor match on a degraded face.
    if (r != &none && r && !r->people.empty()) o.face_refs[0] = r->people[0].name;
    const auto res = c.f2s->restore(tensor_to_image(lq), *r, o);
    y = image_to_tensor(res.image, torch::kCPU, torch::kFloat32, true);
    secs = since(t0) + extra;
    return quantise(y);
  }
  if (scale == 1 && y.size(1) != lq.size(1)) y = resize_images(y.unsqueeze(0), lq.size(1), lq.size(2), ResizeMode::kArea)[0];
  secs = since(t0);
  if (m == "esrgan-x4plus") cache[m] = {quantise(y), secs};
  return quantise(y);
}

void run_cases(const RunConfig& rc, const std::vector<Case>& cases) {
  Ctx c;
  c.rc = rc;
  if (rc.device.is_cuda()) at::globalContext().setAllowTF32CuDNN(false);  // fp32: CPU and GPU numbers comparable
  const std::string w = rc.data + "/weights";
  c.lpips = std::make_unique<metrics::Lpips>(w, rc.device);
  c.niqe = std::make_unique<metrics::Niqe>(w + "/niqe/niqe_pris_params.npz");
  c.brisque = std::make_unique<metrics::Brisque>(w + "/brisque");
  if (face_detection_available()) c.det = std::make_unique<FaceDetector>();
  const std::string dp = w + "/" + fs::path(default_faceapi_weights_path()).filename().string();
  c.desc_path = fs::exists(dp) ? dp : default_faceapi_weights_path();
  if (FaceDescriptor::available(c.desc_path)) c.desc = std::make_unique<FaceDescriptor>(FaceDescriptor::load(c.desc_path, rc.device));
  auto want = [&](const std::string& m) { return std::find(rc.methods.begin(), rc.methods.end(), m) != rc.methods.end(); };
  if (want("faces-only") || want("ours-blind") || want("ours-norefs") || want("ours-refs")) {
    Face2SceneConfig fc;
    fc.device = rc.device;
    fc.models_dir = rc.models;
    fc.identity_weights = c.desc_path;
    c.f2s = std::make_unique<Face2Scene>(fc);
  }
  // Resume: units already in the CSV with their output on disk.
  const std::string csv = rc.out + "/per_image.csv";
  std::set<std::string> done;
  if (fs::exists(csv))
    for (const auto& r : parse_csv(read_file(csv), csv))
      if (fs::exists(out_path(rc, r.set, r.cond, r.method, r.name, ".png"))) done.insert(r.set + "/" + r.name + "/" + r.cond + "/" + r.method);
  if (!fs::exists(csv)) write_file_atomically(csv, std::string(kCsvHeader) + "\n");
  std::ofstream part(csv, std::ios::app);
  {
    std::ofstream cmds(rc.out + "/commands.txt", std::ios::app);
    cmds << now_utc() << "\t" << machine_text(rc.device) << "\t" << rc.command << "\n";
  }
  const auto checks = read_sums(rc.data + "/checksums.sha256");
  auto load_checked = [&](const std::string& rel) {
    const std::string bytes = read_file(rc.data + "/" + rel);
    if (!checks.count(sha256_hex(bytes))) throw Error(rc.data + "/" + rel + ": not in the pack's checksums.sha256; refusing it");
    return image_to_tensor(decode_image(bytes, rel), torch::kCPU, torch::kFloat32, true);
  };
  int64_t total = 0;
  for (const auto& cs : cases) total += int64_t(cs.set == "real" ? 1 : rc.conds.size()) * int64_t(rc.methods.size());
  Progress progress("bench_inscene", total);
  for (const auto& cs : cases) {
    const bool real = cs.set == "real";
    const std::vector<std::string> conds = real ? std::vector<std::string>{"given"} : rc.conds;
    std::vector<std::pair<std::string, std::string>> todo;  // cond, method
    for (const auto& cond : conds)
      for (const auto& m : rc.methods) {
        if (m == "ours-refs" && cs.refs.empty()) continue;  // blind-reference sets: no references to give
        if (done.count(cs.set + "/" + cs.name + "/" + cond + "/" + m)) progress.advance();
        else todo.push_back({cond, m});
      }
    if (todo.empty()) continue;
    // Ground truth, its faces (boxes for the regions and the grid, the largest face's descriptor).
    torch::Tensor gt, given;
    FaceInfo gf;
    const std::string gdir = rc.out + "/outputs/" + cs.set + "/gt/";
    fs::create_directories(gdir);
    const std::string fpath = rc.data + "/" + cs.set + "/" + cs.name + "/faces.tsv";
    const FaceMap fm = fs::exists(fpath) ? read_faces(fpath) : FaceMap{};
    if (!real) {
      gt = load_checked(cs.gt);
      gf = faces_of(c, detections(c, fm, "gt", gt), gt);
      if (!fs::exists(gdir + cs.name + ".kid.pt")) torch::save(metrics::kid_features(*c.lpips, gt), gdir + cs.name + ".kid.pt");
    } else {
      given = load_checked(cs.lq);
    }
    std::ostringstream boxes;
    std::unique_ptr<ReferenceSet> refs;
    if (!cs.refs.empty() && c.f2s && (want("ours-refs") || want("faces-only"))) {
      // As load_reference_set builds it (largest face, aligned at Ref-FR's side and described at
      // 512), from the packed detections; photos without a face with landmarks are left out.
      ReferencePersonSet person;
      person.name = cs.name;
      for (size_t i = 0; i < cs.refs.size(); ++i) {
        const auto t = load_checked(cs.refs[i]);
        const auto f = detections(c, fm, "ref" + std::to_string(i), t);
        if (f.empty() || !f[0].has_points5) continue;
        ReferencePhoto ph;
        ph.file = cs.refs[i];
        ph.aligned = align_face(t, f[0].points5, int(c.f2s->geometry().face_size)).image.contiguous();
        ph.descriptor = describe_at(c, t, f[0]);
        person.photos.push_back(ph);
      }
      if (!person.photos.empty()) {
        refs = std::make_unique<ReferenceSet>();
        refs->people.push_back(person);
      } else {
        log_warn(cs.name + ": no reference photo with a usable face: ours-refs and faces-only skip this case");
      }
    }
    std::map<std::string, std::tuple<torch::Tensor, int, FaceInfo>> units;  // cond -> degraded input, scale, input faces
    std::map<std::string, std::vector<DetectedFace>> unit_faces;           // cond -> the pipeline's detections of the input
    std::map<std::string, std::map<std::string, std::pair<torch::Tensor, double>>> caches;
    for (const auto& [cond, m] : todo) {
      if ((m == "ours-refs" || (m == "faces-only" && !cs.refs.empty())) && !refs) {
        progress.advance();
        continue;
      }
      if (!units.count(cond)) {
        torch::Tensor lq;
        int scale = 4;
        FaceInfo inf;
        if (real) {
          lq = given;
          auto bic = resize_images(lq.unsqueeze(0), lq.size(1) * 4, lq.size(2) * 4, ResizeMode::kBicubic)[0].clamp(0, 1);
          const auto b = quantise(bic);
          inf = faces_of(c, detections(c, fm, "given_x4", b), b);  // for the identity to the input, at the output's scale
        } else {
          scale = cond.back() == '1' ? 1 : 4;
          lq = degrade_unit(gt, cs.set, cs.name, cond);
        }
        units[cond] = {lq, scale, inf};
        unit_faces[cond] = detections(c, fm, cond, lq);
        const std::string lp = out_path(rc, cs.set, cond, "input", cs.name, ".png");
        fs::create_directories(fs::path(lp).parent_path());
        write_image(lp, tensor_to_image(lq));
      }
      auto& [lq, scale, inf] = units[cond];
      auto& cache = caches[cond];  // x4plus's output, reused by "faces only" (its time counted there too)
      Row row;
      row.set = cs.set, row.name = cs.name, row.cond = cond, row.method = m;
      row.device = rc.device.is_cuda() ? "cuda" : "cpu";
      auto y = run_method(c, m, lq, scale, refs.get(), unit_faces[cond], row.seconds, cache);
      const Image yi = tensor_to_image(y);
      const std::string op = out_path(rc, cs.set, cond, m, cs.name, ".png");
      fs::create_directories(fs::path(op).parent_path());
      if (!real) {
        const Image gi = tensor_to_image(gt);
        metrics::PixelOptions po;
        po.y_channel = true, po.crop_border = 4;
        row.psnr = metrics::psnr(yi, gi, po), row.ssim = metrics::ssim(yi, gi, po);
        try {
          row.ms_ssim = metrics::ms_ssim(yi, gi, po);
        } catch (const ArgumentError&) {  // under 176 px after the crop
        }
        const auto a = y.unsqueeze(0).to(rc.device), b = gt.unsqueeze(0).to(rc.device);
        row.lpips = c.lpips->forward(a, b).item<double>();
        const auto reg = c.lpips->masked(a.expand({3, -1, -1, -1}), b.expand({3, -1, -1, -1}), region_masks(gf.boxes, gt.size(1), gt.size(2))).cpu();
        row.lp_face = reg[0].item<double>(), row.lp_person = reg[1].item<double>(), row.lp_bg = reg[2].item<double>();
        if (gf.has && c.desc) row.id_gt = (describe_at(c, y, gf.largest) - gf.desc).norm().item<double>();
        torch::save(metrics::kid_features(*c.lpips, y), out_path(rc, cs.set, cond, m, cs.name, ".kid.pt"));
      } else if (inf.has && c.desc) {
        row.id_input = (describe_at(c, y, inf.largest) - inf.desc).norm().item<double>();
      }
      try {
        row.niqe = (*c.niqe)(yi);  // needs two 96² blocks
      } catch (const ArgumentError&) {
      }
      row.brisque = (*c.brisque)(yi);
      WriteOptions wo;
      wo.png_level = 1;
      write_image(op, yi, wo);
      part << csv_line(row) << "\n";
      part.flush();
      progress.advance();
    }
    // The largest face box, for the grids (ground truth's, or the input's at the output scale).
    if (real && units.empty()) continue;
    const FaceInfo& fb = real ? std::get<2>(units.begin()->second) : gf;
    if (fb.has) {
      boxes << fb.largest.box.x0 << " " << fb.largest.box.y0 << " " << fb.largest.box.x1 << " " << fb.largest.box.y1 << "\n";
      write_file_atomically(gdir + cs.name + ".box", boxes.str());
    }
  }
  progress.finish();
  if (packed_mismatches() > 0)
    std::printf("bench_inscene: %lld packed detections used on pixels this build degraded differently (rounding)\n",
                static_cast<long long>(packed_mismatches()));
}

}  // namespace
