#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/fd.h"
#include "proxy/proxy_v2.h"
#include "proxy/route.h"

namespace lifeboat::proxy {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Time = SteadyClock::time_point;
using OJson = nlohmann::ordered_json;

constexpr auto kSweepEvery = std::chrono::milliseconds(100);
// A direction moves at most this many pipe loads before the loop serves
// others; it goes on at the next turn.
constexpr int kRoundsPerTurn = 16;
constexpr size_t kUdpBuffer = 65536;
// A direction copies through user space until one read fills this much.
constexpr size_t kCopyBytes = 16384;
// Empty pipes a loop keeps for its next connections.
constexpr size_t kSparePipes = 512;

std::string Errno(int e = errno) { return std::strerror(e); }

Result<std::pair<sockaddr_storage, socklen_t>> SockAddr(const Address& a) {
  sockaddr_storage ss{};
  if (a.is_ipv6()) {
    auto& s6 = reinterpret_cast<sockaddr_in6&>(ss);
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(a.port);
    if (inet_pton(AF_INET6, a.host.c_str(), &s6.sin6_addr) != 1) return InvalidArgument("not an IP address: " + a.host);
    return std::pair{ss, socklen_t{sizeof(sockaddr_in6)}};
  }
  auto& s4 = reinterpret_cast<sockaddr_in&>(ss);
  s4.sin_family = AF_INET;
  s4.sin_port = htons(a.port);
  if (inet_pton(AF_INET, a.host.c_str(), &s4.sin_addr) != 1) return InvalidArgument("not an IP address: " + a.host);
  return std::pair{ss, socklen_t{sizeof(sockaddr_in)}};
}

uint16_t PortOf(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(ss).sin6_port
                                        : reinterpret_cast<const sockaddr_in&>(ss).sin_port);
}

// What an epoll event is about.
struct Handle {
  enum class Kind : uint8_t { kWake, kTcpListen, kUdpListen, kClient, kBackend, kFlow };
  Kind kind;
  void* owner = nullptr;  // Conn or Flow
  size_t index = 0;       // listener
};

struct Target {
  std::string endpoint, region;
  Address address;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::atomic<double> connect_seconds{-1};  // moving average; -1: never measured
  metrics::Counter* connections = nullptr;
  metrics::Counter* connect_failures = nullptr;
  metrics::Counter* bytes_up = nullptr;    // client to target
  metrics::Counter* bytes_down = nullptr;  // target to client
  metrics::Gauge* active = nullptr;

  void Measured(double seconds) {
    double old = connect_seconds.load(std::memory_order_relaxed);
    connect_seconds.store(old < 0 ? seconds : 0.7 * old + 0.3 * seconds, std::memory_order_relaxed);
  }
};

struct Listener {
  const plan::ProxyListener* spec = nullptr;
  std::vector<std::shared_ptr<Target>> targets;  // shared with the connect-time gauge
  Address bound;
  std::atomic<int> active{0};  // connections or flows, over every loop
  metrics::Counter* refused_limit = nullptr;
  metrics::Counter* refused_no_target = nullptr;
  metrics::Counter* switches = nullptr;
  std::unordered_map<std::string, metrics::Counter*> closed;  // by reason

  mutable std::mutex mu;
  std::shared_ptr<const Route> route;  // guarded by mu

  std::shared_ptr<const Route> Current() const {
    std::lock_guard lock(mu);
    return route;
  }
  void Closed(const char* reason) {
    if (auto it = closed.find(reason); it != closed.end()) it->second->Inc();
  }
};

struct Conn {
  Handle client_h{Handle::Kind::kClient, this};
  Handle backend_h{Handle::Kind::kBackend, this};
  size_t listener = 0;
  UniqueFd client, backend;
  UniqueFd up_r, up_w, down_r, down_w;  // pipes: client to backend, backend to client
  size_t up_bytes = 0, down_bytes = 0;  // in each pipe
  bool client_eof = false, backend_eof = false;    // read their FIN
  bool client_shut = false, backend_shut = false;  // sent them our FIN
  bool connected = false, closed = false, queued = false;
  bool up_bulk = false, down_bulk = false;  // a read filled the copy buffer: splice from now on
  std::vector<size_t> candidates;
  size_t attempt = 0;
  size_t target = SIZE_MAX;  // set once connected
  Time connect_started{}, last_active{};
  std::optional<Time> drain_by;
  sockaddr_storage peer{};
  std::list<std::unique_ptr<Conn>>::iterator self;
};

struct Flow {
  Handle h{Handle::Kind::kFlow, this};
  size_t listener = 0;
  size_t target = 0;
  UniqueFd fd;
  sockaddr_storage client{};
  socklen_t client_len = 0;
  std::string key;
  Time last_active{};
  std::optional<Time> drain_by;
};

class Loop;

}  // namespace

struct Proxy::Impl {
  const plan::Plan& plan;
  ProxyOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<std::unique_ptr<Loop>> loops;
  size_t pipe_size = 65536;

