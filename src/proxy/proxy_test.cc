// The proxy against real sockets on loopback: backends are threads here.
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "core/fd.h"
#include "plan/load.h"
#include "state/store_testing.h"

namespace lifeboat::proxy {
namespace {

using namespace std::chrono_literals;

// How a test backend treats each connection.
enum class Behaviour {
  kNameThenEcho,  // sends its name and a newline, then echoes until EOF, then half-closes
  kEcho,          // echoes until EOF, then half-closes
  kStall,         // reads and writes nothing
  kProxyHeader,   // reads a PROXY v2 header and replies with it, then echoes
  kReset,         // sends its name, waits for a line, then resets the connection
};

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool WriteAll(int fd, const void* p, size_t n) {
  auto* b = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

class Backend {
 public:
  Backend(std::string name, Behaviour b) : name_(std::move(name)), behaviour_(b) {
    listener_.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listener_.get(), 512);
    port_ = LocalPort(listener_.get());
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~Backend() { Kill(); }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

  // Stops listening and resets every open connection, as a process that dies.
  void Kill() {
    if (!acceptor_.joinable()) return;
    stop_ = true;
    shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    listener_.Reset();
    {
      std::lock_guard lock(mu_);
      for (int fd : open_) {
        linger l{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        shutdown(fd, SHUT_RDWR);
      }
    }
    for (auto& t : workers_) t.join();
  }

 private:
  void Accept() {
    while (!stop_) {
      int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard lock(mu_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    if (behaviour_ == Behaviour::kStall) {
      while (!stop_) std::this_thread::sleep_for(10ms);
    } else if (behaviour_ == Behaviour::kReset) {
      std::string hello = name_ + "\n";
      WriteAll(fd, hello.data(), hello.size());
      char c;
      while (recv(fd, &c, 1, 0) == 1 && c != '\n') {
      }
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    } else {
      if (behaviour_ == Behaviour::kNameThenEcho) {
        std::string hello = name_ + "\n";
        WriteAll(fd, hello.data(), hello.size());
      }
      if (behaviour_ == Behaviour::kProxyHeader) {
        uint8_t h[16];
        if (recv(fd, h, sizeof h, MSG_WAITALL) == 16) {
          size_t rest = (size_t{h[14]} << 8) | h[15];
          std::vector<uint8_t> all(h, h + 16);
          all.resize(16 + rest);
          if (rest == 0 || recv(fd, all.data() + 16, rest, MSG_WAITALL) == static_cast<ssize_t>(rest)) {
            WriteAll(fd, all.data(), all.size());
          }
        }
      }
      char buf[65536];
      for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (!WriteAll(fd, buf, static_cast<size_t>(n))) break;
      }
      shutdown(fd, SHUT_WR);
    }
    std::lock_guard lock(mu_);
    // Closed by Kill or here; a closed fd is never shut down again.
    auto it = std::find(open_.begin(), open_.end(), fd);
    if (it != open_.end()) open_.erase(it);
    ::close(fd);
  }

  std::string name_;
  Behaviour behaviour_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

UniqueFd Dial(const Address& a) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a.port);
  inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return UniqueFd();
  return fd;
}

// One line, without its newline; "" at EOF, a reset or a timeout.
std::string ReadLine(int fd) {
  std::string out;
  char c;
  while (recv(fd, &c, 1, 0) == 1) {
    if (c == '\n') return out;
    out += c;
  }
  return "";
}

// Whether the peer ended the connection (EOF or reset) within `within`.
bool Ended(int fd, Duration within) {
  pollfd p{fd, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  deadline - std::chrono::steady_clock::now()).count());
    if (poll(&p, 1, std::max(ms, 1)) != 1) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
  }
  return false;
}

class ProxyTest : public ::testing::Test {
 protected:
  // A plan with endpoint e (east) and w (west) on the backends' ports and
  // `listeners` written into proxy.listeners (ports 1 and 2: any free port).
  void Load(uint16_t east_port, uint16_t west_port, const std::string& listeners) {
    std::string text = "name: t\npattern: warm-standby\nregions:\n"
                       "  east: { role: primary, agent: 127.0.0.1:1 }\n"
                       "  west: { role: standby, agent: 127.0.0.1:2 }\n"
                       "endpoints:\n"
                       "  e: { region: east, address: 127.0.0.1:" + std::to_string(east_port) + " }\n"
                       "  w: { region: west, address: 127.0.0.1:" + std::to_string(west_port) + " }\n"
                       "proxy:\n  threads: 2\n  listeners:\n" + listeners;
    auto r = plan::LoadPlanText(text, "t.yaml");
    ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
    plan_ = std::make_unique<plan::Plan>(*r.plan);
    // Port 1 in the text stands for any free port (a plan names a real one).
    for (auto& l : plan_->proxy->listeners) {
      if (l.listen.port <= 2) l.listen.port = 0;
    }
  }
  void StartProxy() {
    auto p = Proxy::Start(*plan_, metrics_, routing_);
    ASSERT_TRUE(p.ok()) << p.error().message();
    proxy_ = std::move(*p);
    at_ = proxy_->bound()[0].second;
  }
  void Route() {
    ++routing_.generation;
    proxy_->Update(routing_);
  }
  double Metric(const std::string& line_prefix) {
    std::string text = metrics_.Render();
    auto pos = text.find("\n" + line_prefix + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + line_prefix.size() + 2));
  }
  // The metric once it reads `want`, or what it reads after `within`: each
  // loop counts its own closes, on its own thread, after the event that the
  // test saw through another loop.
  double MetricOnceAt(const std::string& line_prefix, double want, Duration within = 3s) {
    state::WaitUntil([&] { return Metric(line_prefix) == want; }, within);
    return Metric(line_prefix);
  }

