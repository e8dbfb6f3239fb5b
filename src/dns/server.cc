#include "dns/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <random>

namespace lifeboat::dns {

// ---- SnapshotHolder -------------------------------------------------------

SnapshotHolder::SnapshotHolder(int readers) : slots_(new Slot[static_cast<size_t>(readers)]), nslots_(readers) {}
SnapshotHolder::~SnapshotHolder() = default;

const Snapshot* SnapshotHolder::Acquire(int slot) {
  auto& hazard = slots_[static_cast<size_t>(slot)].p;
  const Snapshot* p = current_.load(std::memory_order_seq_cst);
  for (;;) {
    hazard.store(p, std::memory_order_seq_cst);
    const Snapshot* again = current_.load(std::memory_order_seq_cst);
    if (again == p) return p;  // published before any reclaim could see our slot empty
    p = again;
  }
}

void SnapshotHolder::Release(int slot) { slots_[static_cast<size_t>(slot)].p.store(nullptr, std::memory_order_release); }

void SnapshotHolder::Publish(std::shared_ptr<const Snapshot> snap) {
  std::lock_guard lock(mu_);
  if (owner_) retired_.push_back(std::move(owner_));
  owner_ = std::move(snap);
  current_.store(owner_.get(), std::memory_order_seq_cst);
  swaps_.fetch_add(1, std::memory_order_relaxed);
  ReclaimLocked();
}

void SnapshotHolder::ReclaimLocked() {
  std::erase_if(retired_, [this](const std::shared_ptr<const Snapshot>& r) {
    for (int i = 0; i < nslots_; ++i) {
      if (slots_[static_cast<size_t>(i)].p.load(std::memory_order_seq_cst) == r.get()) return false;
    }
    return true;
  });
}

std::shared_ptr<const Snapshot> SnapshotHolder::current() const {
  std::lock_guard lock(mu_);
  return owner_;
}

// ---- Counters --------------------------------------------------------------

namespace {

constexpr uint16_t kCountedTypes[] = {type::kA,  type::kAAAA, type::kCNAME, type::kSOA, type::kNS, type::kMX,
                                      type::kTXT, type::kSRV,  type::kCAA,   type::kANY};
constexpr int kTypes = std::size(kCountedTypes) + 1;  // + other
constexpr uint16_t kCountedRcodes[] = {rcode::kNoError, rcode::kFormErr, rcode::kServFail, rcode::kNxDomain,
                                       rcode::kNotImp,  rcode::kRefused, rcode::kBadVers};
constexpr int kRcodes = std::size(kCountedRcodes);

int TypeIndex(uint16_t t) {
  for (int i = 0; i < kTypes - 1; ++i) {
    if (kCountedTypes[i] == t) return i;
  }
  return kTypes - 1;
}
int RcodeIndex(uint16_t r) {
  for (int i = 0; i < kRcodes; ++i) {
    if (kCountedRcodes[i] == r) return i;
  }
  return 2;  // SERVFAIL bucket for anything unexpected
}
const char* RcodeName(int i) {
  static const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS"};
  return kNames[i];
}

// xorshift32: the weighted-answer picks need speed, not quality.
uint32_t NextRandom(uint32_t& s) {
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}

Result<sockaddr_storage> Resolve(const Address& a, socklen_t& len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res);
  if (rc != 0 || !res) return InvalidArgument("cannot resolve " + a.host + ": " + gai_strerror(rc));
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

Error BindError(int err, const std::string& what) {
  if (err == EADDRINUSE) return FailedPrecondition(what + ": the address is already in use");
  if (err == EACCES) return PermissionDenied(what + ": permission denied (port 53 needs root or CAP_NET_BIND_SERVICE)");
  if (err == EADDRNOTAVAIL) return InvalidArgument(what + ": not an address of this machine");
  return ErrnoError(err, what);
}

// A bound socket of `type` on `addr`; port 0 is replaced by `port` if set.
Result<int> BindSocket(const Address& addr, int type, bool reuseport) {
  socklen_t len = 0;
  LB_ASSIGN_OR_RETURN(sockaddr_storage ss, Resolve(addr, len));
  int fd = ::socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "socket for " + addr.ToString());
  int one = 1;
  if (reuseport) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (type == SOCK_STREAM) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (type == SOCK_DGRAM) {
    // A deep queue rides out bursts without drops. SO_RCVBUF is capped by
    // net.core.rmem_max (about 208 KiB by default); root may force past it.
    int buf = 4 << 20;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return BindError(err, std::string(type == SOCK_DGRAM ? "DNS (UDP) on " : "DNS (TCP) on ") + addr.ToString());
  }
  if (type == SOCK_STREAM && ::listen(fd, 1024) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "listen on " + addr.ToString());
  }
  return fd;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

}  // namespace