  std::mutex routing_mu;
  traffic::RoutingState routing;  // the last one given; guarded by routing_mu

  std::mutex probe_mu;
  std::condition_variable probe_cv;
  bool stopping = false;  // guarded by probe_mu
  std::thread prober;

  Impl(const plan::Plan& p, ProxyOptions o) : plan(p), options(o) {}
  // Builds every listener's route from `routing` and the measured connect times.
  void Reroute(const traffic::RoutingState& routing, bool wake);
  void ProbeLoop();
  void Stop();
};

namespace {

class Loop {
 public:
  explicit Loop(Proxy::Impl& proxy) : proxy_(proxy) {}
  ~Loop() { Stop(); }

  Status Init(const std::vector<UniqueFd*>& listen_fds) {
    epoll_.Reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return Internal("epoll_create1: " + Errno());
    wake_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_.valid()) return Internal("eventfd: " + Errno());
    LB_RETURN_IF_ERROR(Add(wake_.get(), &wake_h_, EPOLLIN));
    listen_h_.resize(listen_fds.size());
    flows_.resize(listen_fds.size());
    for (size_t i = 0; i < listen_fds.size(); ++i) {
      listen_.push_back(std::move(*listen_fds[i]));
      bool udp = proxy_.listeners[i]->spec->protocol == plan::ListenerProtocol::kUdp;
      listen_h_[i] = Handle{udp ? Handle::Kind::kUdpListen : Handle::Kind::kTcpListen, nullptr, i};
      LB_RETURN_IF_ERROR(Add(listen_.back().get(), &listen_h_[i], EPOLLIN | EPOLLET));
    }
    routes_.resize(listen_fds.size());
    accept_blocked_.assign(listen_fds.size(), false);
    return Ok();
  }