  std::unique_ptr<plan::Plan> plan_;
  metrics::Registry metrics_;
  traffic::RoutingState routing_;
  std::unique_ptr<Proxy> proxy_;
  Address at_;
};

TEST_F(ProxyTest, BulkBytesBothWaysByteForByteWithTheHalfClosePassedOn) {
  Backend east("east", Behaviour::kEcho), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, endpoints: [e, w] }\n");
  StartProxy();
  std::vector<char> data(24 << 20);
  std::mt19937 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  UniqueFd fd = Dial(at_);
  ASSERT_TRUE(fd.valid());
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(fd.get(), data.data(), data.size()));
    shutdown(fd.get(), SHUT_WR);  // the echo server answers EOF only once this FIN reaches it
  });
  std::vector<char> back;
  back.reserve(data.size());
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    back.insert(back.end(), buf, buf + n);
  }
  writer.join();
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data) << "the bytes came back changed";
  EXPECT_EQ(east.accepted(), 1);
  EXPECT_EQ(west.accepted(), 0);
  EXPECT_EQ(Metric("lifeboat_proxy_bytes_total{listener=\"web\",target=\"e\",direction=\"up\"}"), data.size());
  EXPECT_EQ(Metric("lifeboat_proxy_bytes_total{listener=\"web\",target=\"e\",direction=\"down\"}"), data.size());
}

