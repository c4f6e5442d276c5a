// `face2scene serve` (serve.hpp, docs/server.md): the JSON API on a free loopback port. Upload,
// poll, fetch, delete; every refusal (sizes, non-images, broken files, bad options, a full queue);
// temporary files gone after delete and stop; a running job interrupted by delete and by stop.
// Real models on a 200x180 crop at x1, so a restore costs seconds on the 2-core CPU.
#include <gtest/gtest.h>

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "face2scene/core.hpp"
#include "face2scene/identity.hpp"
#include "face2scene/pipeline.hpp"
#include "face2scene/realesrgan.hpp"
#include "face2scene/serve.hpp"
#include "face2scene/tensor.hpp"
#include "faces_test_util.hpp"
#include "serve_test_util.hpp"
#include "test_util.hpp"

using namespace face2scene;
using namespace f2s_serve_test;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST(ServeHosts, LoopbackOrNot) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("192.168.1.5"));
  EXPECT_FALSE(is_loopback_host("::"));
}

TEST(ServeHosts, ThePageIsEmbedded) {
  EXPECT_NE(embedded_web_file("/index.html").find("<title>face2scene</title>"), std::string::npos);
  EXPECT_NE(embedded_web_file("/app.js").find("/api/jobs"), std::string::npos);
  EXPECT_FALSE(embedded_web_file("/style.css").empty());
  EXPECT_TRUE(embedded_web_file("/../CMakeLists.txt").empty());
}

// Upload a crop with one face (and a reference when the CC BY London faces are there), poll until
// done, fetch the PNG, delete: the job's folder goes with it.
TEST(ServeApi, UploadPollFetchDelete) {
  F2S_REQUIRE_SERVE();
  Fixture fx("flow");
  httplib::Client cli("127.0.0.1", fx.server->port());
  cli.set_read_timeout(60);

  // The page.
  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  auto info = cli.Get("/api/info");
  ASSERT_TRUE(info);
  EXPECT_EQ(json::parse(info->body)["limits"]["max_pixels"], fx.options.max_pixels);

  const std::string photo = crop_png();
  httplib::MultipartFormDataItems items = {{"image", photo, "crop.png", "image/png"},
                                           {"options", R"({"scale": 1, "blind_paste_min": 8})", "", "application/json"}};
  const bool refs = FaceDescriptor::available() && f2s_test::have_data("faces/hq/london/001_neutral.jpg");
  if (refs)  // not the person of the photo: the face stays unmatched, the reference is loaded
    items.push_back({"ref:Ann", read_file(f2s_test::data_path("faces/hq/london/001_neutral.jpg")), "ann.jpg", "image/jpeg"});
  auto post = cli.Post("/api/jobs", items);
  ASSERT_TRUE(post);
  ASSERT_EQ(post->status, 202) << post->body;
  const json created = json::parse(post->body);
  const std::string id = created["id"];
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(post->get_header_value("Location"), "/api/jobs/" + id);
  EXPECT_EQ(created["input"]["width"], 200);
  // The job's files are in its own folder under the server's temporary root.
  ASSERT_EQ(fx.job_folders(), 1);

  // Before it is done the result is not there.
  const json done = poll_until_finished(cli, id, /*seen_progress=*/true);
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_EQ(done["scale"], 1);
  EXPECT_EQ(done["width"], 200);
  EXPECT_EQ(done["height"], 180);
  ASSERT_GE(done["faces"].size(), 1u) << done.dump();
  EXPECT_EQ(done["faces"][0]["status"], "restored");
  EXPECT_FALSE(done["degradation"]["words"].get<std::string>().empty());
  EXPECT_TRUE(done["face_code"].get<bool>());
  EXPECT_GT(done["timings_s"]["total"].get<double>(), 0.0);
  EXPECT_EQ(done["progress"]["fraction"], 1.0);
  if (refs) {
    EXPECT_EQ(done["people"], json::array({"Ann"}));
  }
  // No server path leaks into what the client sees.
  EXPECT_EQ(done.dump().find(fx.temp), std::string::npos);
  EXPECT_EQ(done.dump().find("/weights/"), std::string::npos);

  auto png = cli.Get("/api/jobs/" + id + "/result");
  ASSERT_TRUE(png);
  ASSERT_EQ(png->status, 200);
  EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  const Image out = decode_image(png->body);
  EXPECT_EQ(out.width, 200);
  EXPECT_EQ(out.height, 180);

  auto del = cli.Delete("/api/jobs/" + id);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(cli.Get("/api/jobs/" + id)->status, 404);
  EXPECT_EQ(cli.Get("/api/jobs/" + id + "/result")->status, 404);
  EXPECT_EQ(cli.Delete("/api/jobs/" + id)->status, 404);
  EXPECT_EQ(fx.job_folders(), 0) << "the job's folder outlived DELETE";
}

