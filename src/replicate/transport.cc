#include "replicate/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "core/fs.h"

namespace lifeboat::replicate {
namespace {

using Clock = std::chrono::steady_clock;
constexpr unsigned char kCipherId[] = {0x13, 0x01};  // TLS_AES_128_GCM_SHA256
constexpr size_t kReadBuffer = 256 << 10;
constexpr int kWriteBuffer = 256 << 10;

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

SSL_SESSION* MakeSession(SSL* ssl, const PskKey& key) {
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kCipherId);
  if (cipher == nullptr) return nullptr;
  SSL_SESSION* s = SSL_SESSION_new();
  if (s == nullptr) return nullptr;
  if (!SSL_SESSION_set1_master_key(s, reinterpret_cast<const unsigned char*>(key.secret.data()), key.secret.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

int ClientPsk(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idlen, SSL_SESSION** sess) {
  auto* key = static_cast<const PskKey*>(SSL_get_app_data(ssl));
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kCipherId);
  if (cipher == nullptr || (md != nullptr && md != SSL_CIPHER_get_handshake_digest(cipher))) {
    *sess = nullptr;
    return 1;
  }
  *sess = MakeSession(ssl, *key);
  *id = reinterpret_cast<const unsigned char*>(key->identity.data());
  *idlen = key->identity.size();
  return *sess != nullptr;
}

int ServerPsk(SSL* ssl, const unsigned char* id, size_t idlen, SSL_SESSION** sess) {
  auto* key = static_cast<const PskKey*>(SSL_get_app_data(ssl));
  if (std::string_view(reinterpret_cast<const char*>(id), idlen) != key->identity) {
    *sess = nullptr;  // unknown identity: the handshake fails (there is no certificate)
    return 1;
  }
  *sess = MakeSession(ssl, *key);
  return *sess != nullptr;
}

SSL_CTX* MakeContext(bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Read what the socket holds, up to kReadBuffer, in one read(2), not a
  // record header then its body (two calls per 16 KiB record). Safe with
  // Io's poll: OpenSSL hands out what it buffered before it asks for more.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, kReadBuffer);
  if (server) {
    SSL_CTX_set_psk_find_session_callback(ctx, ServerPsk);
  } else {
    SSL_CTX_set_psk_use_session_callback(ctx, ClientPsk);
  }
  return ctx;
}

SSL_CTX* Context(bool server) {
  // OpenSSL writes with write(2): a peer that went away must give EPIPE,
  // not a SIGPIPE that kills the agent.
  static const bool kNoSigpipe = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)kNoSigpipe;
  static SSL_CTX* const kServer = MakeContext(true);
  static SSL_CTX* const kClient = MakeContext(false);
  return server ? kServer : kClient;
}

void TuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = 15, intvl = 5, cnt = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

struct Conn::Tls {
  PskKey key;
  SSL* ssl = nullptr;
  ~Tls() { SSL_free(ssl); }
};

PskKey DeriveKey(std::string_view secret, const std::string& volume) {
  std::string label = "lifeboat replication v1 " + volume;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(label.data()),
       label.size(), out, &n);
  return PskKey{"lifeboat/" + volume, std::string(reinterpret_cast<char*>(out), n)};
}

Result<PskKey> LoadKey(const std::string& key_file, const std::string& volume) {
  auto text = ReadFile(key_file, 64 * 1024);
  if (!text) return text.error().Wrap("replication key_file " + key_file);
  std::string_view s = *text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  if (s.size() < 16) {
    return InvalidArgument("replication key_file " + key_file + " holds " + std::to_string(s.size()) +
                           " bytes; use at least 16 (for example: openssl rand -hex 32 > " + key_file + ")");
  }
  return DeriveKey(s, volume);
}

Conn::Conn(UniqueFd fd, std::unique_ptr<Tls> tls, std::string peer)
    : fd_(std::move(fd)), tls_(std::move(tls)), peer_(std::move(peer)), refill_(Clock::now()) {}

Conn::~Conn() = default;

Result<std::unique_ptr<Conn>> Conn::Connect(const Address& to, const PskKey& key, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  struct addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  std::string port = std::to_string(to.port);
  if (int rc = ::getaddrinfo(to.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Unavailable("resolve " + to.host + ": " + ::gai_strerror(rc));
  }
  Error last = Unavailable("connect " + to.ToString() + ": no address");
  UniqueFd fd;
  for (auto* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!s.valid()) continue;
    int rc = ::connect(s.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      struct pollfd p = {s.get(), POLLOUT, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0)));
      if (rc == 0) {
        last = DeadlineExceeded("connect " + to.ToString() + ": timed out");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = Unavailable("connect " + to.ToString() + ": " + std::strerror(errno));
      continue;
    }
    fd = std::move(s);
    break;
  }
  ::freeaddrinfo(res);
  if (!fd.valid()) return last;
  TuneSocket(fd.get());
  auto tls = std::make_unique<Tls>();
  tls->key = key;
  std::unique_ptr<Conn> c(new Conn(std::move(fd), std::move(tls), to.ToString()));
  LB_RETURN_IF_ERROR(c->Handshake(false, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
  return c;
}

PeerName PeerOf(int fd) {
  PeerName out;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
      ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    out.host = host;
    out.port = serv;
  }
  return out;
}

Result<std::unique_ptr<Conn>> Conn::Accept(UniqueFd fd, const PskKey& key, std::chrono::milliseconds timeout) {
  PeerName name = PeerOf(fd.get());
  std::string peer = name.port.empty() ? name.host : name.host + ":" + name.port;
  TuneSocket(fd.get());
  auto tls = std::make_unique<Tls>();
  tls->key = key;
  std::unique_ptr<Conn> c(new Conn(std::move(fd), std::move(tls), peer));
  LB_RETURN_IF_ERROR(c->Handshake(true, timeout));
  return c;
}

Status Conn::Handshake(bool server, std::chrono::milliseconds timeout) {
  SSL_CTX* ctx = Context(server);
  if (ctx == nullptr) return Internal("TLS context: " + OpenSslErrors());
  tls_->ssl = SSL_new(ctx);
  if (tls_->ssl == nullptr) return Internal("TLS: " + OpenSslErrors());
  SSL_set_app_data(tls_->ssl, &tls_->key);
  // Reads straight from the socket; writes through a buffer, so that the
  // records of one Send leave in a few large write(2)s, not one per 16 KiB
  // record. Send flushes it before it returns.
  BIO* in = BIO_new_socket(fd_.get(), BIO_NOCLOSE);
  BIO* sock_out = BIO_new_socket(fd_.get(), BIO_NOCLOSE);
  BIO* out = BIO_new(BIO_f_buffer());
  if (in == nullptr || sock_out == nullptr || out == nullptr || BIO_set_write_buffer_size(out, kWriteBuffer) <= 0) {
    BIO_free(in);
    BIO_free(sock_out);
    BIO_free(out);
    return Internal("TLS: " + OpenSslErrors());
  }
  SSL_set_bio(tls_->ssl, in, BIO_push(out, sock_out));
  auto r = Io([&](SSL* s) { return server ? SSL_accept(s) : SSL_connect(s); }, timeout, "TLS handshake");
  if (!r) {
    return Error(r.error().code() == Code::kDeadlineExceeded ? Code::kDeadlineExceeded : Code::kPermissionDenied,
                 "TLS handshake with " + peer_ + " failed: " + r.error().message() +
                     " (the two ends must share the volume's replication key, and the port must be a lifeboat "
                     "replication port)");
  }
  return Ok();
}

template <typename Op>
Result<int> Conn::Io(Op op, std::chrono::milliseconds timeout, const char* what) {
  auto deadline = timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
  while (true) {
    if (shut_.load()) return Unavailable("connection to " + peer_ + " closed");
    short events = 0;
    {
      std::lock_guard lock(mu_);
      ERR_clear_error();
      int rc = op(tls_->ssl);
      if (rc > 0) return rc;
      int err = SSL_get_error(tls_->ssl, rc);
      if (err == SSL_ERROR_WANT_READ) {
        events = POLLIN;
      } else if (err == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
      } else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        return Unavailable(std::string(what) + ": " + peer_ + " closed the connection");
      } else {
        std::string detail = OpenSslErrors();
        return Unavailable(std::string(what) + ": " + (detail.empty() ? "connection error" : detail));
      }
    }
    LB_RETURN_IF_ERROR(Await(events, deadline, what));
  }
}