TEST_F(ProxyTest, ATargetThatFailsItsCheckHasItsConnectionsResetAndNewOnesGoToTheNext) {
  Backend east("east", Behaviour::kNameThenEcho), west("west", Behaviour::kNameThenEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd before = Dial(at_);
  EXPECT_EQ(ReadLine(before.get()), "east");
  routing_.healthy["e"] = false;
  Route();
  EXPECT_TRUE(Ended(before.get(), 2s)) << "a connection to a failed target was left open";
  UniqueFd after = Dial(at_);
  EXPECT_EQ(ReadLine(after.get()), "west");
  EXPECT_EQ(Metric("lifeboat_proxy_switches_total{listener=\"web\"}"), 1);
  EXPECT_EQ(Metric("lifeboat_proxy_closed_total{listener=\"web\",reason=\"target_down\"}"), 1);
}

TEST_F(ProxyTest, AnEpochChangeSendsNewConnectionsToTheNewPrimaryAndDrainsTheOld) {
  Backend east("east", Behaviour::kNameThenEcho), west("west", Behaviour::kNameThenEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, drain: 400ms, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd old = Dial(at_);
  EXPECT_EQ(ReadLine(old.get()), "east");
  routing_.primary = "west";
  routing_.epoch = 2;
  Route();
  UniqueFd fresh = Dial(at_);
  EXPECT_EQ(ReadLine(fresh.get()), "west");
  // The old connection still works while it drains...
  ASSERT_TRUE(WriteAll(old.get(), "ping\n", 5));
  EXPECT_EQ(ReadLine(old.get()), "ping");
  // ...and is closed when the drain time is over.
  EXPECT_TRUE(Ended(old.get(), 3s));
  EXPECT_EQ(Metric("lifeboat_proxy_closed_total{listener=\"web\",reason=\"drained\"}"), 1);
  EXPECT_FALSE(Ended(fresh.get(), 600ms)) << "a connection to the chosen target was closed";
}

TEST_F(ProxyTest, ABusyConnectionIsClosedWhenItsDrainEnds) {
  // A connection moving bulk bytes waits in the loop's queue between turns;
  // the sweep that ends its drain must take it out of the queue too.
  Backend east("east", Behaviour::kEcho), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, drain: 300ms, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd fd = Dial(at_);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::vector<char> chunk(1 << 20, 'z');
    while (!done && WriteAll(fd.get(), chunk.data(), chunk.size())) {
    }
  });
  std::thread reader([&] {
    char buf[1 << 16];
    while (recv(fd.get(), buf, sizeof buf, 0) > 0) {
    }
    done = true;
  });
  std::this_thread::sleep_for(200ms);
  routing_.primary = "west";
  routing_.epoch = 2;
  Route();
  for (int i = 0; i < 300 && !done; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(done) << "the busy connection outlived its drain";
  shutdown(fd.get(), SHUT_RDWR);
  done = true;
  writer.join();
  reader.join();
  EXPECT_EQ(Metric("lifeboat_proxy_closed_total{listener=\"web\",reason=\"drained\"}"), 1);
}

TEST_F(ProxyTest, ASwitchedOffRegionIsDrainedNotCut) {
  Backend east("east", Behaviour::kNameThenEcho), west("west", Behaviour::kNameThenEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, drain: 10s, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd old = Dial(at_);
  EXPECT_EQ(ReadLine(old.get()), "east");
  routing_.on["east"] = false;
  Route();
  EXPECT_EQ(ReadLine(Dial(at_).get()), "west");
  EXPECT_FALSE(Ended(old.get(), 500ms)) << "a healthy switched-off target's connection was cut at once";
  // Switched on again before the drain ends: the connection stays for good.
  routing_.on["east"] = true;
  Route();
  ASSERT_TRUE(WriteAll(old.get(), "still\n", 6));
  EXPECT_EQ(ReadLine(old.get()), "still");
}

TEST_F(ProxyTest, ADeadTargetCostsANewConnectionOneRefusedConnectNotAFailure) {
  Backend west("west", Behaviour::kNameThenEcho);
  uint16_t dead;
  {
    Backend gone("gone", Behaviour::kEcho);
    dead = gone.port();
  }  // its port now refuses
  Load(dead, west.port(), "    web: { listen: 127.0.0.1:1, endpoints: [e, w] }\n");
  StartProxy();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ReadLine(Dial(at_).get()), "west");
  EXPECT_EQ(Metric("lifeboat_proxy_connect_failures_total{listener=\"web\",target=\"e\"}"), 3);
}

TEST_F(ProxyTest, TheConnectionLimitRefusesCleanlyAndFreesWithTheConnections) {
  Backend east("east", Behaviour::kNameThenEcho), west("west", Behaviour::kNameThenEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, max_connections: 2, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd a = Dial(at_), b = Dial(at_);
  EXPECT_EQ(ReadLine(a.get()), "east");
  EXPECT_EQ(ReadLine(b.get()), "east");
  UniqueFd c = Dial(at_);
  EXPECT_TRUE(Ended(c.get(), 2s)) << "a connection over the limit was not refused";
  EXPECT_EQ(Metric("lifeboat_proxy_refused_total{listener=\"web\",reason=\"limit\"}"), 1);
  a.Reset();
  // The slot frees once the proxy sees the close.
  std::string line;
  for (int i = 0; i < 50 && line.empty(); ++i) {
    UniqueFd d = Dial(at_);
    line = ReadLine(d.get());
    if (line.empty()) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(line, "east");
}

TEST_F(ProxyTest, AStalledTargetIsClosedAfterTheIdleTimeoutAndHoldsNoMoreThanItsBuffers) {
  Backend east("east", Behaviour::kStall), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, idle_timeout: 500ms, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd fd = Dial(at_);
  // Write until the path is full: the proxy stops reading when its pipe is.
  std::vector<char> chunk(65536, 'x');
  size_t sent = 0;
  for (;;) {
    ssize_t w = send(fd.get(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w <= 0) {
      pollfd p{fd.get(), POLLOUT, 0};
      if (poll(&p, 1, 300) != 1) break;
      continue;
    }
    sent += static_cast<size_t>(w);
    ASSERT_LT(sent, size_t{64} << 20) << "the proxy kept reading from a client whose target does not read";
  }
  EXPECT_GT(sent, 0u);
  EXPECT_TRUE(Ended(fd.get(), 3s));
  EXPECT_EQ(Metric("lifeboat_proxy_closed_total{listener=\"web\",reason=\"idle\"}"), 1);
}

TEST_F(ProxyTest, ATargetThatResetsHasTheResetPassedOnToTheClient) {
  Backend east("east", Behaviour::kReset), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd fd = Dial(at_);
  EXPECT_EQ(ReadLine(fd.get()), "east");
  ASSERT_TRUE(WriteAll(fd.get(), "bye\n", 4));
  char c;
  errno = 0;
  EXPECT_EQ(recv(fd.get(), &c, 1, 0), -1) << "the client read an orderly end, not the target's reset";
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(MetricOnceAt("lifeboat_proxy_closed_total{listener=\"web\",reason=\"reset\"}", 1), 1);
}

TEST_F(ProxyTest, SilentClientsDoNotStarveAnother) {
  Backend east("east", Behaviour::kEcho), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, endpoints: [e, w] }\n");
  StartProxy();
  std::vector<UniqueFd> silent;
  for (int i = 0; i < 300; ++i) silent.push_back(Dial(at_));
  UniqueFd fd = Dial(at_);
  std::string msg(1 << 20, 'y');
  std::thread writer([&] {
    WriteAll(fd.get(), msg.data(), msg.size());
    shutdown(fd.get(), SHUT_WR);
  });
  size_t got = 0;
  char buf[65536];
  for (ssize_t n; (n = recv(fd.get(), buf, sizeof buf, 0)) > 0;) got += static_cast<size_t>(n);
  writer.join();
  EXPECT_EQ(got, msg.size());
}

TEST_F(ProxyTest, TheTargetReadsAProxyV2HeaderWithTheClientsAddressFirst) {
  Backend east("east", Behaviour::kProxyHeader), west("west", Behaviour::kEcho);
  Load(east.port(), west.port(), "    web: { listen: 127.0.0.1:1, proxy_protocol: v2, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd fd = Dial(at_);
  uint8_t h[28];
  ASSERT_EQ(recv(fd.get(), h, sizeof h, MSG_WAITALL), 28);
  EXPECT_EQ(std::memcmp(h, "\r\n\r\n\0\r\nQUIT\n", 12), 0);
  EXPECT_EQ(h[12], 0x21);  // v2, PROXY
  EXPECT_EQ(h[13], 0x11);  // TCP over IPv4
  EXPECT_EQ((h[14] << 8) | h[15], 12);
  EXPECT_EQ(std::memcmp(h + 16, "\x7f\0\0\x01", 4), 0);
  uint16_t client_port = static_cast<uint16_t>((h[24] << 8) | h[25]);
  uint16_t dest_port = static_cast<uint16_t>((h[26] << 8) | h[27]);
  EXPECT_EQ(client_port, LocalPort(fd.get()));
  EXPECT_EQ(dest_port, at_.port);
  ASSERT_TRUE(WriteAll(fd.get(), "after\n", 6));
  EXPECT_EQ(ReadLine(fd.get()), "after");
}

// A UDP echo server that prefixes its name.
class UdpBackend {
 public:
  explicit UdpBackend(std::string name) : name_(std::move(name)) {
    fd_.Reset(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    timeval tv{0, 100000};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    port_ = LocalPort(fd_.get());
    thread_ = std::thread([this] {
      char buf[2048];
      while (!stop_) {
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) continue;
        std::string reply = name_ + ":" + std::string(buf, static_cast<size_t>(n));
        sendto(fd_.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    });
  }
  ~UdpBackend() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::string name_;
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string Exchange(int fd, const Address& to, const std::string& msg) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(to.port);
  inet_pton(AF_INET, to.host.c_str(), &sa.sin_addr);
  sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  char buf[2048];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

UniqueFd UdpClient() {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  timeval tv{2, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

TEST_F(ProxyTest, UdpFlowsAreMappedPerClientExpireWhenIdleAndMoveWhenTheTargetFails) {
  UdpBackend east("east"), west("west");
  Load(east.port(), west.port(), "    dns: { listen: 127.0.0.1:1, protocol: udp, idle_timeout: 300ms, endpoints: [e, w] }\n");
  StartProxy();
  UniqueFd a = UdpClient(), b = UdpClient();
  EXPECT_EQ(Exchange(a.get(), at_, "one"), "east:one");
  EXPECT_EQ(Exchange(b.get(), at_, "two"), "east:two");
  EXPECT_EQ(Exchange(a.get(), at_, "three"), "east:three");
  EXPECT_EQ(Metric("lifeboat_proxy_active_connections{listener=\"dns\",target=\"e\"}"), 2);
  routing_.healthy["e"] = false;
  Route();
  EXPECT_EQ(Exchange(a.get(), at_, "four"), "west:four");
  // b's flow may sit on the other loop, which closes it on its own thread.
  EXPECT_EQ(MetricOnceAt("lifeboat_proxy_closed_total{listener=\"dns\",reason=\"target_down\"}", 2), 2);
  EXPECT_EQ(MetricOnceAt("lifeboat_proxy_active_connections{listener=\"dns\",target=\"w\"}", 0), 0)
      << "an idle flow stayed";
}

TEST_F(ProxyTest, ASecondProxyOnTheSameAddressIsRefusedNotSilentlySharing) {
  Backend east("east", Behaviour::kEcho);
  Load(east.port(), east.port(),
       "    web: { listen: 127.0.0.1:1, endpoints: [e] }\n"
       "    dns: { listen: 127.0.0.1:2, protocol: udp, endpoints: [e] }\n");
  StartProxy();
  for (size_t i = 0; i < 2; ++i) {
    plan_->proxy->listeners[i].listen = proxy_->bound()[i].second;
    plan_->proxy->listeners[1 - i].listen.port = 0;
    metrics::Registry other;
    auto second = Proxy::Start(*plan_, other, routing_);
    ASSERT_FALSE(second.ok()) << "two proxies share " << plan_->proxy->listeners[i].listen.ToString();
    EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  }
}

TEST_F(ProxyTest, AListenAddressInUseIsNamed) {
  Backend east("east", Behaviour::kEcho);
  UniqueFd taken(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(taken.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(taken.get(), 1);
  uint16_t port = LocalPort(taken.get());
  Load(east.port(), east.port(),
       "    web: { listen: 127.0.0.1:" + std::to_string(port) + ", endpoints: [e] }\n");
  auto p = Proxy::Start(*plan_, metrics_, routing_);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("web"), std::string::npos) << p.error().message();
  EXPECT_NE(p.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos) << p.error().message();
}

}  // namespace
}  // namespace lifeboat::proxy
