#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <mutex>
#include <optional>
#include <set>

#include "core/strings.h"
#include "net/http.h"

namespace lifeboat::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpRequest::Header(std::string_view name) const {
  std::string lower = ToLower(name);
  for (const auto& [k, v] : headers) {
    if (ToLower(k) == lower) return v;
  }
  return "";
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

namespace {

class Session;

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpHandler h, HttpServerOptions o)
      : io(io), acceptor(asio::make_strand(io)), handler(std::move(h)), options(o) {}

  void Accept();

  asio::io_context& io;
  tcp::acceptor acceptor;
  HttpHandler handler;
  HttpServerOptions options;
  std::mutex mu;
  std::set<std::weak_ptr<Session>, std::owner_less<std::weak_ptr<Session>>> sessions;  // guarded by mu
  bool stopped = false;  // guarded by mu
};

namespace {

// One connection: read a request, answer it, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {}

  void Start() {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = Address{ep.address().to_string(), ep.port()}.ToString();
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  void Close() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    stream_.expires_after(server_->options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset) {
      return Shutdown();
    }
    if (ec) {
      // Malformed request or body too large: answer 400/413 and close.
      HttpResponse r = HttpResponse::Text(ec == http::error::body_limit ? 413 : 400, ec.message() + "\n");
      return Write(r, false);
    }
    auto& req = parser_->get();
    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    size_t q = in.target.find('?');
    in.path = in.target.substr(0, q);
    if (q != std::string::npos) in.query = in.target.substr(q + 1);
    for (const auto& f : req) in.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    in.body = std::move(req.body());
    in.remote = remote_;
    HttpResponse out;
    try {
      out = server_->handler(in);
    } catch (const std::exception& e) {
      out = HttpResponse::Text(500, std::string("internal error: ") + e.what() + "\n");
    }
    Write(out, req.keep_alive());
  }

  void Write(const HttpResponse& r, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(http::field::server, "lifeboat");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->body() = r.body;
    res->keep_alive(keep_alive);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->Shutdown();
      self->Read();
    });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::string remote_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      std::shared_ptr<Session> session;
      {
        std::lock_guard lock(self->mu);
        if (self->stopped) return;
        for (auto it = self->sessions.begin(); it != self->sessions.end();) {
          it = it->expired() ? self->sessions.erase(it) : std::next(it);
        }
        if (self->sessions.size() < self->options.max_connections) {
          session = std::make_shared<Session>(std::move(s), self);
          self->sessions.insert(session);
        }
      }
      if (session) session->Start();  // else: over the limit, the socket closes here
    }
    self->Accept();
  });
}

HttpServer::HttpServer(asio::io_context& io, HttpHandler handler, HttpServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(handler), options)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Listen(const Address& address) {
  beast::error_code ec;
  tcp::endpoint ep;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) {
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
    if (ec || results.empty()) {
      return InvalidArgument("cannot resolve " + address.host + ": " + ec.message());
    }
    ep = results.begin()->endpoint();
  } else {
    ep = tcp::endpoint(ip, address.port);
  }
  auto& a = impl_->acceptor;
  std::string where = address.ToString();
  if (a.open(ep.protocol(), ec); ec) return Internal("open socket for " + where + ": " + ec.message());
  a.set_option(asio::socket_base::reuse_address(true), ec);
  if (a.bind(ep, ec); ec) {
    a.close();
    if (ec == asio::error::address_in_use) {
      return FailedPrecondition("cannot listen on " + where + ": the address is already in use (is another agent "
                                                             "or program running there?)");
    }
    if (ec == asio::error::access_denied) {
      return PermissionDenied("cannot listen on " + where + ": permission denied (ports below 1024 need root or "
                                                            "CAP_NET_BIND_SERVICE)");
    }
    if (ec.value() == EADDRNOTAVAIL) {
      return InvalidArgument("cannot listen on " + where + ": " + address.host +
                             " is not an address of this machine (is --region right?)");
    }
    return Internal("cannot listen on " + where + ": " + ec.message());
  }
  if (a.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Internal("cannot listen on " + where + ": " + ec.message());
  }
  impl_->Accept();
  return Ok();
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void HttpServer::Stop() {
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    for (const auto& w : impl_->sessions) {
      if (auto s = w.lock()) open.push_back(s);
    }
  }
  asio::post(impl_->acceptor.get_executor(), [impl = impl_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  for (auto& s : open) s->Close();
}

}  // namespace lifeboat::net
