#include "agent/agent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "agent/auth.h"
#include "plan/load.h"
#include "state/keys.h"
#include "state/sqlite_store.h"

namespace lifeboat::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A plan whose agents listen on ports the kernel picked free just now. Both
// probe sockets stay open until both ports are known: a port closed at once
// may be handed out again (a flaky test found by the sanitizer run).
plan::Plan TestPlan() {
  boost::asio::io_context io;
  auto handler = [](const net::HttpRequest&) { return net::HttpResponse::Text(200, ""); };
  net::HttpServer a(io, handler), b(io, handler);
  EXPECT_TRUE(a.Listen(Address{"127.0.0.1", 0}).ok());
  EXPECT_TRUE(b.Listen(Address{"127.0.0.1", 0}).ok());
  std::string text = "name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:" +
                     std::to_string(a.port()) + " }\n  west: { role: standby, agent: 127.0.0.1:" +
                     std::to_string(b.port()) + " }\n";
  auto r = plan::LoadPlanText(text, "t.yaml");
  EXPECT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  return *r.plan;
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-agent-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  AgentOptions Options(const std::string& region) {
    AgentOptions o;
    o.region = region;
    o.data_dir = (dir_ / region).string();
    return o;
  }
  fs::path dir_;
};

TEST_F(AgentTest, UnknownRegionIsRefusedWithASuggestion) {
  auto a = Agent::Create(TestPlan(), Options("eats"));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), Code::kInvalidArgument);
  EXPECT_NE(a.error().message().find("did you mean 'east'"), std::string::npos) << a.error().message();
}

