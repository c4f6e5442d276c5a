// The web server of `face2scene serve` (serve.hpp, docs/server.md): HTTP routes, validation of
// uploads, the bounded job queue, the worker that runs Face2Scene, and temporary files.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "face2scene/identity.hpp"
#include "face2scene/image_metadata.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/serve.hpp"

namespace face2scene {
namespace {
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Thrown from the pipeline's progress callback to stop a job that was deleted or a server that
// is stopping. Not derived from std::exception, so no `catch (const std::exception&)` on the way
// out of Face2Scene::restore can swallow it.
struct Cancelled {};

// A client error: HTTP status + one-line message (sent as {"error": message}).
struct HttpError {
  int status;
  std::string message;
};

std::string random_hex(size_t n) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  static const char* digits = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = digits[rng() & 15];
  return s;
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) throw IoError(path + ": cannot create folder");
}

// Recursive delete with POSIX calls: std::filesystem::remove_all is avoided on purpose (PyTorch's
// bundled libtorch.so exports its own copy of it, which crashed on the GPU machine; see
// tests/test_util.hpp). ServeJob folders hold only files and plain sub-folders that we made.
void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") remove_tree(path + "/" + name);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

std::string temp_base(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

// A person's name becomes a folder name (load_reference_set names people after folders), so only
// a safe alphabet is accepted; the client never names a path.
bool valid_person(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == ' ') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ' ' || c == '_' || c == '-' || c == '.';
  });
}

std::string base_name(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Decodes an uploaded part to check it before the job is queued, mapping the decoder's errors to
// HTTP: over the pixel limit 413, not an image 415, broken 400. Returns the file extension.
std::string check_image(const httplib::MultipartFormData& part, const std::string& what, uint64_t max_pixels,
                        int* width = nullptr, int* height = nullptr) {
  const std::string& ct = part.content_type;
  if (!ct.empty() && ct.rfind("image/", 0) != 0 && ct != "application/octet-stream")
    throw HttpError{415, what + " has content type " + ct + "; expected a PNG or JPEG image"};
  const std::string name = what + (part.filename.empty() ? "" : " (" + base_name(part.filename) + ")");
  if (part.content.empty()) throw HttpError{400, name + " is empty"};
  ImageReadOptions ro;
  ro.max_pixels = max_pixels;
  try {
    const Image img = decode_image(part.content, name, ro);
    if (width) *width = img.width;
    if (height) *height = img.height;
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.find("exceeds the limit") != std::string::npos) throw HttpError{413, m};
    if (m.find("not a PNG or JPEG") != std::string::npos) throw HttpError{415, m};
    throw HttpError{400, m};
  }
  return static_cast<unsigned char>(part.content[0]) == 0x89 ? ".png" : ".jpg";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw IoError(path + ": cannot write");
}

const char* mime_for(const std::string& path) {
  auto ends = [&](const char* e) {
    const std::string s(e);
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".png")) return "image/png";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}
}  // namespace

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

struct ServeJob {
  enum class State { kQueued, kRunning, kDone, kFailed, kCancelled };
  std::string id, dir, input_file, input_name;
  int width = 0, height = 0;
  std::string mode = "restore";  // or "detect"
  Face2SceneOptions options;
  std::vector<std::string> people;  // reference folders under dir/refs
  State state = State::kQueued;
  std::string stage = "queued";
  int done = 0, total = 0;
  double fraction = 0;
  bool in_worker = false;  // the worker holds it (even after a DELETE, until it lets go)
  bool cancel = false;  // DELETE while running: the worker stops at the next stage or tile
  json report;          // faces, degradation, timings... once done
  std::string error;
  Clock::time_point created = Clock::now(), finished{};
};

