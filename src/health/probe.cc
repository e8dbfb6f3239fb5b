#include "health/probe.h"

#include <libpq-fe.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <variant>

#include "postgres/instance.h"

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
    case Reason::kWrongRole: return "wrong-role";
  }
  return "?";
}

asio::ssl::context& ClientTls::Get() {
  std::call_once(once_, [this] {
    ctx_.emplace(asio::ssl::context::tls_client);
    ctx_->set_default_verify_paths();
  });
  return *ctx_;
}

namespace {

constexpr size_t kBodyWindow = 5120;  // expect_body is searched in this much of the body

// The result a probe reports: a probe whose deadline passed reports the
// timeout, whatever the aborted operation said.
ProbeResult Outcome(Reason reason, std::string detail, bool timed_out, Duration timeout,
                    std::chrono::steady_clock::time_point start) {
  ProbeResult r;
  if (timed_out && reason != Reason::kTimeout) {
    reason = Reason::kTimeout;
    detail = "no answer within " + FormatDuration(timeout);
  }
  r.reason = reason;
  r.detail = std::move(detail);
  r.latency = std::chrono::steady_clock::now() - start;
  return r;
}

// One probe in flight. Owns its sockets; a single deadline timer closes them
// all, which aborts whatever operation is pending.
class Prober : public std::enable_shared_from_this<Prober> {
 public:
  Prober(asio::io_context& io, ClientTls& tls, const plan::Check& check, const Address& address,
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
    ssl_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, tls_.Get());
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
    finished_ = true;
    deadline_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
    done_(Outcome(reason, std::move(detail), timed_out_, check_.timeout, start_));
  }

  asio::io_context& io_;
  ClientTls& tls_;
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

// One postgres probe: libpq's non-blocking connect and query, its socket
// watched by the io_context; the deadline closes everything.
class PgProber : public std::enable_shared_from_this<PgProber> {
 public:
  PgProber(asio::io_context& io, const plan::Check& check, const Address& address, const plan::Database& db,
           std::function<void(ProbeResult)> done)
      : check_(check), address_(address), db_(db), done_(std::move(done)), fd_(io), deadline_(io) {}
  ~PgProber() { Close(); }

  void Start() {
    start_ = std::chrono::steady_clock::now();
    deadline_.expires_after(check_.timeout);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return;
      self->timed_out_ = true;
      boost::system::error_code ignored;
      self->fd_.cancel(ignored);  // the pending wait ends with operation_aborted
    });
    auto password = postgres::PasswordOf(db_);
    if (!password.ok()) return Finish(Reason::kConnectError, password.error().message());
    const std::string& info = db_.instances.empty() ? std::string() : db_.instances.begin()->second;
    std::string port = std::to_string(address_.port);
    std::vector<const char*> keys = {"dbname", "host", "port", "application_name", "connect_timeout"};
    std::vector<const char*> values = {info.c_str(), address_.host.c_str(), port.c_str(), "lifeboat-check", "0"};
    if (!password->empty()) {
      keys.push_back("password");
      values.push_back(password->c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectStartParams(keys.data(), values.data(), 1);
    if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) return Finish(Reason::kConnectError, Error("connect"));
    PQsetnonblocking(conn_, 1);
    Connecting(PGRES_POLLING_WRITING);
  }

 private:
  // Watches libpq's current socket (it may change between attempts).
  bool Watch() {
    int fd = PQsocket(conn_);
    if (fd < 0) return false;
    if (fd_.is_open() && fd_.native_handle() == fd) return true;
    if (fd_.is_open()) fd_.release();
    boost::system::error_code ec;
    fd_.assign(fd, ec);
    return !ec;
  }