struct DnsServer::Counters {
  std::atomic<uint64_t> queries[2][kTypes][kRcodes] = {};
  std::atomic<uint64_t> outcomes[kOutcomeCount] = {};
  std::atomic<uint64_t> truncated{0};
  std::atomic<uint64_t> dropped{0};

  void Count(Transport t, const AnswerInfo& info) {
    queries[static_cast<int>(t)][TypeIndex(info.qtype)][RcodeIndex(info.rcode)].fetch_add(1, std::memory_order_relaxed);
    if (info.outcome != Outcome::kNone) outcomes[static_cast<int>(info.outcome)].fetch_add(1, std::memory_order_relaxed);
    if (info.truncated) truncated.fetch_add(1, std::memory_order_relaxed);
  }
};

// ---- TCP -------------------------------------------------------------------

namespace asio = boost::asio;
using asio::ip::tcp;

class DnsServer::Tcp {
 public:
  Tcp(DnsServer& server, int slot) : server_(server), slot_(slot) {}

  Status Adopt(int fd) {
    auto acceptor = std::make_unique<tcp::acceptor>(io_);
    boost::system::error_code ec;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    acceptor->assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) return Internal("adopt TCP socket: " + ec.message());
    acceptors_.push_back(std::move(acceptor));
    Accept(*acceptors_.back());
    return Ok();
  }
  void Run() { io_.run(); }
  void Stop() { io_.stop(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(Tcp& t, tcp::socket s) : tcp(t), socket(std::move(s)), timer(t.io_), in(65535), out(2 + 65535) {}
    ~Session() { --tcp.open_; }

    void Start() { ReadLength(); }
    void Arm() {
      timer.expires_after(tcp.server_.options_.tcp_idle_timeout);
      timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->socket.close();
      });
    }
    void ReadLength() {
      Arm();
      asio::async_read(socket, asio::buffer(len, 2), [self = shared_from_this()](boost::system::error_code ec, size_t) {
        if (ec) return self->Close();
        size_t n = static_cast<size_t>(self->len[0]) << 8 | self->len[1];
        if (n == 0) return self->Close();
        self->ReadBody(n);
      });
    }
    void ReadBody(size_t n) {
      asio::async_read(socket, asio::buffer(in.data(), n), [self = shared_from_this(), n](boost::system::error_code ec, size_t) {
        if (ec) return self->Close();
        self->Respond(n);
      });
    }
    void Respond(size_t n) {
      DnsServer& server = tcp.server_;
      const Snapshot* snap = server.holder_.Acquire(tcp.slot_);
      AnswerInfo info;
      size_t size = 0;
      if (snap) size = Answer(*snap, std::span<const uint8_t>(in.data(), n), std::span<uint8_t>(out.data() + 2, 65535),
                              Transport::kTcp, NextRandom(tcp.random_), info);
      server.holder_.Release(tcp.slot_);
      Counters& c = *server.counters_.back();
      if (size == 0) {
        c.dropped.fetch_add(1, std::memory_order_relaxed);
        return ReadLength();  // nothing to say to a response or a runt; wait for the next
      }
      c.Count(Transport::kTcp, info);
      out[0] = static_cast<uint8_t>(size >> 8);
      out[1] = static_cast<uint8_t>(size);
      asio::async_write(socket, asio::buffer(out.data(), size + 2), [self = shared_from_this()](boost::system::error_code ec, size_t) {
        if (ec) return self->Close();
        self->ReadLength();  // pipelined queries are answered in order
      });
    }
    void Close() {
      boost::system::error_code ec;
      timer.cancel();
      socket.close(ec);
    }

    Tcp& tcp;
    tcp::socket socket;
    asio::steady_timer timer;
    uint8_t len[2];
    std::vector<uint8_t> in, out;
  };

  void Accept(tcp::acceptor& a) {
    a.async_accept([this, &a](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (open_ >= server_.options_.max_tcp_connections) {
          s.close();  // over the bound: the client retries or falls back
        } else {
          ++open_;
          std::make_shared<Session>(*this, std::move(s))->Start();
        }
      }
      Accept(a);
    });
  }

  // Declared so that destruction closes the acceptors first, then destroys
  // io_ (and with it pending sessions, which decrement open_).
  DnsServer& server_;
  int slot_;
  size_t open_ = 0;  // only touched on io_'s thread
  uint32_t random_ = 0x9e3779b9;
  asio::io_context io_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
};

// ---- DnsServer ---------------------------------------------------------------