namespace {
const char* state_name(ServeJob::State s) {
  switch (s) {
    case ServeJob::State::kQueued: return "queued";
    case ServeJob::State::kRunning: return "running";
    case ServeJob::State::kDone: return "done";
    case ServeJob::State::kFailed: return "failed";
    case ServeJob::State::kCancelled: return "cancelled";
  }
  return "?";
}
// Share of the whole run a stage starts at (rough CPU shares at ×4: the scene restorer dominates).
double stage_start(const std::string& s) {
  static const std::map<std::string, double> at = {{"load", 0.0},     {"detect", 0.02}, {"identity", 0.08},
                                                    {"faces", 0.12},   {"oracle", 0.2},  {"scene", 0.22},
                                                    {"second-look", 0.92}, {"paste", 0.94},   {"write", 0.96},  {"done", 1.0}};
  const auto it = at.find(s);
  return it == at.end() ? 0.0 : it->second;
}
}  // namespace

struct Server::Impl {
  const Face2Scene& f2s;
  ServeOptions o;
  httplib::Server http;
  std::string root;  // this server's temporary folder: one sub-folder per job
  int bound_port = 0;
  std::thread http_thread, worker;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::shared_ptr<ServeJob>> jobs;
  std::deque<std::shared_ptr<ServeJob>> queue;
  bool stopping = false, started = false;
  std::atomic<bool> stopped{false};

  Impl(const Face2Scene& f, ServeOptions opts) : f2s(f), o(std::move(opts)) {}

  // ---- jobs ------------------------------------------------------------------------------------
  json job_json(const ServeJob& j) const {
    json d = {{"id", j.id},
              {"state", state_name(j.state)},
              {"mode", j.mode},
              {"input", {{"name", j.input_name}, {"width", j.width}, {"height", j.height}}},
              {"progress", {{"stage", j.stage}, {"done", j.done}, {"total", j.total}, {"fraction", j.fraction}}},
              {"people", j.people}};
    if (j.state == ServeJob::State::kQueued) {
      int pos = 0;
      for (const auto& q : queue) {
        if (q.get() == &j) break;
        ++pos;
      }
      d["queue_position"] = pos;
    }
    if (!j.error.empty()) d["error"] = j.error;
    if (j.state == ServeJob::State::kDone) {
      for (auto it = j.report.begin(); it != j.report.end(); ++it) d[it.key()] = it.value();
      if (j.mode == "restore") d["result_url"] = "/api/jobs/" + j.id + "/result";
    }
    return d;
  }

