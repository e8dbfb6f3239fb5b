#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <list>
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

  // Admits a new connection from `address`, evicting the oldest one still
  // waiting for its request when all are taken. False when it must close.
  bool Admit(const std::string& address, const std::shared_ptr<Session>& s);

  asio::io_context& io;
  tcp::acceptor acceptor;
  HttpHandler handler;
  HttpServerOptions options;
  std::mutex mu;
  std::list<std::weak_ptr<Session>> sessions;  // oldest first; guarded by mu
  bool stopped = false;                        // guarded by mu
  std::atomic<uint64_t> refused{0};
};

namespace {

// One connection: read a request, answer it, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      host_ = ep.address().to_string();
      remote_ = Address{host_, ep.port()}.ToString();
    }
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  const std::string& host() const { return host_; }
  // True while it waits for (the rest of) a request, not while a handler runs
  // or a response is written: only such connections are evicted.
  bool waiting() const { return waiting_.load(); }

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
    parser_->header_limit(16 << 10);
    stream_.expires_after(server_->options.request_timeout);
    waiting_.store(true);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    waiting_.store(false);
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
    stream_.expires_after(server_->options.write_timeout);
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
  std::string host_, remote_;
  std::atomic<bool> waiting_{true};
};

}  // namespace

bool HttpServer::Impl::Admit(const std::string& address, const std::shared_ptr<Session>& s) {
  // Called with mu held.
  size_t from_address = 0;
  auto evict = sessions.end();  // the oldest connection still waiting for its request
  for (auto it = sessions.begin(); it != sessions.end();) {
    auto live = it->lock();
    if (!live) {
      it = sessions.erase(it);
      continue;
    }
    if (live->host() == address) ++from_address;
    if (evict == sessions.end() && live->waiting()) evict = it;
    ++it;
  }
  if (from_address >= options.max_connections_per_address) return false;
  if (sessions.size() >= options.max_connections) {
    if (evict == sessions.end()) return false;  // every connection is being answered: wait for one
    if (auto victim = evict->lock()) victim->Close();
    sessions.erase(evict);
    ++refused;
  }
  sessions.push_back(s);
  return true;
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      auto session = std::make_shared<Session>(std::move(s), self);
      bool admitted;
      {
        std::lock_guard lock(self->mu);
        if (self->stopped) return;
        admitted = self->Admit(session->host(), session);
      }
      if (admitted) {
        session->Start();
      } else {
        ++self->refused;
        session->Close();
      }
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
               ec == asio::error::no_memory) {
      // Out of descriptors: try again shortly instead of spinning or giving up.
      auto timer = std::make_shared<asio::steady_timer>(self->acceptor.get_executor(), std::chrono::milliseconds(100));
      timer->async_wait([self, timer](beast::error_code) { self->Accept(); });
      return;
    }
    self->Accept();
  });
}

uint64_t HttpServer::refused() const { return impl_->refused.load(); }

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
