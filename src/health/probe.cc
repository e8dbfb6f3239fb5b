#include "health/probe.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <variant>

namespace lifeboat::health {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const char* ReasonName(Reason r) {
  switch (r) {
    case Reason::kOk: return "ok";
    case Reason::kRefused: return "refused";
    case Reason::kTimeout: return "timeout";
    case Reason::kConnectError: return "connect-error";
    case Reason::kTlsError: return "tls-error";
    case Reason::kBadStatus: return "bad-status";
    case Reason::kBodyMismatch: return "body-mismatch";
    case Reason::kProtocolError: return "protocol-error";
  }
  return "?";
}

asio::ssl::context MakeClientTls() {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_default_verify_paths();
  return ctx;
}

namespace {

constexpr size_t kBodyWindow = 5120;  // expect_body is searched in this much of the body

// One probe in flight. Owns its sockets; a single deadline timer closes them
// all, which aborts whatever operation is pending.
class Prober : public std::enable_shared_from_this<Prober> {
 public:
  Prober(asio::io_context& io, asio::ssl::context& tls, const plan::Check& check, const Address& address,
         std::function<void(ProbeResult)> done)
      : io_(io), tls_(tls), check_(check), address_(address), done_(std::move(done)), socket_(io), deadline_(io) {}

  void Start() {
    start_ = std::chrono::steady_clock::now();
    deadline_.expires_after(check_.timeout);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return;
      self->timed_out_ = true;
      self->Abort();
    });
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(address_.host, ec);
    if (ec) {
      // A host name: resolve, then connect.
      resolver_ = std::make_unique<tcp::resolver>(io_);
      resolver_->async_resolve(address_.host, std::to_string(address_.port),
                               [self = shared_from_this()](boost::system::error_code ec, tcp::resolver::results_type r) {
                                 if (ec || r.empty()) {
                                   return self->Finish(Reason::kConnectError, "cannot resolve " + self->address_.host);
                                 }
                                 self->Connect(r.begin()->endpoint());
                               });
      return;
    }
    Connect(tcp::endpoint(ip, address_.port));
  }