TEST_F(AgentTest, TwoAgentsCannotShareADataDir) {
  auto plan = TestPlan();
  auto a = Agent::Create(plan, Options("east"));
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  auto b = Agent::Create(plan, Options("east"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(b.error().message().find("in use"), std::string::npos);
}

// A service that records its calls, to check the seam itself.
class ExampleService final : public Service {
 public:
  ExampleService(std::vector<std::string>& log, std::string name) : log_(log), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Status Start() override {
    log_.push_back("start " + name_);
    return Ok();
  }
  void Stop() override { log_.push_back("stop " + name_); }
  nlohmann::ordered_json StatusJson() override { return {{"ok", true}}; }

 private:
  std::vector<std::string>& log_;
  std::string name_;
};

TEST_F(AgentTest, ServesHealthStatusAndMetricsThenStops) {
  auto plan = TestPlan();
  std::vector<std::string> calls;
  auto example = [&calls](const std::string& name) -> ServiceFactory {
    return [&calls, name](ServiceContext& ctx) -> Result<std::unique_ptr<Service>> {
      ctx.router.Add("/v1/" + name, [name](const net::HttpRequest&) { return net::HttpResponse::Text(200, name); });
      return std::unique_ptr<Service>(new ExampleService(calls, name));
    };
  };
  auto none = [](ServiceContext&) -> Result<std::unique_ptr<Service>> { return std::unique_ptr<Service>(); };
  auto a = Agent::Create(plan, Options("east"), {example("example"), none, example("second")});
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  Agent& agent = **a;
  Status run_status;
  std::thread t([&] { run_status = agent.Run(); });
  std::string base = net::BaseUrl(agent.region().agent);
  Result<net::FetchResult> health = Unavailable("not yet");
  for (int i = 0; i < 100 && !(health = net::Fetch("GET", base + "/healthz", 1s)).ok(); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(health.ok()) << health.error().ToString();
  EXPECT_EQ(health->body, "ok\n");
  auto status = net::Fetch("GET", base + "/v1/status", 1s);
  ASSERT_TRUE(status.ok());
  auto j = nlohmann::json::parse(status->body);
  EXPECT_EQ(j["region"], "east");
  EXPECT_EQ(j["role"], "primary");
  EXPECT_EQ(j["starts"], 1);
  EXPECT_EQ(j["services"]["example"]["ok"], true);
  EXPECT_EQ(j["services"]["second"]["ok"], true);
  auto routed = net::Fetch("GET", base + "/v1/second/x", 1s);
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(routed->body, "second");
  auto metrics = net::Fetch("GET", base + "/metrics", 1s);
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("lifeboat_build_info{version="), std::string::npos);
  EXPECT_NE(metrics->body.find("lifeboat_admin_requests_total{path=\"/healthz\",code=\"200\"}"), std::string::npos);
  auto missing = net::Fetch("GET", base + "/nope", 1s);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto post = net::Fetch("POST", base + "/healthz", 1s);
  EXPECT_EQ(post->status, 405);
  agent.Stop();
  t.join();
  EXPECT_TRUE(run_status.ok());
  a->reset();
  EXPECT_EQ(calls, (std::vector<std::string>{"start example", "start second", "stop second", "stop example"}));
}

TEST_F(AgentTest, StartCountSurvivesARestart) {
  auto plan = TestPlan();
  for (int i = 1; i <= 3; ++i) {
    auto a = Agent::Create(plan, Options("west"));
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_EQ((*a)->StatusJson()["starts"], i);
  }
}

// An agent of an earlier version kept its own DATA_DIR/state.db: its keys
// move into the shared store under the region, once, and the old file is
// renamed; a plan naming that very file as the store keeps it as it is.
TEST_F(AgentTest, AnOlderAgentsOwnStoreMovesIntoTheSharedOne) {
  auto plan = TestPlan();
  fs::create_directories(dir_ / "west");
  {
    auto old = state::SqliteStore::Open((dir_ / "west/state.db").string());
    ASSERT_TRUE(old.ok());
    ASSERT_TRUE((*old)->Put("agent/starts", "4", state::Expect::Any(), 0).ok());
    ASSERT_TRUE((*old)->Put("routing/controls/east", R"({"on":false,"by":"ops","at":"2026-11-01T00:00:00Z"})",
                            state::Expect::Any(), 0)
                    .ok());
  }
  {
    auto a = Agent::Create(plan, Options("west"));
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_EQ((*a)->StatusJson()["starts"], 5) << "the old count went on";
    auto control = state::keys::RoutingControlOf("east").Get((*a)->store());
    ASSERT_TRUE(control.ok() && control->has_value());
    EXPECT_FALSE((*control)->on);
  }
  EXPECT_FALSE(fs::exists(dir_ / "west/state.db"));
  EXPECT_TRUE(fs::exists(dir_ / "west/state.db.migrated"));
  EXPECT_TRUE(fs::exists(dir_ / "t-state.db")) << "the shared store sits next to the data dirs";
  auto again = Agent::Create(plan, Options("west"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->StatusJson()["starts"], 6) << "copied once, not again";

  plan.state.path = (dir_ / "east/state.db").string();
  fs::create_directories(dir_ / "east");
  {
    auto same = state::SqliteStore::Open(plan.state.path);
    ASSERT_TRUE(same.ok());
    ASSERT_TRUE((*same)->Put("regions/east/agent/starts", "2", state::Expect::Any(), 0).ok());
  }
  auto east = Agent::Create(plan, Options("east"));
  ASSERT_TRUE(east.ok()) << east.error().ToString();
  EXPECT_EQ((*east)->StatusJson()["starts"], 3);
  EXPECT_TRUE(fs::exists(plan.state.path)) << "the store itself was renamed away";
}

TEST_F(AgentTest, AddressInUseIsReportedByRun) {
  auto plan = TestPlan();
  boost::asio::io_context io;
  net::HttpServer squatter(io, [](const net::HttpRequest&) { return net::HttpResponse::Text(200, ""); });
  ASSERT_TRUE(squatter.Listen(plan.FindRegion("east")->agent).ok());
  auto a = Agent::Create(plan, Options("east"));
  ASSERT_TRUE(a.ok());
  Status s = (*a)->Run();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("already in use"), std::string::npos);
}


// "bearer" got 401: the scheme is case-insensitive (RFC 9110 §11.1).
TEST(TokenMatches, SchemeIsCaseInsensitiveAndTheTokenExact) {
  EXPECT_TRUE(TokenMatches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(TokenMatches("bearer s3cret", "s3cret"));
  EXPECT_TRUE(TokenMatches("BEARER  s3cret ", "s3cret"));
  EXPECT_FALSE(TokenMatches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(TokenMatches("Bearer s3cretX", "s3cret"));
  EXPECT_FALSE(TokenMatches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(TokenMatches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(TokenMatches("", "s3cret"));
  EXPECT_FALSE(TokenMatches("Bearer ", ""));
}

}  // namespace
}  // namespace lifeboat::agent
