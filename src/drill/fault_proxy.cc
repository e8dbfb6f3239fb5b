#include "drill/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace lifeboat::drill {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Bytes read but not yet delivered, a direction: the reader stops reading
// above this, so a stalled side pushes back on the other as TCP would.
constexpr size_t kMaxQueued = 1 << 20;

struct FaultProxy::Pipe {
  int src = -1, dst = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<SteadyClock::time_point, std::string>> queue;
  size_t queued = 0;
  bool eof = false;  // the reader is done: the writer half-closes once the queue is empty
};

struct FaultProxy::Conn {
  UniqueFd client, server;
  Pipe up, down;
  std::vector<std::thread> threads;
  void ShutdownAll() {
    if (client.valid()) ::shutdown(client.get(), SHUT_RDWR);
    if (server.valid()) ::shutdown(server.get(), SHUT_RDWR);
  }
};

namespace {

Result<UniqueFd> ConnectTo(const Address& to) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(to.port);
  if (::inet_pton(AF_INET, to.host.c_str(), &a.sin_addr) != 1) {
    return InvalidArgument("the fault proxy forwards to IPv4 addresses, not " + to.ToString());
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    return ErrnoError(errno, "connect to " + to.ToString());
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(const Address& upstream) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd.get(), 64) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return ErrnoError(errno, "listen on 127.0.0.1 for the fault proxy");
  }
  std::unique_ptr<FaultProxy> p(new FaultProxy(upstream, std::move(fd), ntohs(a.sin_port)));
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

FaultProxy::FaultProxy(Address upstream, UniqueFd listener, uint16_t port)
    : upstream_(std::move(upstream)), listener_(std::move(listener)), port_(port) {}

FaultProxy::~FaultProxy() {
  stop_ = true;
  linked_cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard lock(mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) {
    c->ShutdownAll();
    c->up.cv.notify_all();
    c->down.cv.notify_all();
  }
  for (auto& c : conns) {
    for (auto& t : c->threads) t.join();
  }
}

void FaultProxy::Cut(bool cut) {
  {
    std::lock_guard lock(mu_);
    cut_ = cut;
  }
  linked_cv_.notify_all();
}

void FaultProxy::Shape(Duration delay, uint64_t bytes_per_second) {
  std::lock_guard lock(mu_);
  delay_ = delay;
  rate_ = bytes_per_second;
}

FaultProxy::Stats FaultProxy::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool FaultProxy::WaitLinked() {
  std::unique_lock lock(mu_);
  linked_cv_.wait(lock, [&] { return !cut_ || stop_; });
  return !stop_;
}

void FaultProxy::AcceptLoop() {
  while (!stop_) {
    pollfd pfd{listener_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) continue;
    auto conn = std::make_unique<Conn>();
    conn->client = std::move(client);
    Conn& c = *conn;
    {
      std::lock_guard lock(mu_);
      ++stats_.connections;
      conns_.push_back(std::move(conn));
    }
    // The connection to upstream waits out a cut (a SYN behind a dropped
    // route); then the two directions run on their own.
    c.threads.emplace_back([this, &c] {
      if (!WaitLinked()) return;
      auto server = ConnectTo(upstream_);
      if (!server.ok()) {
        c.ShutdownAll();
        return;
      }
      c.server = std::move(*server);
      c.up.src = c.client.get();
      c.up.dst = c.server.get();
      c.down.src = c.server.get();
      c.down.dst = c.client.get();
      std::thread up_writer([this, &c] { WriteLoop(c, c.up); });
      std::thread down_reader([this, &c] { ReadLoop(c.down); });
      std::thread down_writer([this, &c] { WriteLoop(c, c.down); });
      ReadLoop(c.up);
      up_writer.join();
      down_reader.join();
      down_writer.join();
    });
  }
}

void FaultProxy::ReadLoop(Pipe& p) {
  std::string buf(16384, '\0');
  while (!stop_) {
    if (!WaitLinked()) break;
    {
      std::unique_lock lock(p.mu);
      if (p.queued >= kMaxQueued) {
        p.cv.wait_for(lock, 20ms);
        continue;
      }
    }
    pollfd pfd{p.src, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    {
      std::lock_guard lock(mu_);
      if (cut_) continue;  // cut while waiting: leave the bytes where they are
    }
    ssize_t n = ::read(p.src, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    Duration delay;
    {
      std::lock_guard lock(mu_);
      delay = delay_;
    }
    std::lock_guard lock(p.mu);
    if (n <= 0) {
      p.eof = true;
      p.cv.notify_all();
      return;
    }
    p.queue.emplace_back(SteadyClock::now() + delay, buf.substr(0, static_cast<size_t>(n)));
    p.queued += static_cast<size_t>(n);
    p.cv.notify_all();
  }
  std::lock_guard lock(p.mu);
  p.eof = true;
  p.cv.notify_all();
}

void FaultProxy::WriteLoop(Conn& c, Pipe& p) {
  for (;;) {
    std::string chunk;
    uint64_t rate;
    {
      std::unique_lock lock(p.mu);
      p.cv.wait_for(lock, 50ms, [&] { return !p.queue.empty() || p.eof || stop_; });
      if (stop_) return;
      if (p.queue.empty()) {
        if (!p.eof) continue;
        ::shutdown(p.dst, SHUT_WR);  // the other side's end, passed on
        return;
      }
      auto due = p.queue.front().first;
      if (SteadyClock::now() < due) {
        p.cv.wait_until(lock, due);
        continue;
      }
      {
        std::lock_guard l(mu_);
        rate = rate_;
        if (cut_) {
          lock.unlock();
          WaitLinked();
          continue;
        }
      }
      std::string& front = p.queue.front().second;
      // Within the rate: 20 ms worth at a time.
      size_t take = rate == 0 ? front.size() : std::min<size_t>(front.size(), std::max<uint64_t>(rate / 50, 1));
      chunk = front.substr(0, take);
      front.erase(0, take);
      if (front.empty()) p.queue.pop_front();
      p.queued -= take;
    }
    p.cv.notify_all();
    size_t done = 0;
    while (done < chunk.size()) {
      ssize_t n = ::send(p.dst, chunk.data() + done, chunk.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        c.ShutdownAll();  // one end is gone: so is the connection
        return;
      }
      done += static_cast<size_t>(n);
    }
    {
      std::lock_guard lock(mu_);
      (&p == &c.up ? stats_.bytes_up : stats_.bytes_down) += chunk.size();
    }
    if (rate > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(chunk.size() * 1'000'000'000ull / rate));
  }
}

}  // namespace lifeboat::drill
