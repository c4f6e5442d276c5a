// Shared by the serve tests (unit: test_serve.cpp; slow: test_slow_serve_load.cpp): a server on a
// free loopback port over the real models, the inputs they upload, polling.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/serve.hpp"
#include "face2scene/tensor.hpp"
#include "faces_test_util.hpp"
#include "test_util.hpp"

namespace f2s_serve_test {
inline std::string models_dir() { return std::string(F2S_SOURCE_DIR) + "/weights"; }
inline std::string example_path() { return std::string(F2S_SOURCE_DIR) + "/examples/solvay_group.jpg"; }
inline bool have_models() {
  return face2scene::file_exists(models_dir() + "/ref_fr.safetensors") &&
         face2scene::file_exists(models_dir() + "/fadex.safetensors") &&
         face2scene::file_exists(face2scene::realesrgan_weights_path(face2scene::RealEsrganModel::kGeneralX4V3));
}
#define F2S_REQUIRE_SERVE()                                                                                 \
  do {                                                                                                      \
    F2S_REQUIRE_DETECTOR();                                                                                 \
    if (!f2s_serve_test::have_models()) GTEST_SKIP() << "weights/ or the Real-ESRGAN base missing";         \
  } while (0)

// The models are loaded once per test process (each TEST runs in its own under ctest).
inline const face2scene::Face2Scene& pipeline() {
  static face2scene::Face2Scene* f2s = [] {
    face2scene::Face2SceneConfig c;
    c.models_dir = models_dir();
    return new face2scene::Face2Scene(c);
  }();
  return *f2s;
}

// A server on a free loopback port whose temporary files go under a fresh folder.
struct Fixture {
  std::string temp;
  face2scene::ServeOptions options;
  std::unique_ptr<face2scene::Server> server;
  explicit Fixture(const std::string& tag, face2scene::ServeOptions o = {}) : options(std::move(o)) {
    temp = f2s_test::temp_dir("serve_" + tag);
    options.host = "127.0.0.1";
    options.port = 0;
    options.temp_root = temp;
    server = std::make_unique<face2scene::Server>(pipeline(), options);
    server->start();
  }
  ~Fixture() {
    server->stop();
    f2s_test::remove_tree(temp);
  }
  // Job folders in the server's temporary folder (the one sub-folder of `temp`).
  int job_folders() const {
    int n = 0;
    for (const auto& root : std::filesystem::directory_iterator(temp))
      for (const auto& e : std::filesystem::directory_iterator(root.path())) n += e.is_directory();
    return n;
  }
};

// 200x180 of the Solvay photo around one 78 px face, as PNG (a restore at x1 costs seconds).
inline std::string crop_png() {
  static const std::string png = [] {
    const auto img = face2scene::read_image(example_path());
    auto t = face2scene::image_to_tensor(img, torch::kCPU, torch::kFloat32).slice(1, 210, 390).slice(2, 272, 472);
    return face2scene::encode_png(face2scene::tensor_to_image(t.contiguous(), 8));
  }();
  return png;
}

inline std::string crop_jpg() {
  return face2scene::encode_jpeg(face2scene::decode_image(crop_png()), 90);
}

// A PNG signature, a valid IHDR claiming w x h pixels and an empty IDAT: decoders that allocate
// before checking would try w*h*3 bytes.
inline std::string png_header_claiming(uint32_t w, uint32_t h) {
  auto be32 = [](std::string& s, uint32_t v) {
    for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  std::string s("\x89PNG\r\n\x1a\n", 8);
  std::string chunk = "IHDR";
  be32(chunk, w);
  be32(chunk, h);
  chunk += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
  be32(s, 13);
  s += chunk;
  be32(s, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(chunk.data()), static_cast<uInt>(chunk.size()))));
  // An empty IDAT, so that a reader gets past the header to where it allocates.
  be32(s, 0);
  s += "IDAT";
  be32(s, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>("IDAT"), 4)));
  return s;
}

inline nlohmann::json get_job(httplib::Client& cli, const std::string& id) {
  auto r = cli.Get("/api/jobs/" + id);
  if (!r || r->status != 200) return nlohmann::json{{"state", r ? "http " + std::to_string(r->status) : "no answer"}};
  return nlohmann::json::parse(r->body);
}

// Polls until the job is done, failed or cancelled (10 min at most).
inline nlohmann::json poll_until_finished(httplib::Client& cli, const std::string& id, bool expect_progress = false) {
  const auto t0 = std::chrono::steady_clock::now();
  bool saw_unfinished = false;
  for (;;) {
    const auto j = get_job(cli, id);
    const std::string s = j["state"];
    if (s == "queued" || s == "running") {
      saw_unfinished = true;
      if (expect_progress) {
        const double f = j["progress"]["fraction"];
        EXPECT_TRUE(f >= 0.0 && f < 1.0) << j.dump();
      }
    } else {
      if (expect_progress) {
        EXPECT_TRUE(saw_unfinished) << "the job never showed as queued or running";
      }
      return j;
    }
    if (std::chrono::steady_clock::now() - t0 > std::chrono::minutes(10)) return nlohmann::json{{"state", "timeout"}};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

inline void wait_for_state(httplib::Client& cli, const std::string& id, const std::string& state) {
  const auto t0 = std::chrono::steady_clock::now();
  while (get_job(cli, id)["state"] != state) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::minutes(5)) << "job never became " << state;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
}  // namespace f2s_serve_test
