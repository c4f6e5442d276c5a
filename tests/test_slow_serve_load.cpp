// Bounded load test of `face2scene serve` on loopback (label slow): 10 clients x 5 uploads of a real
// restore (every request answered 202/200 or 503, results fetched, no crash), then 1,000 malformed
// uploads (random bytes, truncated PNG/JPEG, huge declared dimensions, wrong content types, not
// multipart, bad options) that must all be 4xx, then one good request. Prints the peak memory.
//   ctest --test-dir build -R ServeLoad --output-on-failure -V
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "face2scene/core.hpp"
#include "serve_test_util.hpp"

using namespace face2scene;
using namespace f2s_serve_test;
using json = nlohmann::json;

namespace {
// Peak resident memory of this process (the server, its models and the clients), in MB.
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

// The SOF0/SOF2 frame header of a JPEG rewritten to claim w x h.
std::string jpeg_claiming(std::string jpg, uint16_t w, uint16_t h) {
  for (size_t i = 2; i + 9 < jpg.size(); ++i) {
    if (static_cast<unsigned char>(jpg[i]) == 0xFF &&
        (static_cast<unsigned char>(jpg[i + 1]) == 0xC0 || static_cast<unsigned char>(jpg[i + 1]) == 0xC2)) {
      jpg[i + 5] = static_cast<char>(h >> 8);
      jpg[i + 6] = static_cast<char>(h & 0xff);
      jpg[i + 7] = static_cast<char>(w >> 8);
      jpg[i + 8] = static_cast<char>(w & 0xff);
      return jpg;
    }
  }
  ADD_FAILURE() << "no SOF marker";
  return jpg;
}
}  // namespace

TEST(ServeLoad, TenClientsFiveUploadsThenAThousandMalformed) {
  F2S_REQUIRE_SERVE();
  ServeOptions o;
  o.queue_size = 4;
  o.retry_after_s = 1;
  o.max_upload_bytes = 8 << 20;
  Fixture fx("load", o);
  const int port = fx.server->port();
  const std::string photo = crop_png();
  const double rss_loaded = peak_rss_mb();

  // ---- 10 clients x 5 uploads, each polled to the end and fetched when accepted ----
  std::atomic<int> accepted{0}, refused{0}, fetched{0}, other{0};
  std::mutex mu;
  std::vector<std::string> odd;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 10; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_read_timeout(120);
      for (int u = 0; u < 5; ++u) {
        auto r = cli.Post("/api/jobs", httplib::MultipartFormDataItems{{"image", photo, "c.png", "image/png"},
                                                                       {"options", R"({"scale":1})", "", ""}});
        if (!r || (r->status != 202 && r->status != 503)) {
          ++other;
          std::lock_guard<std::mutex> lock(mu);
          odd.push_back("client " + std::to_string(c) + ": " + (r ? std::to_string(r->status) + " " + r->body : "no answer"));
          continue;
        }
        if (r->status == 503) {
          ++refused;
          if (r->get_header_value("Retry-After").empty()) ++other;
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        ++accepted;
        const std::string id = json::parse(r->body)["id"];
        const json done = poll_until_finished(cli, id);
        auto png = cli.Get("/api/jobs/" + id + "/result");
        if (done["state"] == "done" && png && png->status == 200 && decode_image(png->body).width == 200) ++fetched;
        cli.Delete("/api/jobs/" + id);
      }
    });
  }
  for (auto& t : clients) t.join();
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rss_after_load = peak_rss_mb();
  EXPECT_EQ(accepted + refused + other, 50);
  EXPECT_EQ(other, 0) << (odd.empty() ? "" : odd[0]);
  EXPECT_GE(accepted, 5);  // the first wave fills the worker and the queue
  EXPECT_GE(refused, 1);   // ... and the rest are turned away
  EXPECT_EQ(fetched, accepted);

  // ---- 1,000 malformed uploads from 4 threads ----
  const std::string jpg = read_file(example_path());
  std::atomic<int> four_xx{0};
  std::vector<std::string> bad;
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&, s] {
      httplib::Client cli("127.0.0.1", port);
      std::mt19937 rng(1234 + s);
      for (int i = 0; i < 250; ++i) {
        const int kind = (i + s) % 8;
        std::string body;
        std::string type = "image/png";
        switch (kind) {
          case 0: {  // random bytes
            body.resize(1 + rng() % 20000);
            for (auto& ch : body) ch = static_cast<char>(rng());
            break;
          }
          case 1: body = photo.substr(0, rng() % (photo.size() - 1)); break;  // truncated PNG
          case 2: body = jpg.substr(0, 2 + rng() % (jpg.size() / 2)); type = "image/jpeg"; break;  // truncated JPEG
          case 3: body = png_header_claiming(10000 + rng() % 2000000000u, 10000 + rng() % 60000); break;
          case 4: body = jpeg_claiming(jpg, 60000 + rng() % 5535, 60000 + rng() % 5535); type = "image/jpeg"; break;
          case 5: body = photo; type = (rng() % 2) ? "text/html" : "application/pdf"; break;  // wrong content type
          case 6: body = photo; break;  // sent below as a raw body, not multipart
          case 7: body = photo; break;  // with bad options
        }
        httplib::MultipartFormDataItems items{{"image", body, "x", type}};
        if (kind == 7) items.push_back({"options", (rng() % 2) ? "{\"scale\":" : R"({"scale":16})", "", ""});
        auto r = kind == 6 ? cli.Post("/api/jobs", body, "image/png") : cli.Post("/api/jobs", items);
        if (r && r->status >= 400 && r->status < 500) {
          ++four_xx;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          bad.push_back("kind " + std::to_string(kind) + ": " + (r ? std::to_string(r->status) + " " + r->body : "no answer"));
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(four_xx, 1000) << bad.size() << " not 4xx, first: " << (bad.empty() ? "" : bad[0]);
  EXPECT_EQ(fx.server->active_jobs(), 0);
  EXPECT_EQ(fx.job_folders(), 0);

  // ---- still serving ----
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Post("/api/jobs", httplib::MultipartFormDataItems{{"image", photo, "c.png", "image/png"},
                                                                 {"options", R"({"scale":1})", "", ""}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json done = poll_until_finished(cli, json::parse(r->body)["id"]);
  EXPECT_EQ(done["state"], "done") << done.dump();
  const double rss_end = peak_rss_mb();
  std::printf("serve load: 50 uploads in %.1f s: %d accepted (all fetched: %d), %d refused with 503; "
              "1000 malformed: %d answered 4xx. Peak RSS (server + models + clients): %.0f MB after loading, "
              "%.0f MB after the uploads, %.0f MB at the end\n",
              load_s, accepted.load(), fetched.load(), refused.load(), four_xx.load(), rss_loaded, rss_after_load, rss_end);
  RecordProperty("peak_rss_mb", static_cast<int>(rss_end));
}
