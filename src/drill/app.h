// The sample application that drills and the demo run on each region's
// endpoint: a tiny stateful HTTP service whose records live where the
// region's data does (as files in the region's copy of a volume, or in the
// region's PostgreSQL server: drill/pg_records.h), so that replication
// carries them and a drill can count what a failover lost.
//
//   PUT  /records/N   keeps the body (up to 4 KiB) as record N, durably
//                     before answering 201 (a file written whole, fsynced
//                     and renamed; a committed row); 503 when it cannot
//                     (a read-only standby, a server gone)
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

// Where the application keeps its records.
class Records {
 public:
  virtual ~Records() = default;
  // Keeps record `n` (replacing one of that number) durably before Ok.
  virtual Status Put(uint64_t n, const std::string& body) = 0;
  // Record `n`'s body; NotFound when there is none.
  virtual Result<std::string> Get(uint64_t n) = 0;
  // The numbers of the records held.
  virtual Result<std::set<uint64_t>> List() = 0;
};

struct AppOptions {
  std::string dir;     // the volume copy: records go to DIR/records/ (when `records` is null)
  std::string region;  // named in every answer; may be empty
  std::shared_ptr<Records> records = nullptr;  // elsewhere (a database); thread-safe
};

// Answers one request. Thread-safe: each record file is its own; `records`
// serializes itself.
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