Status Conn::Await(short events, Clock::time_point deadline, const char* what) {
  int wait = -1;
  if (deadline != Clock::time_point::max()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return DeadlineExceeded(std::string(what) + ": " + peer_ + " sent nothing in time");
    wait = static_cast<int>(left);
  }
  // Wake at least every 200 ms: the other thread may have consumed the
  // readiness we wait for, or Shutdown may have been called.
  wait = wait < 0 ? 200 : std::min(wait, 200);
  struct pollfd p = {fd_.get(), events, 0};
  ::poll(&p, 1, wait);
  return Ok();
}

Status Conn::FlushWrites() {
  while (true) {
    if (shut_.load()) return Unavailable("connection to " + peer_ + " closed");
    {
      std::lock_guard lock(mu_);
      BIO* out = SSL_get_wbio(tls_->ssl);
      if (BIO_flush(out) > 0) return Ok();
      if (!BIO_should_retry(out)) {
        return Unavailable("send: " + peer_ + ": " + (errno != 0 ? std::strerror(errno) : "connection error"));
      }
    }
    LB_RETURN_IF_ERROR(Await(POLLOUT, Clock::time_point::max(), "send"));
  }
}

void Conn::Pace(size_t bytes) {
  if (!rate_) return;
  const double rate = static_cast<double>(rate_->bytes_per_second);
  const double burst = 256.0 * 1024;
  auto now = Clock::now();
  tokens_ = std::min(burst, tokens_ + rate * std::chrono::duration<double>(now - refill_).count());
  refill_ = now;
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ < 0) std::this_thread::sleep_for(std::chrono::duration<double>(-tokens_ / rate));
}

