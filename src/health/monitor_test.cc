#include "health/monitor.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <thread>

#include "net/http.h"
#include "plan/load.h"

namespace lifeboat::health {
namespace {

using namespace std::chrono_literals;

// A local HTTP endpoint whose answer a test can change.
class FakeEndpoint {
 public:
  FakeEndpoint() : server_(io_, [this](const net::HttpRequest&) {
      std::lock_guard lock(mu_);
      return net::HttpResponse::Text(status_, body_);
    }) {
    EXPECT_TRUE(server_.Listen(Address{"127.0.0.1", 0}).ok());
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeEndpoint() {
    server_.Stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  void Set(int status, std::string body) {
    std::lock_guard lock(mu_);
    status_ = status;
    body_ = std::move(body);
  }
  uint16_t port() const { return server_.port(); }

 private:
  boost::asio::io_context io_;
  net::HttpServer server_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::mutex mu_;
  int status_ = 200;
  std::string body_ = "ok";
};

// A port that accepts connections and never says anything.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~BlackHole() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_;
};

uint16_t ClosedPort() {
  BlackHole h;  // bound, then closed when it goes out of scope
  return h.port();
}

plan::Plan MakePlan(const std::string& endpoints, const std::string& checks) {
  std::string text = "name: t\npattern: warm-standby\nregions: { a: { role: primary, agent: 127.0.0.1:1 }, b: { role: "
                     "standby, agent: 127.0.0.1:2 } }\nchecks:\n" +
                     checks + "endpoints:\n" + endpoints;
  auto r = plan::LoadPlanText(text, "t.yaml");
  EXPECT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics) << text;
  return r.plan.value_or(plan::Plan{});
}

std::string Ep(const std::string& name, uint16_t port, const std::string& check) {
  return "  " + name + ": { region: a, address: 127.0.0.1:" + std::to_string(port) + ", check: " + check + " }\n";
}

TEST(Probe, TlsToAPlainHttpPortIsATlsError) {
  FakeEndpoint web;  // speaks plain HTTP
  auto plan = MakePlan(Ep("web", web.port(), "tls"),
                       "  tls: { type: https, interval: 1s, timeout: 500ms, tls_verify: false }\n");
  ProbeResult r = ProbeOnce(plan, *plan.FindEndpoint("web"));
  EXPECT_EQ(r.reason, Reason::kTlsError) << r.detail;
}

TEST(Probe, ClassifiesEveryOutcome) {
  FakeEndpoint web;
  BlackHole hole;
  auto plan = MakePlan(Ep("ok", web.port(), "web") + Ep("refused", ClosedPort(), "web") +
                           Ep("hole", hole.port(), "web") + Ep("tcp", web.port(), "tcp"),
                       "  web: { type: http, path: /healthz, expect_body: ok, interval: 1s, timeout: 300ms }\n"
                       "  tcp: { type: tcp, interval: 1s, timeout: 300ms }\n");
  auto probe = [&](const char* ep) { return ProbeOnce(plan, *plan.FindEndpoint(ep)); };
  EXPECT_EQ(probe("ok").reason, Reason::kOk) << probe("ok").detail;
  EXPECT_EQ(probe("tcp").reason, Reason::kOk);
  EXPECT_EQ(probe("refused").reason, Reason::kRefused);
  EXPECT_EQ(probe("hole").reason, Reason::kTimeout);
  web.Set(503, "ok");
  ProbeResult bad = probe("ok");
  EXPECT_EQ(bad.reason, Reason::kBadStatus);
  EXPECT_NE(bad.detail.find("503"), std::string::npos);
  web.Set(200, std::string(6000, 'x') + "ok");  // beyond the first 5120 bytes
  EXPECT_EQ(probe("ok").reason, Reason::kBodyMismatch);
  web.Set(200, "all ok here");
  EXPECT_EQ(probe("ok").reason, Reason::kOk);
}

class MonitorTest : public ::testing::Test {
 protected:
  // The plan lives in the fixture: the monitor points into it until TearDown.
  void Run(plan::Plan plan) {
    plan_ = std::move(plan);
    monitor_ = std::make_unique<Monitor>(io_, plan_, metrics_);
    monitor_->OnChange([this] { ++changes_; });
    monitor_->Start();
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (monitor_) monitor_->Stop();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  // Polls `done` for at most `limit` (generous: sanitizer builds are slow).
  template <typename F>
  bool AwaitTrue(F done, std::chrono::milliseconds limit = 10000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  bool Await(const std::string& endpoint, bool healthy) {
    return AwaitTrue([&] { return monitor_->Healthy(endpoint) == healthy; });
  }

  boost::asio::io_context io_;
  metrics::Registry metrics_;
  plan::Plan plan_;
  std::unique_ptr<Monitor> monitor_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<int> changes_{0};
};

TEST_F(MonitorTest, FallsAndRisesWithTheEndpoint) {
  FakeEndpoint web;
  plan::Plan plan = MakePlan(Ep("web", web.port(), "web"),
                             "  web: { type: http, interval: 100ms, timeout: 50ms, fall: 2, rise: 2 }\n");
  Run(plan);
  EXPECT_TRUE(monitor_->Healthy("web"));
  web.Set(500, "down");
  ASSERT_TRUE(Await("web", false));
  // The flag flips before the change callback runs; wait for the callback too.
  EXPECT_TRUE(AwaitTrue([&] { return changes_.load() >= 1; }));
  web.Set(200, "ok");
  ASSERT_TRUE(Await("web", true));
  std::string m = metrics_.Render();
  EXPECT_NE(m.find("lifeboat_health_transitions_total{endpoint=\"web\",to=\"unhealthy\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("lifeboat_health_probes_total{endpoint=\"web\",result=\"bad-status\"}"), std::string::npos);
  auto status = monitor_->StatusJson();
  EXPECT_EQ(status["web"]["healthy"], true);
}

TEST_F(MonitorTest, ABlackHoledEndpointDoesNotDelayAnother) {
  FakeEndpoint web;
  BlackHole hole;
  plan::Plan plan = MakePlan(Ep("web", web.port(), "fast") + Ep("hole", hole.port(), "fast"),
                             "  fast: { type: http, interval: 100ms, timeout: 80ms, fall: 1, rise: 1 }\n");
  Run(plan);
  ASSERT_TRUE(Await("hole", false));
  web.Set(500, "x");
  ASSERT_TRUE(Await("web", false));
  web.Set(200, "ok");
  ASSERT_TRUE(Await("web", true));
  EXPECT_FALSE(monitor_->Healthy("hole"));
}

TEST_F(MonitorTest, CalculatedChecksCombineTheirChildren) {
  FakeEndpoint a, b;
  plan::Plan plan =
      MakePlan(Ep("a", a.port(), "web") + Ep("b", b.port(), "web") + Ep("any", a.port(), "any") + Ep("all", a.port(), "all"),
               "  web: { type: http, interval: 100ms, timeout: 50ms, fall: 1, rise: 1 }\n"
               "  any: { type: calculated, children: [a, b], min_healthy: 1 }\n"
               "  all: { type: calculated, children: [a, b] }\n");
  Run(plan);
  a.Set(500, "x");
  ASSERT_TRUE(Await("a", false));
  ASSERT_TRUE(Await("all", false));
  EXPECT_TRUE(monitor_->Healthy("any"));
  b.Set(500, "x");
  ASSERT_TRUE(Await("any", false));
  a.Set(200, "ok");
  ASSERT_TRUE(Await("any", true));
  EXPECT_FALSE(monitor_->Healthy("all"));
}

TEST_F(MonitorTest, InvertTurnsAFailingProbeHealthy) {
  plan::Plan plan = MakePlan(Ep("gone", ClosedPort(), "inv"),
                             "  inv: { type: tcp, interval: 100ms, timeout: 50ms, fall: 1, rise: 1, invert: true }\n");
  Run(plan);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(monitor_->Healthy("gone"));
  EXPECT_EQ(changes_.load(), 0);
}

}  // namespace
}  // namespace lifeboat::health