DnsServer::DnsServer(DnsServerOptions options, metrics::Registry& metrics)
    : options_(std::move(options)),
      holder_((options_.workers > 0 ? options_.workers : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) + 1) {
  if (options_.workers <= 0) options_.workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int i = 0; i <= options_.workers; ++i) counters_.push_back(std::make_unique<Counters>());
  RegisterMetrics(metrics);
}

DnsServer::~DnsServer() { Stop(); }

void DnsServer::RegisterMetrics(metrics::Registry& metrics) {
  metrics.AddCounterCallback("lifeboat_dns_queries_total", "DNS queries answered, by transport, type and rcode.",
                             {"transport", "type", "rcode"}, [this] {
                               std::vector<std::pair<metrics::Labels, double>> out;
                               for (int t = 0; t < 2; ++t) {
                                 for (int ty = 0; ty < kTypes; ++ty) {
                                   for (int r = 0; r < kRcodes; ++r) {
                                     uint64_t sum = 0;
                                     for (const auto& c : counters_) sum += c->queries[t][ty][r].load(std::memory_order_relaxed);
                                     if (sum == 0) continue;
                                     out.push_back({{t == 0 ? "udp" : "tcp",
                                                     ty == kTypes - 1 ? "other" : TypeName(kCountedTypes[ty]),
                                                     RcodeName(r)},
                                                    static_cast<double>(sum)});
                                   }
                                 }
                               }
                               return out;
                             });
  metrics.AddCounterCallback("lifeboat_dns_policy_answers_total",
                             "Answers of policy records, by outcome (primary, secondary, healthy, fail-open, nodata).",
                             {"outcome"}, [this] {
                               std::vector<std::pair<metrics::Labels, double>> out;
                               for (int o = 1; o < kOutcomeCount; ++o) {
                                 uint64_t sum = 0;
                                 for (const auto& c : counters_) sum += c->outcomes[o].load(std::memory_order_relaxed);
                                 out.push_back({{OutcomeName(static_cast<Outcome>(o))}, static_cast<double>(sum)});
                               }
                               return out;
                             });
  auto total = [this](std::atomic<uint64_t> Counters::*field) {
    return [this, field] {
      uint64_t sum = 0;
      for (const auto& c : counters_) sum += ((*c).*field).load(std::memory_order_relaxed);
      return std::vector<std::pair<metrics::Labels, double>>{{{}, static_cast<double>(sum)}};
    };
  };
  metrics.AddCounterCallback("lifeboat_dns_truncated_total", "UDP answers sent with TC set.", {},
                             total(&Counters::truncated));
  metrics.AddCounterCallback("lifeboat_dns_dropped_total", "Packets not answered (responses, runts).", {},
                             total(&Counters::dropped));
  metrics.AddCounterCallback("lifeboat_dns_snapshot_swaps_total", "Answer snapshots published.", {}, [this] {
    return std::vector<std::pair<metrics::Labels, double>>{{{}, static_cast<double>(holder_.swaps())}};
  });
}

Status DnsServer::Republish(const plan::Plan& plan, const std::function<bool(const std::string&)>& up) {
  if (!plan.dns) return InvalidArgument("plan " + plan.name + " has no dns section");
  LB_ASSIGN_OR_RETURN(auto snap, Snapshot::Build(*plan.dns, plan, up, ++generation_));
  holder_.Publish(std::move(snap));
  return Ok();
}

Status DnsServer::Start() {
  if (options_.listen.empty()) return InvalidArgument("DNS: no listen address");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return ErrnoError(errno, "eventfd");
  udp_fds_.assign(static_cast<size_t>(options_.workers), {});
  tcp_ = std::make_unique<Tcp>(*this, options_.workers);
  auto fail = [this](Error e) {
    Stop();
    return e;
  };
  for (const Address& wanted : options_.listen) {
    // The first UDP socket picks the port when 0; every other socket uses it.
    // The kernel picks a port free for UDP only: when its TCP twin is taken
    // (an outgoing connection holds it), pick again.
    Address addr = wanted;
    Result<int> tfd = Internal("not bound");
    for (int attempt = 0;; ++attempt) {
      addr = wanted;
      for (int w = 0; w < options_.workers; ++w) {
        auto fd = BindSocket(addr, SOCK_DGRAM, true);
        if (!fd.ok()) return fail(fd.error());
        udp_fds_[static_cast<size_t>(w)].push_back(*fd);
        if (addr.port == 0) addr.port = BoundPort(*fd);
      }
      tfd = BindSocket(addr, SOCK_STREAM, false);
      if (tfd.ok() || wanted.port != 0 || attempt == 20 || tfd.error().code() != Code::kFailedPrecondition) break;
      for (auto& fds : udp_fds_) {
        ::close(fds.back());
        fds.pop_back();
      }
    }
    if (!tfd.ok()) return fail(tfd.error());
    tcp_fds_.push_back(*tfd);
    if (auto s = tcp_->Adopt(*tfd); !s.ok()) return fail(s.error());
    bound_.push_back(addr);
  }
  started_ = true;
  for (int w = 0; w < options_.workers; ++w) {
    threads_.emplace_back([this, w] { UdpWorker(w, udp_fds_[static_cast<size_t>(w)]); });
  }
  threads_.emplace_back([this] { tcp_->Run(); });
  return Ok();
}