 private:
  void Connect(tcp::endpoint ep) {
    socket_.async_connect(ep, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) {
        if (ec == asio::error::connection_refused) return self->Finish(Reason::kRefused, "connection refused");
        return self->Fail(ec, Reason::kConnectError, "connect");
      }
      switch (self->check_.type) {
        case plan::CheckType::kTcp: return self->Finish(Reason::kOk, "connected");
        case plan::CheckType::kHttps: return self->Handshake();
        default: return self->Request(self->socket_);
      }
    });
  }

  std::string HostHeader() const {
    return check_.host.empty() ? address_.ToString() : check_.host;
  }

  void Handshake() {
    ssl_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, tls_);
    std::string sni = check_.host.empty() ? address_.host : check_.host;
    boost::system::error_code not_ip;
    asio::ip::make_address(sni, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(ssl_->native_handle(), sni.c_str());  // SNI carries names only
    if (check_.tls_verify) {
      ssl_->set_verify_mode(asio::ssl::verify_peer);
      ssl_->set_verify_callback(asio::ssl::host_name_verification(sni));
    } else {
      ssl_->set_verify_mode(asio::ssl::verify_none);
    }
    ssl_->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->Fail(ec, Reason::kTlsError, "TLS handshake");
      self->Request(*self->ssl_);
    });
  }

  template <typename Stream>
  void Request(Stream& stream) {
    req_.method(http::verb::get);
    req_.target(check_.path);
    req_.version(11);
    req_.set(http::field::host, HostHeader());
    req_.set(http::field::user_agent, "lifeboat-health-check");
    req_.set(http::field::connection, "close");
    http::async_write(stream, req_, [self = shared_from_this(), &stream](boost::system::error_code ec, size_t) {
      if (ec) return self->Fail(ec, Reason::kProtocolError, "send request");
      self->parser_.body_limit(1 << 20);
      http::async_read_header(stream, self->buffer_, self->parser_,
                              [self, &stream](boost::system::error_code ec, size_t) {
                                if (ec) return self->Fail(ec, Reason::kProtocolError, "read response");
                                self->OnHeader(stream);
                              });
    });
  }

  template <typename Stream>
  void OnHeader(Stream& stream) {
    int status = static_cast<int>(parser_.get().result_int());
    bool in_range = status >= check_.expect_status.lo && status <= check_.expect_status.hi;
    if (!in_range) {
      return Finish(Reason::kBadStatus, "status " + std::to_string(status) + ", expected " +
                                            std::to_string(check_.expect_status.lo) + "-" +
                                            std::to_string(check_.expect_status.hi));
    }
    if (check_.expect_body.empty()) return Finish(Reason::kOk, "status " + std::to_string(status));
    ReadBody(stream, status);
  }

  template <typename Stream>
  void ReadBody(Stream& stream, int status) {
    const std::string& body = parser_.get().body();
    if (InWindow(body)) {
      return Finish(Reason::kOk, "status " + std::to_string(status) + ", body matched");
    }
    if (parser_.is_done() || body.size() >= kBodyWindow) {
      return Finish(Reason::kBodyMismatch, "status " + std::to_string(status) + ", body lacks '" + check_.expect_body +
                                               "' in its first " + std::to_string(kBodyWindow) + " bytes");
    }
    http::async_read_some(stream, buffer_, parser_, [self = shared_from_this(), &stream, status](boost::system::error_code ec, size_t) {
      if (ec && ec != http::error::end_of_stream && ec != asio::ssl::error::stream_truncated) {
        return self->Fail(ec, Reason::kProtocolError, "read body");
      }
      if (ec) {
        bool found = self->InWindow(self->parser_.get().body());
        return self->Finish(found ? Reason::kOk : Reason::kBodyMismatch,
                            found ? "body matched" : "body lacks '" + self->check_.expect_body + "'");
      }
      self->ReadBody(stream, status);
    });
  }

  bool InWindow(const std::string& body) const {
    std::string_view window(body.data(), std::min(body.size(), kBodyWindow));
    return window.find(check_.expect_body) != std::string_view::npos;
  }

  void Fail(boost::system::error_code ec, Reason reason, const std::string& what) {
    if (timed_out_) return Finish(Reason::kTimeout, "no answer within " + FormatDuration(check_.timeout));
    Finish(reason, what + ": " + ec.message());
  }

  void Abort() {
    boost::system::error_code ignored;
    if (resolver_) resolver_->cancel();
    socket_.close(ignored);
    if (finished_) return;
    // Operations pending on the socket complete with operation_aborted and
    // call Fail, which reports the timeout; a pending resolve does likewise.
  }

  void Finish(Reason reason, std::string detail) {
    if (finished_) return;
    if (timed_out_ && reason != Reason::kTimeout) {
      reason = Reason::kTimeout;
      detail = "no answer within " + FormatDuration(check_.timeout);
    }
    finished_ = true;
    deadline_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
    ProbeResult r;
    r.reason = reason;
    r.detail = std::move(detail);
    r.latency = std::chrono::steady_clock::now() - start_;
    done_(std::move(r));
  }

  asio::io_context& io_;
  asio::ssl::context& tls_;
  const plan::Check& check_;
  Address address_;
  std::function<void(ProbeResult)> done_;
  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::unique_ptr<tcp::resolver> resolver_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> ssl_;
  http::request<http::empty_body> req_;
  http::response_parser<http::string_body> parser_;
  beast::flat_buffer buffer_;
  std::chrono::steady_clock::time_point start_;
  bool timed_out_ = false;
  bool finished_ = false;
};

}  // namespace

void Probe(asio::io_context& io, asio::ssl::context& tls, const plan::Check& check, const Address& address,
           std::function<void(ProbeResult)> done) {
  std::make_shared<Prober>(io, tls, check, address, std::move(done))->Start();
}

}  // namespace lifeboat::health
