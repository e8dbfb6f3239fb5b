// The sample application that drills and the demo run on each region's
// endpoint: a tiny stateful HTTP service whose records live as files in the
// region's copy of a volume, so that replication carries them and a drill
// can count what a failover lost.
//
//   PUT  /records/N   keeps the body (up to 4 KiB) as record N, durably
//                     (written whole, fsynced, renamed) before answering 201
//   GET  /records     the numbers of the records held, one per line
//   GET  /records/N   record N's body
//   GET  /healthz     "ok" (the endpoint's check)
//
// Every answer carries `X-Lifeboat-Region` when a region was given.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "core/address.h"
#include "core/result.h"
#include "net/http.h"

namespace lifeboat::drill {

struct AppOptions {
  std::string dir;     // the volume copy; records go to DIR/records/
  std::string region;  // named in every answer; may be empty
};

// Answers one request. Thread-safe: each record is its own file.
net::HttpResponse HandleAppRequest(const AppOptions& options, const net::HttpRequest& request);

// The record numbers under DIR/records/ (files named by a number only).
Result<std::set<uint64_t>> ListRecords(const std::string& dir);

// The application on its own thread until Stop or destruction.
class App {
 public:
  static Result<std::unique_ptr<App>> Start(const AppOptions& options, const Address& listen);
  ~App();
  uint16_t port() const { return server_->port(); }
  void Stop();

 private:
  App() = default;
  AppOptions options_;
  boost::asio::io_context io_;
  std::unique_ptr<net::HttpServer> server_;
  std::thread thread_;
};

}  // namespace lifeboat::drill