  void remove_job_locked(const std::string& id) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    remove_tree(it->second->dir);
    jobs.erase(it);
  }

  // Finished jobs older than the TTL go, with their files.
  void expire_locked() {
    const auto now = Clock::now();
    std::vector<std::string> old;
    for (const auto& [id, j] : jobs) {
      const bool finished = j->state != ServeJob::State::kQueued && j->state != ServeJob::State::kRunning && !j->in_worker;
      if (finished && std::chrono::duration<double>(now - j->finished).count() > o.job_ttl_s) old.push_back(id);
    }
    for (const auto& id : old) remove_job_locked(id);
  }

  void progress(ServeJob& j, const std::string& stage, int done, int total) {
    std::lock_guard<std::mutex> lock(mu);
    if (j.cancel || stopping) throw Cancelled{};
    j.stage = stage;
    j.done = done;
    j.total = total;
    double f = stage_start(stage);
    if (stage == "scene" && total > 0) f += (stage_start("paste") - f) * done / total;
    j.fraction = std::max(j.fraction, f);
  }

  void run_job(ServeJob& j) {
    ImageReadOptions ro;
    ro.max_pixels = o.max_pixels;
    const Image image = read_image(j.input_file, ro);
    json report;
    if (j.mode == "detect") {
      progress(j, "detect", 0, 1);
      const auto t0 = Clock::now();
      const auto faces = f2s.detector().detect(image);
      json list = json::array();
      for (size_t i = 0; i < faces.size(); ++i) {
        const auto& b = faces[i].box;
        list.push_back({{"index", static_cast<int>(i)},
                        {"box", {b.x0, b.y0, b.x1, b.y1}},
                        {"detector_score", faces[i].score},
                        {"landmarks_ok", faces[i].has_points5}});
      }
      report = {{"faces", list},
                {"faces_detected", list.size()},
                {"timings_s", {{"detect", std::chrono::duration<double>(Clock::now() - t0).count()}}}};
    } else {
      progress(j, "load", 0, 1);
      ReferenceSet refs;
      std::vector<std::string> warnings;
      if (!j.people.empty()) {
        if (!f2s.descriptor()) {
          warnings.push_back("references ignored: the identity descriptor is not installed (scripts/install_faceapi.sh)");
        } else {
          try {
            refs = load_reference_set(j.dir + "/refs", f2s.detector(), *f2s.descriptor(), f2s.geometry().face_size);
          } catch (const Error& e) {
            // A reference set without a usable face is not worth failing the photo for.
            warnings.push_back(std::string("references ignored: ") + e.what());
          }
          for (const auto& w : refs.warnings) warnings.push_back("reference " + w);
        }
      }
      Face2SceneOptions opt = j.options;
      // A pin to a person whose photos all failed would be an error in restore(): drop it, say why.
      for (auto it = opt.face_refs.begin(); it != opt.face_refs.end();) {
        if (!refs.find(it->second)) {
          warnings.push_back("face " + std::to_string(it->first) + ": no usable photo of " + it->second +
                             ", matched automatically");
          it = opt.face_refs.erase(it);
        } else {
          ++it;
        }
      }
      // The pipeline's "done" comes before this server has written the result: a job still
      // running must show less than 1 (a poll in that window saw 1.0 while "running").
      opt.on_progress = [this, &j](const std::string& stage, int done, int total) {
        progress(j, stage == "done" ? "write" : stage, done, total);
      };
      Face2SceneResult r = f2s.restore(image, refs, opt);
      progress(j, "write", 0, 1);
      WriteOptions wo;
      wo.png_level = 3;  // ~2x faster than 6 for ~10% more bytes on large outputs
      wo.threads = 2;
      write_image(j.dir + "/result.png", r.image, wo);
      report = json::parse(result_to_json(r, j.input_name, "result.png", -1));
      // The report names server files; the client sees only names it gave or ours.
      report.erase("input");
      report.erase("output");
      json models = json::array();
      for (const auto& m : report["models"]) models.push_back(base_name(m.get<std::string>()));
      report["models"] = models;
      for (auto& f : report["faces"]) {
        json refs_used = json::array();
        for (const auto& p : f["references"]) {
          const std::string s = p.get<std::string>();
          const auto at = s.find("/refs/");
          refs_used.push_back(at == std::string::npos ? base_name(s) : s.substr(at + 6));
        }
        f["references"] = refs_used;
      }
      for (const auto& w : warnings) report["warnings"].push_back(w);
      report["input_width"] = image.width;
      report["input_height"] = image.height;
    }
    std::lock_guard<std::mutex> lock(mu);
    j.report = std::move(report);
    j.stage = "done";
    j.fraction = 1.0;
  }

  void worker_loop() {
    for (;;) {
      std::shared_ptr<ServeJob> job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping || !queue.empty(); });
        expire_locked();
        if (stopping) return;
        if (queue.empty()) continue;
        job = queue.front();
        queue.pop_front();
        job->state = ServeJob::State::kRunning;
        job->in_worker = true;
        job->stage = "load";
      }
      ServeJob::State end = ServeJob::State::kDone;
      std::string error;
      try {
        run_job(*job);
      } catch (const Cancelled&) {
        end = ServeJob::State::kCancelled;
      } catch (const std::exception& e) {
        end = ServeJob::State::kFailed;
        error = e.what();
        log_warn("serve: job " + job->id + " failed: " + error);
      }
      std::lock_guard<std::mutex> lock(mu);
      job->in_worker = false;
      job->state = job->cancel ? ServeJob::State::kCancelled : end;
      job->error = error;
      job->finished = Clock::now();
      // Inputs are not needed any more; the result stays until the job is deleted or expires.
      ::unlink(job->input_file.c_str());
      remove_tree(job->dir + "/refs");
      if (job->cancel || end == ServeJob::State::kCancelled) remove_job_locked(job->id);
    }
  }

  // ---- HTTP ------------------------------------------------------------------------------------
  static void send_error(httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(json{{"error", message}}.dump(), "application/json");
  }

  std::shared_ptr<ServeJob> find_job(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = jobs.find(id);
    return it == jobs.end() ? nullptr : it->second;
  }

  void post_job(const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data())
      throw HttpError{415, "expected multipart/form-data with an 'image' file part"};
    if (!req.has_file("image")) throw HttpError{400, "no 'image' part: send the photo as the form field 'image'"};
    const auto image = req.get_file_value("image");
    // Options: a JSON object in the form field "options".
    json opt = json::object();
    if (req.has_file("options")) {
      try {
        opt = json::parse(req.get_file_value("options").content);
      } catch (const std::exception&) {
        throw HttpError{400, "'options' is not valid JSON"};
      }
      if (!opt.is_object()) throw HttpError{400, "'options' must be a JSON object"};
    }
    auto job = std::make_shared<ServeJob>();
    Face2SceneOptions& fo = job->options;
    // A number option within [lo, hi] (a wrong type throws json's type_error: "wrong type" below).
    auto in_range = [](const json& v, const std::string& key, double lo, double hi, const char* what) {
      const double x = v.get<double>();
      if (!(x >= lo && x <= hi)) throw HttpError{400, "options." + key + " must be " + what};
      return x;
    };
    try {
      for (auto it = opt.begin(); it != opt.end(); ++it) {
        const std::string& k = it.key();
        const json& v = it.value();
        if (k == "scale") {
          fo.scale = v.get<int>();
          if (fo.scale != 1 && fo.scale != 2 && fo.scale != 4) throw HttpError{400, "options.scale must be 1, 2 or 4"};
        } else if (k == "mode") {
          job->mode = v.get<std::string>();
          if (job->mode != "restore" && job->mode != "detect")
            throw HttpError{400, "options.mode must be \"restore\" or \"detect\""};
        } else if (k == "blind") {
          fo.blind = v.get<bool>();
        } else if (k == "paste_faces") {
          fo.paste_faces = v.get<bool>();
        } else if (k == "second_look") {
          fo.second_look = v.get<bool>();
        } else if (k == "detail_transfer") {
          fo.detail_transfer = v.get<bool>();
        } else if (k == "blind_paste_min") {
          // restore --blind-paste-min: blind faces under this many pixels are read, not pasted.
          fo.blind_paste_min = in_range(v, k, 0, 4096, "a face size in pixels, 0 to 4096");
        } else if (k == "blind_face_consistency") {
          fo.blind_face_consistency = in_range(v, k, 0, 8, "0 (off) to 8");
        } else if (k == "ref_face_consistency") {
          fo.ref_face_consistency = in_range(v, k, 0, 8, "0 (off) to 8");
        } else if (k == "blind_face_fidelity") {
          fo.blind_face_fidelity = in_range(v, k, 0, 1, "0 (the restored face) to 1 (the input face)");
        } else if (k == "ref_face_fidelity") {
          fo.ref_face_fidelity = in_range(v, k, 0, 1, "0 (the restored face) to 1 (the input face)");
        } else if (k == "largest_face") {
          fo.largest_face = v.get<bool>();
        } else if (k == "faces_only") {
          fo.scene = !v.get<bool>();
        } else if (k == "face_refs") {
          if (!v.is_object()) throw HttpError{400, "options.face_refs must map face numbers to person names"};
          for (auto f = v.begin(); f != v.end(); ++f) {
            int n = -1;
            try {
              size_t used = 0;
              n = std::stoi(f.key(), &used);
              if (used != f.key().size()) n = -1;
            } catch (const std::exception&) {
            }
            if (n < 0 || n > 1000) throw HttpError{400, "options.face_refs: '" + f.key() + "' is not a face number"};
            fo.face_refs[n] = f.value().get<std::string>();
          }
        } else {
          throw HttpError{400, "unknown option '" + k + "'"};
        }
      }
    } catch (const json::exception&) {
      throw HttpError{400, "options: a value has the wrong type (scale: number, mode: string, flags: true/false)"};
    }
    // The photo, checked by decoding it (broken files never reach the queue).
    const std::string ext = check_image(image, "image", o.max_pixels, &job->width, &job->height);
    // References: form fields "ref:<person>", one file each (repeat the field for more photos).
    std::vector<std::pair<std::string, const httplib::MultipartFormData*>> refs;
    for (const auto& [name, part] : req.files) {
      if (name.rfind("ref:", 0) != 0) {
        if (name != "image" && name != "options") throw HttpError{400, "unknown form field '" + name + "'"};
        continue;
      }
      const std::string person = name.substr(4);
      if (!valid_person(person))
        throw HttpError{400, "person name '" + person + "': use letters, digits, space, '_', '-' or '.' (at most 64)"};
      refs.emplace_back(person, &part);
    }
    if (static_cast<int>(refs.size()) > o.max_references)
      throw HttpError{413, std::to_string(refs.size()) + " reference photos; this server takes at most " +
                               std::to_string(o.max_references) + " per job"};
    std::vector<std::string> ref_ext;
    for (const auto& [person, part] : refs)
      ref_ext.push_back(check_image(*part, "reference of " + person, o.max_reference_pixels));
    for (const auto& [n, person] : fo.face_refs) {
      if (std::none_of(refs.begin(), refs.end(), [&](const auto& r) { return r.first == person; }))
        throw HttpError{400, "options.face_refs: face " + std::to_string(n) + " names '" + person +
                                 "', who has no reference photo in this upload"};
    }

    // Last of the checks, so that a request with several problems hears of the simplest first.
    const int out_scale = fo.scene ? fo.scale : 1;
    const uint64_t out_px = uint64_t(job->width) * job->height * out_scale * out_scale;
    if (job->mode == "restore" && out_px > o.max_output_pixels) {
      char m[200];
      std::snprintf(m, sizeof m, "the result at x%d would have %.2f MP, over this server's limit of %.2f MP: choose a lower scale",
                    out_scale, out_px / 1e6, o.max_output_pixels / 1e6);
      throw HttpError{413, m};
    }
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) throw HttpError{503, "the server is stopping"};
    expire_locked();
    if (static_cast<int>(queue.size()) >= o.queue_size) {
      res.set_header("Retry-After", std::to_string(o.retry_after_s));
      throw HttpError{503, "the queue is full (" + std::to_string(queue.size()) + " jobs waiting); retry later"};
    }
    if (static_cast<int>(jobs.size()) >= o.max_jobs) {
      // Make room by dropping the oldest finished job; if every job is live, refuse.
      std::shared_ptr<ServeJob> oldest;
      for (const auto& [id, j] : jobs)
        if (j->state != ServeJob::State::kQueued && j->state != ServeJob::State::kRunning && !j->in_worker &&
            (!oldest || j->finished < oldest->finished))
          oldest = j;
      if (!oldest) {
        res.set_header("Retry-After", std::to_string(o.retry_after_s));
        throw HttpError{503, "too many jobs on this server; retry later"};
      }
      remove_job_locked(oldest->id);
    }
    do job->id = random_hex(16);
    while (jobs.count(job->id));
    job->dir = root + "/" + job->id;
    job->input_name = image.filename.empty() ? "photo" + ext : base_name(image.filename);
    try {
      make_dir(job->dir);
      job->input_file = job->dir + "/input" + ext;
      write_bytes(job->input_file, image.content);
      if (!refs.empty()) make_dir(job->dir + "/refs");
      std::map<std::string, int> count;
      for (size_t i = 0; i < refs.size(); ++i) {
        const std::string pdir = job->dir + "/refs/" + refs[i].first;
        if (!count.count(refs[i].first)) {
          make_dir(pdir);
          job->people.push_back(refs[i].first);
        }
        const int k = count[refs[i].first]++;
        char name[32];
        std::snprintf(name, sizeof name, "/%03d", k);
        write_bytes(pdir + name + ref_ext[i], refs[i].second->content);
      }
    } catch (const Error& e) {
      remove_tree(job->dir);
      throw HttpError{500, e.what()};
    }
    jobs[job->id] = job;
    queue.push_back(job);
    cv.notify_all();
    res.status = 202;
    res.set_header("Location", "/api/jobs/" + job->id);
    res.set_content(job_json(*job).dump(), "application/json");
  }

  void serve_static(const httplib::Request& req, httplib::Response& res) {
    std::string path = req.path == "/" ? "/index.html" : req.path;
    std::string body;
    if (!o.web_dir.empty()) {
      if (path.find("..") != std::string::npos) return send_error(res, 404, "not found");
      std::ifstream f(o.web_dir + path, std::ios::binary);
      if (!f) return send_error(res, 404, "not found");
      body.assign(std::istreambuf_iterator<char>(f), {});
    } else {
      body = embedded_web_file(path);
      if (body.empty()) return send_error(res, 404, "not found");
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(body, mime_for(path));
  }

  void routes() {
    auto guarded = [](auto fn) {
      return [fn](const httplib::Request& req, httplib::Response& res) {
        try {
          fn(req, res);
        } catch (const HttpError& e) {
          send_error(res, e.status, e.message);
        } catch (const std::exception& e) {
          send_error(res, 500, e.what());
        }
      };
    };
    http.Get("/", [this](const auto& req, auto& res) { serve_static(req, res); });
    http.Get(R"(/(index\.html|app\.js|style\.css|favicon\.svg))",
             [this](const auto& req, auto& res) { serve_static(req, res); });
    http.Get("/api/info", guarded([this](const httplib::Request&, httplib::Response& res) {
      json d = {{"version", version_string()},
                {"device", o.device_name},
                {"identity", f2s.descriptor() != nullptr},
                {"limits",
                 {{"max_upload_bytes", o.max_upload_bytes},
                  {"max_pixels", o.max_pixels},
                  {"max_output_pixels", o.max_output_pixels},
                  {"max_references", o.max_references},
                  {"queue_size", o.queue_size}}}};
      std::lock_guard<std::mutex> lock(mu);
      d["queued"] = queue.size();
      res.set_content(d.dump(), "application/json");
    }));
    http.Post("/api/jobs", guarded([this](const httplib::Request& req, httplib::Response& res) { post_job(req, res); }));
    http.Get(R"(/api/jobs/([0-9a-f]{16}))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      auto it = jobs.find(req.matches[1]);
      if (it == jobs.end()) throw HttpError{404, "no job " + std::string(req.matches[1]) + " (deleted or expired)"};
      res.set_header("Cache-Control", "no-store");
      res.set_content(job_json(*it->second).dump(), "application/json");
    }));
    http.Get(R"(/api/jobs/([0-9a-f]{16})/result)", guarded([this](const httplib::Request& req, httplib::Response& res) {
      auto job = find_job(req.matches[1]);
      if (!job) throw HttpError{404, "no job " + std::string(req.matches[1]) + " (deleted or expired)"};
      std::string path;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (job->state != ServeJob::State::kDone || job->mode != "restore")
          throw HttpError{409, std::string("job is ") + state_name(job->state) + (job->mode == "detect" ? " (detect only: no image)" : "")};
        path = job->dir + "/result.png";
      }
      // Streamed from the file (a ×4 result can be a 100 MB PNG); the open stream keeps the
      // data readable even if the job is deleted meanwhile.
      auto file = std::make_shared<std::ifstream>(path, std::ios::binary);
      if (!*file) throw HttpError{404, "the result is gone (job deleted)"};
      file->seekg(0, std::ios::end);
      const size_t size = static_cast<size_t>(file->tellg());
      file->seekg(0);
      std::string stem = job->input_name.substr(0, job->input_name.find_last_of('.'));
      for (auto& c : stem)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
      res.set_header("Content-Disposition", "inline; filename=\"" + stem + "_restored.png\"");
      res.set_header("Cache-Control", "no-store");
      res.set_content_provider(size, "image/png", [file](size_t offset, size_t length, httplib::DataSink& sink) {
        std::vector<char> buf(std::min<size_t>(length, 1 << 20));
        file->seekg(static_cast<std::streamoff>(offset));
        file->read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto got = file->gcount();
        if (got <= 0) return false;
        sink.write(buf.data(), static_cast<size_t>(got));
        return true;
      });
    }));
    http.Delete(R"(/api/jobs/([0-9a-f]{16}))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      auto it = jobs.find(req.matches[1]);
      if (it == jobs.end()) throw HttpError{404, "no job " + std::string(req.matches[1]) + " (deleted or expired)"};
      auto job = it->second;
      if (job->in_worker) {
        job->cancel = true;  // the worker removes it at its next stage or tile
        job->state = ServeJob::State::kCancelled;
      } else {
        queue.erase(std::remove(queue.begin(), queue.end(), job), queue.end());
        remove_job_locked(job->id);
      }
      res.status = 200;
      res.set_content(json{{"id", job->id}, {"deleted", true}}.dump(), "application/json");
    }));
    // httplib answers some errors itself (413 over the payload limit, 400 for an unparsable
    // request, 404 for unknown routes) with an empty body: give them a JSON message.
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string m = "HTTP " + std::to_string(res.status);
      if (res.status == 404) m = "not found";
      if (res.status == 400) m = "malformed request";
      if (res.status == 413)
        m = "the upload is larger than this server's limit of " + std::to_string(o.max_upload_bytes >> 20) + " MB";
      res.set_content(json{{"error", m}}.dump(), "application/json");
    });
    http.set_payload_max_length(o.max_upload_bytes);
    http.set_read_timeout(30);
    http.set_write_timeout(60);
  }
};