  void Start() { thread_ = std::thread([this] { Run(); }); }

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    Wake();
    thread_.join();
  }

 private:
  Status Add(int fd, Handle* h, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Internal("epoll_ctl: " + Errno());
    return Ok();
  }

  void Run() {
    for (size_t i = 0; i < routes_.size(); ++i) routes_[i] = proxy_.listeners[i]->Current();
    std::vector<epoll_event> events(256);
    Time next_sweep = SteadyClock::now() + kSweepEvery;
    while (!stop_.load(std::memory_order_relaxed)) {
      int timeout = ready_.empty() ? static_cast<int>(kSweepEvery.count()) : 0;
      int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) {
        spdlog::error("proxy: epoll_wait: {}", Errno());
        break;
      }
      now_ = SteadyClock::now();
      for (int i = 0; i < n; ++i) Dispatch(*static_cast<Handle*>(events[i].data.ptr), events[i].events);
      // Connections that used their turn go on now.
      std::vector<Conn*> ready;
      ready.swap(ready_);
      for (Conn* c : ready) {
        c->queued = false;
        if (!c->closed) Forward(*c);
      }
      if (now_ >= next_sweep) {
        Sweep();
        next_sweep = now_ + kSweepEvery;
      }
      graveyard_.clear();
    }
    // Stopping: every connection and flow goes.
    while (!conns_.empty()) Close(*conns_.front(), "stopped", false);
    for (size_t l = 0; l < flows_.size(); ++l) {
      while (!flows_[l].empty()) DropFlow(*flows_[l].begin()->second, "stopped");
    }
    graveyard_.clear();
  }

  void Dispatch(Handle& h, uint32_t events) {
    switch (h.kind) {
      case Handle::Kind::kWake: {
        uint64_t v;
        while (::read(wake_.get(), &v, sizeof v) > 0) {
        }
        Reroute();
        return;
      }
      case Handle::Kind::kTcpListen: AcceptAll(h.index); return;
      case Handle::Kind::kUdpListen: ReadClients(h.index); return;
      case Handle::Kind::kClient:
      case Handle::Kind::kBackend: {
        auto& c = *static_cast<Conn*>(h.owner);
        if (c.closed) return;
        if (!c.connected) {
          if (h.kind == Handle::Kind::kBackend) {
            Connected(c, events);
          } else if (events & (EPOLLERR | EPOLLHUP)) {
            Close(c, "reset", false);  // the client went before its target answered
          }
          return;
        }
        // Readable (or ended) moves the direction this socket sends into;
        // writable the one it receives from.
        const bool in = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
        const bool out = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
        const bool client = h.kind == Handle::Kind::kClient;
        Forward(c, client ? in : out, client ? out : in);
        return;
      }
      case Handle::Kind::kFlow: ReadTarget(*static_cast<Flow*>(h.owner)); return;
    }
  }

  // ---- TCP ---------------------------------------------------------------

  void AcceptAll(size_t l) {
    Listener& L = *proxy_.listeners[l];
    for (;;) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      int fd = accept4(listen_[l].get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the clients wait in the backlog and are
          // accepted at the next sweep (an edge-triggered listener would
          // not report them again).
          if (!accept_blocked_[l]) spdlog::warn("proxy: {}: accept: {}; retrying", L.spec->name, Errno());
          accept_blocked_[l] = true;
        } else if (errno != EAGAIN) {
          spdlog::warn("proxy: {}: accept: {}", L.spec->name, Errno());
        }
        return;
      }
      accept_blocked_[l] = false;
      UniqueFd client(fd);
      if (L.active.load(std::memory_order_relaxed) >= L.spec->max_connections) {
        // Refused cleanly: the client reads an end of stream at once.
        L.refused_limit->Inc();
        continue;
      }
      auto c = std::make_unique<Conn>();
      c->listener = l;
      c->client = std::move(client);
      c->peer = peer;
      c->last_active = now_;
      routes_[l]->Candidates(static_cast<uint32_t>(rng_()), c->candidates);
      if (c->candidates.empty()) {
        L.refused_no_target->Inc();
        Reset(c->client.get());
        continue;
      }
      int one = 1;
      setsockopt(c->client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      L.active.fetch_add(1, std::memory_order_relaxed);
      conns_.push_back(std::move(c));
      Conn& conn = *conns_.back();
      conn.self = std::prev(conns_.end());
      if (!Add(conn.client.get(), &conn.client_h, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET).ok()) {
        Close(conn, "reset", true);
        continue;
      }
      Connect(conn);
    }
  }

  // Starts a connect to the connection's next candidate; closes the
  // connection when none is left.
  void Connect(Conn& c) {
    Listener& L = *proxy_.listeners[c.listener];
    while (c.attempt < c.candidates.size()) {
      Target& t = *L.targets[c.candidates[c.attempt]];
      UniqueFd fd(socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) {
        spdlog::warn("proxy: {}: socket: {}", L.spec->name, Errno());
        break;
      }
      int one = 1;
      setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int r = connect(fd.get(), reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len);
      if (r == 0 || errno == EINPROGRESS) {
        c.backend = std::move(fd);
        c.connect_started = now_;
        if (Add(c.backend.get(), &c.backend_h, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET).ok()) return;
        c.backend.Reset();
        break;
      }
      t.connect_failures->Inc();
      ++c.attempt;
    }
    if (c.attempt >= c.candidates.size()) L.refused_no_target->Inc();
    Close(c, "no_target", true);
  }

  void ConnectFailed(Conn& c) {
    Listener& L = *proxy_.listeners[c.listener];
    L.targets[c.candidates[c.attempt]]->connect_failures->Inc();
    c.backend.Reset();  // closing removes it from the epoll set
    ++c.attempt;
    Connect(c);
  }

  void Connected(Conn& c, uint32_t events) {
    // Writable without an error is connected (the common case: no syscall);
    // an error or hang-up is read from the socket.
    if (events & (EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c.backend.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0 || (events & EPOLLHUP)) return ConnectFailed(c);
    }
    if (!(events & EPOLLOUT)) return;  // not yet
    Listener& L = *proxy_.listeners[c.listener];
    const size_t t = c.candidates[c.attempt];
    Target& T = *L.targets[t];
    T.Measured(std::chrono::duration<double>(now_ - c.connect_started).count());
    if (!TakePipe(c.up_r, c.up_w) || !TakePipe(c.down_r, c.down_w)) return Close(c, "reset", true);
    c.connected = true;
    c.target = t;
    c.last_active = now_;
    T.connections->Inc();
    T.active->Inc();
    if (L.spec->proxy_protocol) {
      sockaddr_storage local{};
      socklen_t llen = sizeof local;
      getsockname(c.client.get(), reinterpret_cast<sockaddr*>(&local), &llen);
      auto header = ProxyV2Header(c.peer, local);
      // A new connection's send buffer takes a few dozen bytes at once.
      if (send(c.backend.get(), header.data(), header.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(header.size())) {
        return Close(c, "reset", true);
      }
    }
    // A route change while connecting: this target may already be out.
    if (routes_[c.listener]->state[t] == TargetState::kDown) return Close(c, "target_down", true);
    if (routes_[c.listener]->state[t] == TargetState::kStandby) c.drain_by = now_ + L.spec->drain;
    Forward(c);
  }

  // Moves what `src` has through the pipe to `dst`. Returns false on an
  // error of either socket; `rounds` counts pipe loads against the turn.
  // A read that moved nothing: 0 is the source's FIN (progress), EAGAIN or
  // EINTR waits for the next edge; false for an error.
  static bool EndOrWait(ssize_t n, bool& src_eof, bool& progress) {
    if (n == 0) {
      src_eof = true;
      progress = true;
      return true;
    }
    return errno == EAGAIN || errno == EINTR;
  }

  // `other_done`: the other direction has ended too (its FIN passed on).
  bool Pump(int src, int dst, int pr, int pw, size_t& in_pipe, bool& src_eof, bool& dst_shut, bool other_done,
            bool& bulk, metrics::Counter* bytes, int& rounds, bool& moved) {
    for (; rounds < kRoundsPerTurn; ++rounds) {
      bool progress = false;
      if (in_pipe > 0) {
        ssize_t n = splice(pr, nullptr, dst, nullptr, in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          in_pipe -= static_cast<size_t>(n);
          bytes->Inc(static_cast<double>(n));
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          return false;
        }
      }
      if (!src_eof && in_pipe == 0 && !bulk) {
        // Until a read fills the copy buffer, a direction copies: for a
        // request or a reply, a recv and a send cost less than two splices.
        // What the destination does not take goes into the (empty) pipe,
        // which is written out first from then on.
        ssize_t n = recv(src, buf_, kCopyBytes, 0);
        if (n > 0) {
          ssize_t w = send(dst, buf_, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
          if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) return false;
            w = 0;
          }
          if (w > 0) bytes->Inc(static_cast<double>(w));
          if (w < n) {
            const size_t rest = static_cast<size_t>(n - w);
            // Counted before checking: a pipe holding any byte is never
            // handed to another connection (GivePipe).
            in_pipe = rest;
            if (::write(pw, buf_ + w, rest) != static_cast<ssize_t>(rest)) return false;
          }
          bulk = static_cast<size_t>(n) == kCopyBytes;
          progress = true;
        } else if (!EndOrWait(n, src_eof, progress)) {
          return false;
        }
      } else if (!src_eof && in_pipe < proxy_.pipe_size) {
        ssize_t n = splice(src, nullptr, pw, nullptr, proxy_.pipe_size - in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          in_pipe += static_cast<size_t>(n);
          progress = true;
        } else if (!EndOrWait(n, src_eof, progress)) {
          return false;
        }
      }
      if (src_eof && in_pipe == 0 && !dst_shut) {
        // The half-close goes on; when it is the last one, the close that
        // follows says as much.
        if (!other_done) shutdown(dst, SHUT_WR);
        dst_shut = true;
      }
      if (!progress) return true;
      moved = true;
    }
    return true;
  }

  // Moves what can move in the directions asked: `up` (client to target),
  // `down` (back). An event asks only for the directions its socket can
  // unblock: the others wait for their own edges.
  void Forward(Conn& c, bool up = true, bool down = true) {
    Listener& L = *proxy_.listeners[c.listener];
    Target& T = *L.targets[c.target];
    int rounds = 0, rounds_down = 0;
    bool moved = false;
    bool ok = !up || Pump(c.client.get(), c.backend.get(), c.up_r.get(), c.up_w.get(), c.up_bytes, c.client_eof,
                          c.backend_shut, c.client_shut, c.up_bulk, T.bytes_up, rounds, moved);
    ok = ok && (!down || Pump(c.backend.get(), c.client.get(), c.down_r.get(), c.down_w.get(), c.down_bytes,
                              c.backend_eof, c.client_shut, c.backend_shut, c.down_bulk, T.bytes_down, rounds_down,
                              moved));
    if (!ok) return Close(c, "reset", true);
    if (moved) c.last_active = now_;
    if (c.client_shut && c.backend_shut) return Close(c, "done", false);
    if ((rounds >= kRoundsPerTurn || rounds_down >= kRoundsPerTurn) && !c.queued) {
      c.queued = true;
      ready_.push_back(&c);
    }
  }

  // Pipes are kept for the next connection once empty: a short connection
  // then costs no pipe2 and no four closes.
  bool TakePipe(UniqueFd& r, UniqueFd& w) {
    if (!spare_pipes_.empty()) {
      r = std::move(spare_pipes_.back().first);
      w = std::move(spare_pipes_.back().second);
      spare_pipes_.pop_back();
      return true;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    r.Reset(p[0]);
    w.Reset(p[1]);
    return true;
  }
  void GivePipe(UniqueFd& r, UniqueFd& w, size_t in_pipe) {
    if (r.valid() && w.valid() && in_pipe == 0 && spare_pipes_.size() < kSparePipes) {
      spare_pipes_.emplace_back(std::move(r), std::move(w));
    }
    r.Reset();
    w.Reset();
  }

  static void Reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

  void Close(Conn& c, const char* reason, bool reset) {
    if (c.closed) return;
    c.closed = true;
    Listener& L = *proxy_.listeners[c.listener];
    if (reset) {
      Reset(c.client.get());
      if (c.backend.valid()) Reset(c.backend.get());
    }
    if (c.connected) L.targets[c.target]->active->Dec();
    L.active.fetch_sub(1, std::memory_order_relaxed);
    L.Closed(reason);
    c.client.Reset();
    c.backend.Reset();
    GivePipe(c.up_r, c.up_w, c.up_bytes);
    GivePipe(c.down_r, c.down_w, c.down_bytes);
    // A connection waiting for its next turn leaves the queue: it is freed
    // at the end of this turn and the queue is served in the next.
    if (c.queued) {
      if (auto it = std::find(ready_.begin(), ready_.end(), &c); it != ready_.end()) ready_.erase(it);
      c.queued = false;
    }
    // Freed after this turn: events of this turn may still name it.
    graveyard_.splice(graveyard_.end(), conns_, c.self);
  }

  // ---- UDP ---------------------------------------------------------------

  static std::string KeyOf(const sockaddr_storage& a, socklen_t len) {
    return std::string(reinterpret_cast<const char*>(&a), len);
  }

  void ReadClients(size_t l) {
    Listener& L = *proxy_.listeners[l];
    for (;;) {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(listen_[l].get(), buf_, sizeof buf_, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      std::string key = KeyOf(from, len);
      auto it = flows_[l].find(key);
      Flow* f = it == flows_[l].end() ? NewFlow(l, from, len, key) : it->second.get();
      if (f == nullptr) continue;
      f->last_active = now_;
      Target& T = *L.targets[f->target];
      if (send(f->fd.get(), buf_, static_cast<size_t>(n), 0) == n) T.bytes_up->Inc(static_cast<double>(n));
    }
  }

  Flow* NewFlow(size_t l, const sockaddr_storage& from, socklen_t len, const std::string& key) {
    Listener& L = *proxy_.listeners[l];
    if (L.active.load(std::memory_order_relaxed) >= L.spec->max_connections) {
      L.refused_limit->Inc();
      return nullptr;
    }
    routes_[l]->Candidates(static_cast<uint32_t>(rng_()), scratch_);
    for (size_t t : scratch_) {
      Target& T = *L.targets[t];
      UniqueFd fd(socket(T.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid() || connect(fd.get(), reinterpret_cast<const sockaddr*>(&T.addr), T.addr_len) != 0) {
        T.connect_failures->Inc();
        continue;
      }
      auto f = std::make_unique<Flow>();
      f->listener = l;
      f->target = t;
      f->fd = std::move(fd);
      f->client = from;
      f->client_len = len;
      f->key = key;
      f->last_active = now_;
      if (!Add(f->fd.get(), &f->h, EPOLLIN | EPOLLET).ok()) return nullptr;
      T.connections->Inc();
      T.active->Inc();
      L.active.fetch_add(1, std::memory_order_relaxed);
      if (routes_[l]->state[t] == TargetState::kStandby) f->drain_by = now_ + L.spec->drain;
      return flows_[l].emplace(key, std::move(f)).first->second.get();
    }
    L.refused_no_target->Inc();
    return nullptr;
  }

  void ReadTarget(Flow& f) {
    Listener& L = *proxy_.listeners[f.listener];
    Target& T = *L.targets[f.target];
    for (;;) {
      ssize_t n = recv(f.fd.get(), buf_, sizeof buf_, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED) {
          // The target's port is closed (an ICMP error): the client's next
          // datagram starts a new flow.
          T.connect_failures->Inc();
          return DropFlow(f, "reset");
        }
        return;
      }
      f.last_active = now_;
      if (sendto(listen_[f.listener].get(), buf_, static_cast<size_t>(n), 0,
                 reinterpret_cast<const sockaddr*>(&f.client), f.client_len) == n) {
        T.bytes_down->Inc(static_cast<double>(n));
      }
    }
  }

  void DropFlow(Flow& f, const char* reason) {
    Listener& L = *proxy_.listeners[f.listener];
    L.targets[f.target]->active->Dec();
    L.active.fetch_sub(1, std::memory_order_relaxed);
    L.Closed(reason);
    auto& table = flows_[f.listener];
    auto it = table.find(f.key);
    dead_flows_.push_back(std::move(it->second));  // events of this turn may still name it
    table.erase(it);
    dead_flows_.back()->fd.Reset();
  }

  // ---- Route changes and time -------------------------------------------

  void Reroute() {
    for (size_t l = 0; l < routes_.size(); ++l) {
      auto route = proxy_.listeners[l]->Current();
      if (route == routes_[l]) continue;
      routes_[l] = route;
      const Duration drain = proxy_.listeners[l]->spec->drain;
      for (auto it = conns_.begin(); it != conns_.end();) {
        Conn& c = **it++;  // Close moves it away
        if (c.listener != l || !c.connected) continue;
        switch (route->state[c.target]) {
          case TargetState::kDown: Close(c, "target_down", true); break;
          case TargetState::kStandby:
            if (!c.drain_by) c.drain_by = now_ + drain;
            break;
          case TargetState::kActive: c.drain_by.reset(); break;
        }
      }
      std::vector<Flow*> down;
      for (auto& [key, f] : flows_[l]) {
        switch (route->state[f->target]) {
          case TargetState::kDown: down.push_back(f.get()); break;
          case TargetState::kStandby:
            if (!f->drain_by) f->drain_by = now_ + drain;
            break;
          case TargetState::kActive: f->drain_by.reset(); break;
        }
      }
      for (Flow* f : down) DropFlow(*f, "target_down");
    }
  }

  void Sweep() {
    for (size_t l = 0; l < accept_blocked_.size(); ++l) {
      if (accept_blocked_[l]) AcceptAll(l);
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn& c = **it++;
      const plan::ProxyListener& spec = *proxy_.listeners[c.listener]->spec;
      if (!c.connected) {
        if (c.backend.valid() && now_ - c.connect_started > spec.connect_timeout) ConnectFailed(c);
      } else if (c.drain_by && now_ >= *c.drain_by) {
        Close(c, "drained", false);
      } else if (now_ - c.last_active > spec.idle_timeout) {
        Close(c, "idle", true);
      }
    }
    for (size_t l = 0; l < flows_.size(); ++l) {
      const plan::ProxyListener& spec = *proxy_.listeners[l]->spec;
      std::vector<std::pair<Flow*, const char*>> gone;
      for (auto& [key, f] : flows_[l]) {
        if (f->drain_by && now_ >= *f->drain_by) {
          gone.push_back({f.get(), "drained"});
        } else if (now_ - f->last_active > spec.idle_timeout) {
          gone.push_back({f.get(), "idle"});
        }
      }
      for (auto [f, reason] : gone) DropFlow(*f, reason);
    }
    dead_flows_.clear();
  }

  Proxy::Impl& proxy_;
  UniqueFd epoll_, wake_;
  Handle wake_h_{Handle::Kind::kWake};
  std::vector<UniqueFd> listen_;
  std::vector<Handle> listen_h_;
  std::vector<std::shared_ptr<const Route>> routes_;  // this loop's copy, per listener
  std::vector<bool> accept_blocked_;                   // per listener: accept ran out of descriptors
  std::list<std::unique_ptr<Conn>> conns_, graveyard_;
  std::vector<Conn*> ready_;
  std::vector<std::pair<UniqueFd, UniqueFd>> spare_pipes_;  // empty pipes: read end, write end
  std::vector<std::unordered_map<std::string, std::unique_ptr<Flow>>> flows_;  // per listener, by client
  std::vector<std::unique_ptr<Flow>> dead_flows_;
  std::vector<size_t> scratch_;
  std::minstd_rand rng_{std::random_device{}()};
  char buf_[kUdpBuffer];
  Time now_ = SteadyClock::now();
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A socket of the listener bound to `a`; `shared` sets SO_REUSEPORT so that
// every loop binds its own.
Result<UniqueFd> Bind(const Address& a, bool udp, bool shared = true) {
  auto sa = SockAddr(a);
  if (!sa.ok()) return sa.error();
  UniqueFd fd(socket(sa->first.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Internal("socket: " + Errno());
  int one = 1;
  // TCP: a restart binds over its old connections' TIME_WAIT. Not for UDP,
  // where SO_REUSEADDR alone lets two sockets share a port.
  if (!udp) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (shared && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return Internal("SO_REUSEPORT: " + Errno());
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa->first), sa->second) != 0) {
    int e = errno;
    return Error(e == EADDRINUSE ? Code::kFailedPrecondition : e == EACCES ? Code::kPermissionDenied : Code::kInternal,
                 "cannot listen on " + a.ToString() + " (" + (udp ? "udp" : "tcp") + "): " + Errno(e));
  }
  if (shared && !udp && listen(fd.get(), 4096) != 0) return Internal("listen on " + a.ToString() + ": " + Errno());
  return fd;
}

}  // namespace

void Proxy::Impl::Reroute(const traffic::RoutingState& r, bool wake) {
  for (auto& L : listeners) {
    std::vector<double> seconds;
    for (auto& t : L->targets) seconds.push_back(t->connect_seconds.load(std::memory_order_relaxed));
    auto route = std::make_shared<const Route>(MakeRoute(plan, *L->spec, r, seconds));
    std::shared_ptr<const Route> old;
    {
      std::lock_guard lock(L->mu);
      old = L->route;
      L->route = route;
    }
    if (old && !old->SameChoice(*route)) {
      L->switches->Inc();
      std::string to;
      for (size_t i : route->first) to += (to.empty() ? "" : ", ") + L->targets[i]->endpoint;
      spdlog::info("proxy: {} now sends new connections to {}{}", L->spec->name, to.empty() ? "nobody" : to,
                   route->failed_open ? " (no endpoint up: failing open)" : "");
    }
  }
  if (wake) {
    for (auto& loop : loops) loop->Wake();
  }
}

void Proxy::Impl::ProbeLoop() {
  std::unique_lock lock(probe_mu);
  while (!stopping) {
    lock.unlock();
    bool measured = false;
    for (auto& L : listeners) {
      if (L->spec->policy != plan::ProxyPolicy::kNearest || L->spec->protocol != plan::ListenerProtocol::kTcp) continue;
      for (auto& t : L->targets) {
        UniqueFd fd(socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd.valid()) continue;
        auto start = SteadyClock::now();
        int r = connect(fd.get(), reinterpret_cast<const sockaddr*>(&t->addr), t->addr_len);
        if (r != 0 && errno != EINPROGRESS) continue;
        pollfd p{fd.get(), POLLOUT, 0};
        int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(L->spec->connect_timeout).count());
        if (poll(&p, 1, ms) != 1) continue;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) continue;
        t->Measured(std::chrono::duration<double>(SteadyClock::now() - start).count());
        measured = true;
      }
    }
    if (measured) {
      std::lock_guard rl(routing_mu);
      Reroute(routing, true);
    }
    lock.lock();
    probe_cv.wait_for(lock, options.probe_interval, [this] { return stopping; });
  }
}