// Detect-only jobs (what the page runs when a photo is dropped) list the faces without an image.
// A finished job expires after the TTL, and its folder goes with it.
TEST(ServeApi, DetectJobListsFacesThenExpires) {
  F2S_REQUIRE_SERVE();
  ServeOptions o;
  o.job_ttl_s = 3;
  Fixture fx("detect", o);
  httplib::Client cli("127.0.0.1", fx.server->port());
  auto post = cli.Post("/api/jobs", httplib::MultipartFormDataItems{{"image", read_file(example_path()), "solvay.jpg", "image/jpeg"},
                                                                    {"options", R"({"mode":"detect"})", "", ""}});
  ASSERT_TRUE(post);
  ASSERT_EQ(post->status, 202) << post->body;
  const std::string id = json::parse(post->body)["id"];
  const json done = poll_until_finished(cli, id);
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_GE(done["faces"].size(), 10u);  // the Solvay crop has 20-odd faces
  EXPECT_EQ(done["faces"][0]["index"], 0);
  EXPECT_EQ(done["faces"][0]["box"].size(), 4u);
  EXPECT_FALSE(done.contains("result_url"));
  EXPECT_EQ(cli.Get("/api/jobs/" + id + "/result")->status, 409);
  EXPECT_EQ(fx.job_folders(), 1);
  const auto t0 = std::chrono::steady_clock::now();
  while (cli.Get("/api/jobs/" + id)->status == 200 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30))
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(cli.Get("/api/jobs/" + id)->status, 404) << "the job did not expire";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << "it expired before its TTL";
  EXPECT_EQ(fx.job_folders(), 0);
}