  void Connecting(PostgresPollingStatusType st) {
    if (st == PGRES_POLLING_OK) return Query();
    if (st == PGRES_POLLING_FAILED) {
      std::string why = Error("connect");
      return Finish(why.find("refused") != std::string::npos ? Reason::kRefused : Reason::kConnectError, why);
    }
    if (!Watch()) return Finish(Reason::kConnectError, "libpq has no socket");
    auto w = st == PGRES_POLLING_READING ? asio::posix::stream_descriptor::wait_read
                                         : asio::posix::stream_descriptor::wait_write;
    fd_.async_wait(w, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->Aborted();
      self->Connecting(PQconnectPoll(self->conn_));
    });
  }

  void Query() {
    if (PQsendQuery(conn_, "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')") == 0) {
      return Finish(Reason::kProtocolError, Error("send the query"));
    }
    Flush();
  }

  void Flush() {
    int f = PQflush(conn_);
    if (f < 0) return Finish(Reason::kProtocolError, Error("send the query"));
    if (f == 0) return Read();
    if (!Watch()) return Finish(Reason::kProtocolError, "libpq has no socket");
    fd_.async_wait(asio::posix::stream_descriptor::wait_write, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->Aborted();
      self->Flush();
    });
  }

  void Read() {
    if (PQconsumeInput(conn_) == 0) return Finish(Reason::kProtocolError, Error("read the answer"));
    if (PQisBusy(conn_) != 0) {
      if (!Watch()) return Finish(Reason::kProtocolError, "libpq has no socket");
      fd_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
        if (ec) return self->Aborted();
        self->Read();
      });
      return;
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      std::string why = r != nullptr ? PQresultErrorMessage(r) : "no result";
      if (r != nullptr) PQclear(r);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      return Finish(Reason::kProtocolError, "query: " + why);
    }
    bool standby = std::string_view(PQgetvalue(r, 0, 0)) == "t";
    bool read_only = std::string_view(PQgetvalue(r, 0, 1)) == "on";
    PQclear(r);
    std::string role = standby ? "standby" : read_only ? "fenced primary" : "primary";
    bool ok = check_.role == "any" || (check_.role == "standby" && standby) || (check_.role == "primary" && role == "primary");
    Finish(ok ? Reason::kOk : Reason::kWrongRole, ok ? role : role + ", expected " + check_.role);
  }

  void Aborted() {
    if (timed_out_) return Finish(Reason::kTimeout, "no answer within " + FormatDuration(check_.timeout));
    Finish(Reason::kConnectError, "aborted");
  }

  std::string Error(const std::string& what) const {
    std::string m = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
    for (char& c : m) {
      if (c == '\n') c = ' ';
    }
    while (!m.empty() && m.back() == ' ') m.pop_back();
    return what + ": " + m;
  }

  void Close() {
    if (fd_.is_open()) fd_.release();  // libpq owns the descriptor
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }

  void Finish(Reason reason, std::string detail) {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    Close();
    done_(Outcome(reason, std::move(detail), timed_out_, check_.timeout, start_));
  }

  const plan::Check& check_;
  Address address_;
  const plan::Database& db_;
  std::function<void(ProbeResult)> done_;
  asio::posix::stream_descriptor fd_;
  asio::steady_timer deadline_;
  PGconn* conn_ = nullptr;
  std::chrono::steady_clock::time_point start_;
  bool timed_out_ = false;
  bool finished_ = false;
};

}  // namespace

void Probe(asio::io_context& io, ClientTls& tls, const plan::Check& check, const Address& address,
           std::function<void(ProbeResult)> done, const plan::Database* database) {
  if (check.type == plan::CheckType::kPostgres) {
    if (database == nullptr) {
      ProbeResult r;
      r.reason = Reason::kConnectError;
      r.detail = "the plan has no database '" + check.database + "'";
      done(std::move(r));
      return;
    }
    std::make_shared<PgProber>(io, check, address, *database, std::move(done))->Start();
    return;
  }
  if (check.type == plan::CheckType::kHttps) tls.Get();  // loads the certificates before the deadline runs
  std::make_shared<Prober>(io, tls, check, address, std::move(done))->Start();
}

}  // namespace lifeboat::health