void Proxy::Impl::Stop() {
  {
    std::lock_guard lock(probe_mu);
    stopping = true;
  }
  probe_cv.notify_all();
  if (prober.joinable()) prober.join();
  for (auto& loop : loops) loop->Stop();
}

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Proxy::~Proxy() { impl_->Stop(); }

Result<std::unique_ptr<Proxy>> Proxy::Start(const plan::Plan& plan, metrics::Registry& metrics,
                                            const traffic::RoutingState& routing, ProxyOptions options) {
  if (!plan.proxy || plan.proxy->listeners.empty()) return InvalidArgument("the plan has no proxy listeners");
  // A peer that resets while a splice writes to it must not kill the process.
  signal(SIGPIPE, SIG_IGN);
  // Six descriptors a TCP connection (two sockets, two pipes).
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  {
    // Six descriptors a TCP connection, two a UDP flow.
    uint64_t need = 64;
    for (const auto& l : plan.proxy->listeners) {
      need += static_cast<uint64_t>(l.max_connections) * (l.protocol == plan::ListenerProtocol::kTcp ? 6 : 2);
    }
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < need) {
      spdlog::warn("proxy: the listeners' max_connections need up to {} file descriptors, the limit is {}: "
                   "raise it (LimitNOFILE=, ulimit -n) or lower max_connections; past it, clients wait to be accepted",
                   need, nofile.rlim_cur);
    }
  }
  auto impl = std::make_unique<Impl>(plan, options);
  int threads = options.threads > 0 ? options.threads : plan.proxy->threads;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  auto& connections = metrics.AddCounter("lifeboat_proxy_connections_total",
                                         "Connections (udp: flows) the proxy opened to each target",
                                         {"listener", "target"});
  auto& failures = metrics.AddCounter("lifeboat_proxy_connect_failures_total",
                                      "Connects to a target that were refused, failed or timed out (the next "
                                      "target was tried)",
                                      {"listener", "target"});
  auto& bytes = metrics.AddCounter("lifeboat_proxy_bytes_total", "Bytes forwarded, by direction (up: client to target)",
                                   {"listener", "target", "direction"});
  auto& active = metrics.AddGauge("lifeboat_proxy_active_connections",
                                  "Connections (udp: flows) open to each target now", {"listener", "target"});
  auto& refused = metrics.AddCounter("lifeboat_proxy_refused_total",
                                     "Clients turned away: limit (max_connections reached), no_target (no target "
                                     "accepted the connection)",
                                     {"listener", "reason"});
  auto& closed = metrics.AddCounter("lifeboat_proxy_closed_total",
                                    "Connections and flows that ended, by why: done, reset, idle, drained, "
                                    "target_down, no_target, stopped",
                                    {"listener", "reason"});
  auto& switches = metrics.AddCounter("lifeboat_proxy_switches_total",
                                      "Times a listener's choice of targets for new connections changed",
                                      {"listener"});
  // Bind each listener once per loop; a port 0 becomes the first socket's port.
  std::vector<std::vector<UniqueFd>> fds(static_cast<size_t>(threads));
  for (const auto& spec : plan.proxy->listeners) {
    auto L = std::make_unique<Listener>();
    L->spec = &spec;
    if (spec.endpoints.empty()) return InvalidArgument("proxy listener " + spec.name + " has no endpoints");
    for (const auto& wt : spec.endpoints) {
      const plan::Endpoint* ep = plan.FindEndpoint(wt.endpoint);
      if (ep == nullptr) return InvalidArgument("proxy listener " + spec.name + ": no endpoint " + wt.endpoint);
      auto t = std::make_shared<Target>();
      t->endpoint = ep->name;
      t->region = ep->region;
      t->address = ep->address;
      auto sa = SockAddr(ep->address);
      if (!sa.ok()) return InvalidArgument("proxy listener " + spec.name + ": endpoint " + ep->name + ": " + sa.error().message());
      t->addr = sa->first;
      t->addr_len = sa->second;
      t->connections = &connections.With({spec.name, ep->name});
      t->connect_failures = &failures.With({spec.name, ep->name});
      t->bytes_up = &bytes.With({spec.name, ep->name, "up"});
      t->bytes_down = &bytes.With({spec.name, ep->name, "down"});
      t->active = &active.With({spec.name, ep->name});
      L->targets.push_back(std::move(t));
    }
    L->refused_limit = &refused.With({spec.name, "limit"});
    L->refused_no_target = &refused.With({spec.name, "no_target"});
    L->switches = &switches.With({spec.name});
    for (const char* reason : {"done", "reset", "idle", "drained", "target_down", "no_target", "stopped"}) {
      L->closed[reason] = &closed.With({spec.name, reason});
    }
    const bool udp = spec.protocol == plan::ListenerProtocol::kUdp;
    Address at = spec.listen;
    {
      // SO_REUSEPORT would let another process of this user (a second agent
      // on the host) share the port silently, each taking some of the
      // clients: a plain bind first says whether anyone holds it.
      auto probe = Bind(at, udp, false);
      if (!probe.ok()) return probe.error().Wrap("proxy listener " + spec.name);
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(probe->get(), reinterpret_cast<sockaddr*>(&ss), &len);
      at.port = PortOf(ss);
    }
    for (int i = 0; i < threads; ++i) {
      auto fd = Bind(at, udp);
      if (!fd.ok()) return fd.error().Wrap("proxy listener " + spec.name);
      if (i == 0) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
        at.port = PortOf(ss);
        L->bound = at;
      }
      fds[static_cast<size_t>(i)].push_back(std::move(*fd));
    }
    impl->listeners.push_back(std::move(L));
  }
  // The gauge holds the targets, not the proxy: the registry outlives it.
  std::vector<std::pair<metrics::Labels, std::shared_ptr<Target>>> measured;
  for (auto& L : impl->listeners) {
    for (auto& t : L->targets) measured.push_back({{L->spec->name, t->endpoint}, t});
  }
  metrics.AddGaugeCallback("lifeboat_proxy_target_connect_seconds",
                           "Moving average of the time to connect to each target (what nearest goes by)",
                           {"listener", "target"}, [measured] {
                             std::vector<std::pair<metrics::Labels, double>> out;
                             for (const auto& [labels, t] : measured) {
                               double s = t->connect_seconds.load(std::memory_order_relaxed);
                               if (s >= 0) out.push_back({labels, s});
                             }
                             return out;
                           });
  {
    UniqueFd probe[2];
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      probe[0].Reset(p[0]);
      probe[1].Reset(p[1]);
      int size = fcntl(p[0], F_GETPIPE_SZ);
      if (size > 0) impl->pipe_size = static_cast<size_t>(size);
    }
  }
  {
    std::lock_guard lock(impl->routing_mu);
    impl->routing = routing;
    impl->Reroute(routing, false);
  }
  for (int i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Loop>(*impl);
    std::vector<UniqueFd*> mine;
    for (auto& fd : fds[static_cast<size_t>(i)]) mine.push_back(&fd);
    LB_RETURN_IF_ERROR(loop->Init(mine));
    impl->loops.push_back(std::move(loop));
  }
  for (auto& loop : impl->loops) loop->Start();
  bool nearest = false;
  for (auto& L : impl->listeners) nearest = nearest || L->spec->policy == plan::ProxyPolicy::kNearest;
  if (nearest) impl->prober = std::thread([raw = impl.get()] { raw->ProbeLoop(); });
  for (auto& L : impl->listeners) {
    spdlog::info("proxy: {} listening on {} ({}, {} policy, {} endpoint(s), {} loop(s))", L->spec->name,
                 L->bound.ToString(), plan::Name(L->spec->protocol), plan::Name(L->spec->policy), L->targets.size(),
                 threads);
  }
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