void DnsServer::Stop() {
  stopping_ = true;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  }
  if (tcp_) tcp_->Stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  tcp_.reset();  // closes the adopted TCP sockets
  tcp_fds_.clear();
  for (auto& fds : udp_fds_) {
    for (int fd : fds) ::close(fd);
  }
  udp_fds_.clear();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  stop_fd_ = -1;
}

void DnsServer::UdpWorker(int index, std::vector<int> fds) {
  constexpr int kBatch = 32;
  constexpr size_t kIn = 4096;
  std::vector<uint8_t> inbuf(kBatch * kIn), outbuf(kBatch * size_t{kMaxUdpPayload});
  mmsghdr in[kBatch], out[kBatch];
  iovec in_iov[kBatch], out_iov[kBatch];
  sockaddr_storage peers[kBatch];
  uint32_t random = std::random_device{}() | 1;
  Counters& counters = *counters_[static_cast<size_t>(index)];

  // Receives one batch from `fd` (waiting for the first packet if `wait`),
  // answers it and sends the answers. Returns how many were received.
  auto batch = [&](int fd, bool wait) -> int {
    for (int i = 0; i < kBatch; ++i) {
      in_iov[i] = {&inbuf[static_cast<size_t>(i) * kIn], kIn};
      in[i].msg_hdr = {};
      in[i].msg_hdr.msg_name = &peers[i];
      in[i].msg_hdr.msg_namelen = sizeof peers[i];
      in[i].msg_hdr.msg_iov = &in_iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    int got = ::recvmmsg(fd, in, kBatch, wait ? MSG_WAITFORONE : MSG_DONTWAIT, nullptr);
    if (got <= 0) return 0;
    const Snapshot* snap = holder_.Acquire(index);
    int nout = 0;
    for (int i = 0; i < got; ++i) {
      size_t size = 0;
      AnswerInfo info;
      if (snap && !(in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        size = Answer(*snap, std::span<const uint8_t>(&inbuf[static_cast<size_t>(i) * kIn], in[i].msg_len),
                      std::span<uint8_t>(&outbuf[static_cast<size_t>(nout) * kMaxUdpPayload], kMaxUdpPayload),
                      Transport::kUdp, NextRandom(random), info);
      }
      if (size == 0) {
        counters.dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      counters.Count(Transport::kUdp, info);
      out_iov[nout] = {&outbuf[static_cast<size_t>(nout) * kMaxUdpPayload], size};
      out[nout].msg_hdr = {};
      out[nout].msg_hdr.msg_name = &peers[i];
      out[nout].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
      out[nout].msg_hdr.msg_iov = &out_iov[nout];
      out[nout].msg_hdr.msg_iovlen = 1;
      ++nout;
    }
    holder_.Release(index);
    for (int sent = 0; sent < nout;) {
      int r = ::sendmmsg(fd, out + sent, static_cast<unsigned>(nout - sent), 0);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        counters.dropped.fetch_add(static_cast<uint64_t>(nout - sent), std::memory_order_relaxed);
        break;  // a full socket buffer: the client retries
      }
      sent += r;
    }
    return got;
  };

  if (fds.size() == 1) {
    // One socket (the usual case): block in recvmmsg itself, two syscalls
    // per batch. A receive timeout lets the loop notice Stop().
    int fd = fds[0];
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{0, 200'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!stopping_.load(std::memory_order_relaxed)) batch(fd, true);
    return;
  }

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  epoll_event sev{};
  sev.events = EPOLLIN;
  sev.data.fd = stop_fd_;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd_, &sev);
  for (bool stop = false; !stop;) {
    epoll_event events[8];
    int n = ::epoll_wait(ep, events, 8, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int e = 0; e < n; ++e) {
      if (events[e].data.fd == stop_fd_) {
        stop = true;
        continue;
      }
      while (batch(events[e].data.fd, false) == kBatch) {  // drain
      }
    }
  }
  ::close(ep);
}

}  // namespace lifeboat::dns