Server::Server(const Face2Scene& f2s, ServeOptions options) : impl_(new Impl(f2s, std::move(options))) {}
Server::~Server() { stop(); }

void Server::start() {
  Impl& m = *impl_;
  if (m.started) throw ArgumentError("serve: the server was started already");
  if (!is_loopback_host(m.o.host))
    log_warn("serve: listening on " + m.o.host + ", not on loopback: anyone who can reach this machine can upload photos");
  m.routes();
  m.bound_port = m.o.port == 0 ? m.http.bind_to_any_port(m.o.host) : (m.http.bind_to_port(m.o.host, m.o.port) ? m.o.port : -1);
  if (m.bound_port <= 0)
    throw IoError("serve: cannot listen on " + m.o.host + ":" + std::to_string(m.o.port) + " (in use, or not an address of this machine)");
  m.root = temp_base(m.o.temp_root) + "/face2scene-serve-" + std::to_string(::getpid()) + "-" + random_hex(8);
  make_dir(m.root);
  m.started = true;
  m.worker = std::thread([&m] { m.worker_loop(); });
  m.http_thread = std::thread([&m] { m.http.listen_after_bind(); });
}

int Server::port() const { return impl_->bound_port; }
std::string Server::url() const {
  const std::string& h = impl_->o.host;
  return "http://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port()) + "/";
}

int Server::active_jobs() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  int n = 0;
  for (const auto& [id, j] : impl_->jobs)
    n += j->state == ServeJob::State::kQueued || j->state == ServeJob::State::kRunning || j->in_worker;
  return n;
}

void Server::stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stopping = true;
  }
  m.cv.notify_all();
  m.http.stop();
  if (m.http_thread.joinable()) m.http_thread.join();
  if (m.worker.joinable()) m.worker.join();
  std::lock_guard<std::mutex> lock(m.mu);
  m.jobs.clear();
  m.queue.clear();
  remove_tree(m.root);
}

}  // namespace face2scene
