// HTTP for the admin API: a server on Boost.Beast that runs handlers on an
// io_context, and a blocking client on libcurl for the CLI.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/address.h"
#include "core/result.h"
#include "core/units.h"

namespace lifeboat::net {

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // "/v1/status?x=1"
  std::string path;    // "/v1/status"
  std::string query;   // "x=1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote;  // peer "host:port"

  // The first header with this name (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse Text(int status, std::string body);
  static HttpResponse Json(int status, std::string body);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  size_t max_body_bytes = 1 << 20;
  // The whole request (head and body) must arrive within this, counted from
  // the connection's start or the previous response: a client that trickles
  // bytes (slowloris) or idles holds a connection for this long at most.
  Duration request_timeout = std::chrono::seconds(10);
  Duration write_timeout = std::chrono::seconds(30);
  size_t max_connections = 256;
  size_t max_connections_per_address = 32;
};

// Serves one address. The handler runs on the io_context's threads and must
// be thread-safe if the io_context runs on more than one. Listen and Stop are
// called from outside the io_context's threads.
//
// No client can lock the others out: connections are bounded per client
// address, every request has a deadline, and when all connections are taken
// a new one evicts the oldest connection still waiting for its request.
class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpHandler handler, HttpServerOptions options = {});
  ~HttpServer();

  // Binds and starts accepting. FailedPrecondition when the address is taken,
  // PermissionDenied for a privileged port, InvalidArgument when the address
  // is not one of this machine's.
  Status Listen(const Address& address);
  // The bound port (useful after listening on port 0).
  uint16_t port() const;
  // Stops accepting and closes open connections.
  void Stop();
  // Connections closed at accept (over the per-address limit) or evicted.
  uint64_t refused() const;

  struct Impl;  // opaque; public so the connection code can name it

 private:
  std::shared_ptr<Impl> impl_;
};

struct FetchResult {
  int status = 0;
  std::string body;
  std::string content_type;
};

// One blocking request. Unavailable when nothing answers (refused,
// unreachable, reset), DeadlineExceeded after `timeout`.
Result<FetchResult> Fetch(std::string_view method, const std::string& url, Duration timeout,
                          std::string_view body = {}, const std::vector<std::string>& headers = {});

// "http://host:port" for an address, brackets and all.
std::string BaseUrl(const Address& address);

}  // namespace lifeboat::net