void Proxy::Update(const traffic::RoutingState& routing) {
  std::lock_guard lock(impl_->routing_mu);
  impl_->routing = routing;
  impl_->Reroute(routing, true);
}

std::vector<std::pair<std::string, Address>> Proxy::bound() const {
  std::vector<std::pair<std::string, Address>> out;
  for (auto& L : impl_->listeners) out.emplace_back(L->spec->name, L->bound);
  return out;
}

OJson Proxy::StatusJson() const {
  OJson listeners = OJson::array();
  for (auto& L : impl_->listeners) {
    auto route = L->Current();
    OJson targets = OJson::array();
    for (size_t i = 0; i < L->targets.size(); ++i) {
      const Target& t = *L->targets[i];
      double s = t.connect_seconds.load(std::memory_order_relaxed);
      targets.push_back({{"endpoint", t.endpoint},
                         {"region", t.region},
                         {"address", t.address.ToString()},
                         {"state", route ? Name(route->state[i]) : "?"},
                         {"active", t.active->value()},
                         {"connections", t.connections->value()},
                         {"connect_failures", t.connect_failures->value()},
                         {"bytes_up", t.bytes_up->value()},
                         {"bytes_down", t.bytes_down->value()},
                         {"connect_ms", s >= 0 ? OJson(s * 1000) : OJson()}});
    }
    OJson first = OJson::array();
    if (route) {
      for (size_t i : route->first) first.push_back(L->targets[i]->endpoint);
    }
    listeners.push_back({{"name", L->spec->name},
                         {"listen", L->bound.ToString()},
                         {"protocol", plan::Name(L->spec->protocol)},
                         {"policy", plan::Name(L->spec->policy)},
                         {"routing_generation", route ? route->generation : 0},
                         {"sends_to", first},
                         {"failed_open", route && route->failed_open},
                         {"active", L->active.load(std::memory_order_relaxed)},
                         {"refused", L->refused_limit->value() + L->refused_no_target->value()},
                         {"switches", L->switches->value()},
                         {"targets", targets}});
  }
  return {{"listeners", listeners}};
}

}  // namespace lifeboat::proxy
