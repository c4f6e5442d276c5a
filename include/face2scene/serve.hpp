// `face2scene serve`: a local web page over the Face2Scene pipeline (pipeline.hpp). An HTTP server
// (cpp-httplib) serves the page (web/, embedded in the binary) and a small JSON API: upload a
// photo with optional reference photos per person, poll the job, fetch the restored PNG, delete
// the job. One worker thread restores one photo at a time; the rest wait in a bounded queue.
// docs/server.md documents the API and the limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace face2scene {

class Face2Scene;

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback by default; anything else is reachable from the network
  int port = 8080;                 // 0: any free port (tests); port() tells which
  // Limits, each refused with a clear message: 413 for sizes, 503 + Retry-After for a full queue.
  size_t max_upload_bytes = size_t{64} << 20;  // one whole POST /api/jobs body
  uint64_t max_pixels = 16'000'000;            // the photo (decoding refuses more before allocating)
  uint64_t max_output_pixels = 64'000'000;     // the photo × scale²: a larger request is refused
  uint64_t max_reference_pixels = 16'000'000;  // each reference photo
  int max_references = 24;                     // reference files per job
  int queue_size = 4;                          // jobs waiting behind the running one
  int max_jobs = 32;                           // jobs kept (finished ones expire first)
  double job_ttl_s = 3600;                     // a finished job and its files are removed after this
  int retry_after_s = 15;                      // what a 503 tells the client to wait
  std::string temp_root;                       // where job folders go (default: the system temp dir)
  std::string web_dir;                         // serve the page from this folder instead (development)
  std::string device_name;                     // shown by GET /api/info
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

class Server {
 public:
  // `f2s` must outlive the server; the server is its only user while it runs (one worker thread).
  Server(const Face2Scene& f2s, ServeOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (IoError naming host:port when it cannot), creates the temporary folder, starts the HTTP
  // threads and the worker; returns at once.
  void start();
  int port() const;
  std::string url() const;  // http://host:port/
  // Stops accepting, interrupts the running job at its next stage or tile, joins every thread and
  // removes every temporary file. Safe to call twice.
  void stop();
  // Jobs queued + running (for tests and the load test).
  int active_jobs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The page, as embedded at build time: path ("/index.html", "/app.js", "/style.css") → bytes; empty
// when absent. The server falls back to these when ServeOptions::web_dir is empty.
const std::string& embedded_web_file(const std::string& path);

}  // namespace face2scene