Status Conn::Send(std::string_view frame) {
  Pace(frame.size());
  size_t done = 0;
  while (done < frame.size()) {
    int chunk = static_cast<int>(std::min<size_t>(frame.size() - done, 1 << 20));
    auto r = Io([&](SSL* s) { return SSL_write(s, frame.data() + done, chunk); }, std::chrono::milliseconds(0),
                "send");
    if (!r) return r.error();
    done += static_cast<size_t>(*r);
  }
  LB_RETURN_IF_ERROR(FlushWrites());
  sent_.fetch_add(frame.size(), std::memory_order_relaxed);
  return Ok();
}

Status Conn::ReadExactly(uint8_t* p, size_t n, std::chrono::milliseconds idle) {
  size_t done = 0;
  while (done < n) {
    int want = static_cast<int>(std::min<size_t>(n - done, 1 << 20));
    auto r = Io([&](SSL* s) { return SSL_read(s, p + done, want); }, idle, "receive");
    if (!r) return r.error();
    done += static_cast<size_t>(*r);
  }
  received_.fetch_add(n, std::memory_order_relaxed);
  return Ok();
}

Result<Frame> Conn::Recv(std::chrono::milliseconds idle) {
  uint8_t header[5];
  LB_RETURN_IF_ERROR(ReadExactly(header, sizeof(header), idle));
  LB_ASSIGN_OR_RETURN(uint32_t len, FrameLength(std::span<const uint8_t, 4>(header, 4)));
  Frame f;
  f.type = header[4];
  f.payload.resize(len - 1);
  LB_RETURN_IF_ERROR(ReadExactly(reinterpret_cast<uint8_t*>(f.payload.data()), f.payload.size(),
                                 std::chrono::milliseconds(30'000)));
  return f;
}

void Conn::Shutdown() {
  shut_.store(true);
  ::shutdown(fd_.get(), SHUT_RDWR);
}

void Conn::Linger(std::chrono::milliseconds limit) {
  {
    std::lock_guard lock(mu_);
    if (tls_->ssl != nullptr) {
      SSL_shutdown(tls_->ssl);  // close_notify: the peer sees a clean end after the frame
      BIO_flush(SSL_get_wbio(tls_->ssl));
    }
  }
  ::shutdown(fd_.get(), SHUT_WR);
  auto deadline = Clock::now() + limit;
  std::vector<uint8_t> sink(64 * 1024);
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    auto r = Io([&](SSL* s) { return SSL_read(s, sink.data(), static_cast<int>(sink.size())); }, left, "drain");
    if (!r) break;
  }
}

void Conn::SetRateLimit(std::optional<Rate> rate) { rate_ = rate; }

Result<std::unique_ptr<Listener>> Listener::Listen(const Address& at) {
  struct addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  struct addrinfo* res = nullptr;
  std::string port = std::to_string(at.port);
  if (int rc = ::getaddrinfo(at.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return InvalidArgument("resolve " + at.host + ": " + ::gai_strerror(rc));
  }
  auto l = std::make_unique<Listener>();
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = ::bind(fd.get(), res->ai_addr, res->ai_addrlen);
  int err = errno;
  ::freeaddrinfo(res);
  if (rc != 0) {
    if (err == EADDRINUSE) return Unavailable("replication port " + at.ToString() + " is already in use");
    return ErrnoError(err, "bind replication port " + at.ToString());
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) return ErrnoError(errno, "listen");
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  l->port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError(errno, "pipe");
  l->wake_[0].Reset(p[0]);
  l->wake_[1].Reset(p[1]);
  l->fd_ = std::move(fd);
  return l;
}

Result<UniqueFd> Listener::Accept() {
  while (true) {
    struct pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return ErrnoError(errno, "poll");
    if (p[1].revents != 0) return Unavailable("listener closed");
    if (p[0].revents == 0) continue;
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN || errno == EPROTO) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      return ResourceExhausted(std::string("accept: ") + std::strerror(errno));
    }
    return ErrnoError(errno, "accept");
  }
}

bool Listener::Pause(std::chrono::milliseconds d) {
  struct pollfd p = {wake_[0].get(), POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(d.count()));
  return !(n > 0 && p.revents != 0);
}

void Listener::Close() {
  char c = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_[1].get(), &c, 1);
}

}  // namespace lifeboat::replicate