// Every refusal is a 4xx with a JSON message that says what was wrong, and nothing is queued.
TEST(ServeApi, RefusesBadRequestsWithClearMessages) {
  F2S_REQUIRE_SERVE();
  ServeOptions o;
  o.max_upload_bytes = 2 << 20;
  o.max_pixels = 300 * 300;
  o.max_output_pixels = 400 * 400;  // the crop at x1 and x2 fits, at x4 it does not
  Fixture fx("errors", o);
  httplib::Client cli("127.0.0.1", fx.server->port());
  const std::string photo = crop_png();
  struct Case {
    std::string what;
    httplib::MultipartFormDataItems items;
    int status;
    std::string message;  // part of the error text
  };
  const std::vector<Case> cases = {
      {"no image part", {{"options", "{}", "", ""}}, 400, "no 'image' part"},
      {"random bytes", {{"image", std::string(5000, '\x17'), "x.png", "image/png"}}, 415, "not a PNG or JPEG"},
      {"truncated PNG", {{"image", photo.substr(0, photo.size() / 2), "t.png", "image/png"}}, 400, "image (t.png)"},
      {"truncated JPEG", {{"image", crop_jpg().substr(0, 3000), "t.jpg", "image/jpeg"}}, 400, "t.jpg"},
      {"huge declared size", {{"image", png_header_claiming(60000, 60000), "big.png", "image/png"}}, 413, "exceeds the limit"},
      {"empty image", {{"image", "", "e.png", "image/png"}}, 400, "is empty"},
      {"wrong content type", {{"image", photo, "crop.png", "text/plain"}}, 415, "content type text/plain"},
      {"options not JSON", {{"image", photo, "c.png", "image/png"}, {"options", "{scale:", "", ""}}, 400, "not valid JSON"},
      {"unknown option", {{"image", photo, "c.png", "image/png"}, {"options", R"({"path":"/etc"})", "", ""}}, 400, "unknown option 'path'"},
      {"scale 3", {{"image", photo, "c.png", "image/png"}, {"options", R"({"scale":3})", "", ""}}, 400, "scale must be 1, 2 or 4"},
      {"scale as a string", {{"image", photo, "c.png", "image/png"}, {"options", R"({"scale":"4"})", "", ""}}, 400, "wrong type"},
      {"output too large", {{"image", photo, "c.png", "image/png"}, {"options", R"({"scale":4})", "", ""}}, 413, "choose a lower scale"},
      {"negative blind_paste_min", {{"image", photo, "c.png", "image/png"}, {"options", R"({"blind_paste_min":-3})", "", ""}}, 400, "blind_paste_min must be"},
      {"blind_paste_min as a string", {{"image", photo, "c.png", "image/png"}, {"options", R"({"blind_paste_min":"16"})", "", ""}}, 400, "wrong type"},
      {"blind_face_consistency 9", {{"image", photo, "c.png", "image/png"}, {"options", R"({"blind_face_consistency":9})", "", ""}}, 400, "blind_face_consistency must be"},
      {"ref_face_fidelity 1.5", {{"image", photo, "c.png", "image/png"}, {"options", R"({"ref_face_fidelity":1.5})", "", ""}}, 400, "ref_face_fidelity must be"},
      {"pin to nobody", {{"image", photo, "c.png", "image/png"}, {"options", R"({"face_refs":{"0":"Bob"}})", "", ""}}, 400, "no reference photo"},
      {"bad face number", {{"image", photo, "c.png", "image/png"}, {"options", R"({"face_refs":{"x1":"Bob"}})", "", ""}}, 400, "not a face number"},
      {"person as a path", {{"image", photo, "c.png", "image/png"}, {"ref:../../etc", photo, "r.png", "image/png"}}, 400, "person name"},
      {"unknown field", {{"image", photo, "c.png", "image/png"}, {"file", photo, "r.png", "image/png"}}, 400, "unknown form field"},
      {"broken reference", {{"image", photo, "c.png", "image/png"}, {"ref:Ann", "GIF89a....", "r.gif", "image/gif"}}, 415, "reference of Ann"},
  };
  for (const auto& c : cases) {
    auto r = cli.Post("/api/jobs", c.items);
    ASSERT_TRUE(r) << c.what;
    EXPECT_EQ(r->status, c.status) << c.what << ": " << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << c.what;
    std::string msg;
    try {
      msg = json::parse(r->body).at("error");
    } catch (const std::exception&) {
      ADD_FAILURE() << c.what << ": body is not {\"error\": ...}: " << r->body;
    }
    EXPECT_NE(msg.find(c.message), std::string::npos) << c.what << ": " << msg;
  }
  // Not multipart at all; a body over the upload limit (httplib refuses it before reading).
  auto r = cli.Post("/api/jobs", photo, "image/png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415) << r->body;
  r = cli.Post("/api/jobs", httplib::MultipartFormDataItems{{"image", std::string(3 << 20, 'x'), "big.png", "image/png"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_NE(r->body.find("limit"), std::string::npos) << r->body;
  // Unknown jobs and ids that are not ids.
  EXPECT_EQ(cli.Get("/api/jobs/0123456789abcdef")->status, 404);
  EXPECT_EQ(cli.Get("/api/jobs/..%2F..%2Fetc")->status, 404);
  EXPECT_EQ(cli.Get("/api/jobs/0123456789abcdef/result")->status, 404);
  EXPECT_EQ(cli.Get("/../../etc/passwd")->status, 404);
  // Nothing was queued and no file was left behind; a good request still works.
  EXPECT_EQ(fx.server->active_jobs(), 0);
  EXPECT_EQ(fx.job_folders(), 0);
  r = cli.Post("/api/jobs", httplib::MultipartFormDataItems{{"image", photo, "c.png", "image/png"},
                                                            {"options", R"({"mode":"detect"})", "", ""}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
}

// A full queue answers 503 with Retry-After; DELETE interrupts a running job; stop() interrupts the
// running one, returns promptly and removes every temporary file.
TEST(ServeApi, QueueFullCancelAndStop) {
  F2S_REQUIRE_SERVE();
  ServeOptions o;
  o.queue_size = 1;
  o.retry_after_s = 7;
  Fixture fx("queue", o);
  httplib::Client cli("127.0.0.1", fx.server->port());
  const std::string photo = crop_png();
  const httplib::MultipartFormDataItems job = {{"image", photo, "c.png", "image/png"},
                                               {"options", R"({"scale":1})", "", ""}};
  std::vector<std::string> ids;
  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = cli.Post("/api/jobs", job);
    ASSERT_TRUE(r);
    if (r->status == 202) {
      ids.push_back(json::parse(r->body)["id"]);
    } else {
      EXPECT_EQ(r->status, 503) << r->body;
      EXPECT_EQ(r->get_header_value("Retry-After"), "7");
      EXPECT_NE(r->body.find("queue is full"), std::string::npos) << r->body;
      ++refused;
    }
  }
  // One runs (or is about to), one waits, the third is refused.
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(refused, 1);
  // Delete the waiting one at once, the running one once it runs: it stops at its next stage.
  ASSERT_EQ(cli.Delete("/api/jobs/" + ids[1])->status, 200);
  EXPECT_EQ(cli.Get("/api/jobs/" + ids[1])->status, 404);
  wait_for_state(cli, ids[0], "running");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(cli.Delete("/api/jobs/" + ids[0])->status, 200);
  while (fx.server->active_jobs() > 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(fx.server->active_jobs(), 0);
  EXPECT_EQ(cli.Get("/api/jobs/" + ids[0])->status, 404);
  EXPECT_EQ(fx.job_folders(), 0) << "a cancelled job left files";

  // stop() while a job runs: interrupted, every file removed, the port closed.
  auto r = cli.Post("/api/jobs", job);
  ASSERT_EQ(r->status, 202) << r->body;
  wait_for_state(cli, json::parse(r->body)["id"], "running");
  EXPECT_EQ(fx.job_folders(), 1);
  const auto t1 = std::chrono::steady_clock::now();
  fx.server->stop();
  const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  EXPECT_LT(stop_s, 60.0);  // at most one stage of a 200x180 photo, not the whole restore
  EXPECT_TRUE(fs::is_empty(fx.temp)) << "stop() left the server's temporary folder";
  EXPECT_FALSE(cli.Get("/api/info"));
}
