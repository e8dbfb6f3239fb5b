// The agent's services through their seam only: a context with an in-memory
// state store, the router called directly, and the interfaces they provide.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include "agent/capabilities.h"
#include "agent/services/backup/backup_service.h"
#include "agent/services/drills/drills_service.h"
#include "agent/services/replication/replication_service.h"
#include "agent/services/traffic/traffic_service.h"
#include "backup/backup.h"
#include "backup/location.h"
#include "plan/load.h"
#include "state/keys.h"
#include "state/sqlite_store.h"

namespace lifeboat::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

// A free port on 127.0.0.1, never one this process was given before: the
// kernel may offer a just-closed port again, and a plan naming one port for
// two regions is refused.
int FreePort() {
  static std::set<int> given;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    if (given.insert(ntohs(a.sin_port)).second) return ntohs(a.sin_port);
  }
}

// One region's context, as the agent builds it, around a plan text.
class Harness {
 public:
  Harness(const std::string& plan_text, const std::string& region) {
    auto r = plan::LoadPlanText(plan_text, "t.yaml");
    if (!r.plan) {  // nothing below can run without it; a constructor cannot ASSERT
      ADD_FAILURE() << plan::FormatDiagnostics(r.diagnostics);
      std::fflush(stdout);
      std::abort();
    }
    plan_ = *r.plan;
    auto s = state::SqliteStore::Open(":memory:");
    EXPECT_TRUE(s.ok());
    store_ = std::move(*s);
    ctx_.reset(new ServiceContext{plan_, *plan_.FindRegion(region), io_, *store_, metrics_, Clock::Real(), router_,
                                  caps_, token_, dns_listen_});
  }
  ServiceContext& ctx() { return *ctx_; }
  state::Store& store() { return *store_; }
  metrics::Registry& metrics() { return metrics_; }
  net::HttpResponse Call(const std::string& method, const std::string& path, const std::string& body = "",
                         const std::string& token = "") {
    net::HttpRequest req;
    req.method = method;
    req.path = path;
    req.body = body;
    req.remote = "127.0.0.1";
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
    return router_.Call(req);
  }

  std::string token_ = "t0ken";
  std::vector<Address> dns_listen_ = {Address{"127.0.0.1", 0}};

 private:
  plan::Plan plan_;
  boost::asio::io_context io_;
  std::unique_ptr<state::Store> store_;
  metrics::Registry metrics_;
  Router router_;
  Capabilities caps_;
  std::unique_ptr<ServiceContext> ctx_;
};

class ReplicationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-services-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "key") << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    plan_ = "name: t\npattern: warm-standby\nregions:\n"
            "  east: { role: primary, agent: 127.0.0.1:" + std::to_string(FreePort()) + " }\n"
            "  west: { role: standby, agent: 127.0.0.1:" + std::to_string(FreePort()) + " }\n"
            "volumes:\n  data:\n    path: { east: " + (dir_ / "east").string() + ", west: " + (dir_ / "west").string() +
            " }\n    replication: { port: " + std::to_string(FreePort()) + ", key_file: " + (dir_ / "key").string() +
            " }\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Waits for the volume's last change to end; its state.
  static std::string WaitForChange(VolumeRoles& roles) {
    for (int i = 0; i < 500; ++i) {
      auto c = roles.LastChange("data");
      if (c && c->state != "running") return c->state;
      std::this_thread::sleep_for(10ms);
    }
    return "still running";
  }

  fs::path dir_;
  std::string plan_;
};

TEST_F(ReplicationServiceTest, ATargetFollowsThePrimaryAndProvidesVolumeRoles) {
  Harness h(plan_, "west");
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_NE(*s, nullptr);
  EXPECT_EQ((*s)->name(), "replication");
  auto* roles = h.ctx().caps.Get<VolumeRoles>();
  ASSERT_NE(roles, nullptr);
  EXPECT_EQ(roles->Volumes(), std::vector<std::string>{"data"});
  auto role = roles->RoleOf("data");
  ASSERT_TRUE(role);
  EXPECT_FALSE(role->source);
  EXPECT_EQ(role->source_region, "east");
  EXPECT_EQ(role->epoch, 1u);
  EXPECT_FALSE(roles->RoleOf("nope"));
  // The first start saved the role where the next start reads it.
  auto saved = state::keys::VolumeRoleOf("west", "data").Get(h.store());
  ASSERT_TRUE(saved.ok() && saved->has_value());
  EXPECT_EQ((*saved)->source_region, "east");
  EXPECT_EQ(SourceOf(h.ctx().plan, h.ctx().region, roles, "data"), "east");
}

// A promote ran on the event loop and re-walked the volume there: now the
// API answers at once (202) and the change's steps show in status.
TEST_F(ReplicationServiceTest, PromoteRunsOnTheWorkerAndSavesTheNewEpoch) {
  Harness h(plan_, "west");
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Start().ok());
  auto* roles = h.ctx().caps.Get<VolumeRoles>();

  EXPECT_EQ(h.Call("POST", "/v1/replication/data/promote").status, 401);
  EXPECT_EQ(h.Call("POST", "/v1/replication/data/promote", "", "wrong").status, 401);
  EXPECT_EQ(h.Call("POST", "/v1/replication/nope/promote", "", "t0ken").status, 404);
  auto r = h.Call("POST", "/v1/replication/data/promote", "", "t0ken");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Json::parse(r.body)["state"], "running");
  EXPECT_EQ(WaitForChange(*roles), "done");

  auto role = roles->RoleOf("data");
  EXPECT_TRUE(role->source);
  EXPECT_EQ(role->epoch, 2u);
  auto saved = state::keys::VolumeRoleOf("west", "data").Get(h.store());
  EXPECT_TRUE((*saved)->source);
  EXPECT_EQ((*saved)->epoch, 2u);
  EXPECT_EQ(SourceOf(h.ctx().plan, h.ctx().region, roles, "data"), "west");

  auto status = Json::parse(h.Call("GET", "/v1/replication/data").body);
  EXPECT_EQ(status["role"], "source");
  EXPECT_EQ(status["change"]["action"], "promote");
  EXPECT_EQ(status["change"]["state"], "done");
  EXPECT_FALSE(status["change"]["finished_at"].is_null());
  EXPECT_EQ(status["targets"].size(), 1u);

  // Already the source: refused, nothing changes.
  auto again = h.Call("POST", "/v1/replication/data/promote", "", "t0ken");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(roles->RoleOf("data")->epoch, 2u);
  (*s)->Stop();
}

// East was the source; a failover made west primary at epoch 2 while east's
// agent was down. East's copy starts fenced: it never sends, not even once.
TEST_F(ReplicationServiceTest, ASourceSupersededWhileDownStartsFenced) {
  Harness h(plan_, "east");
  ASSERT_TRUE(state::keys::VolumeRoleOf("east", "data").Put(h.store(), state::VolumeRole{true, "", 1, false}).ok());
  ASSERT_TRUE(state::keys::Primary().Put(h.store(), state::PrimaryRecord{"west", 2, "", "test"}).ok());
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_TRUE((*s)->Start().ok());
  auto* roles = h.ctx().caps.Get<VolumeRoles>();
  EXPECT_TRUE(roles->RoleOf("data")->fenced);
  EXPECT_TRUE(roles->Sending("data").empty());
  EXPECT_TRUE((**state::keys::VolumeRoleOf("east", "data").Get(h.store())).fenced);
  auto status = Json::parse(h.Call("GET", "/v1/replication/data").body);
  EXPECT_EQ(status["role"], "fenced");
  EXPECT_EQ(SourceOf(h.ctx().plan, h.ctx().region, roles, "data"), std::nullopt);
  (*s)->Stop();
}

TEST_F(ReplicationServiceTest, ReverseChecksItsSourceAndEpoch) {
  Harness h(plan_, "east");
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Start().ok());
  auto* roles = h.ctx().caps.Get<VolumeRoles>();
  EXPECT_TRUE(roles->RoleOf("data")->source);
  std::string path = "/v1/replication/data/reverse";
  EXPECT_EQ(h.Call("POST", path, "not json", "t0ken").status, 400);
  EXPECT_EQ(h.Call("POST", path, R"({"source": "east", "epoch": 2})", "t0ken").status, 400);  // itself
  EXPECT_EQ(h.Call("POST", path, R"({"source": "mars", "epoch": 2})", "t0ken").status, 404);
  EXPECT_EQ(h.Call("POST", path, R"({"source": "west", "epoch": 0})", "t0ken").status, 409);  // older
  std::promise<Status> done;
  ASSERT_TRUE(roles->Reverse("data", "west", 2, [&](const Status& st) { done.set_value(st); }).ok());
  auto outcome = done.get_future();
  ASSERT_EQ(outcome.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(outcome.get().ok());
  auto role = roles->RoleOf("data");
  EXPECT_FALSE(role->source);
  EXPECT_EQ(role->source_region, "west");
  EXPECT_EQ(role->epoch, 2u);
  EXPECT_EQ(SourceOf(h.ctx().plan, h.ctx().region, roles, "data"), "west");
  (*s)->Stop();
}

// Without a key the volume cannot replicate: a change is refused with the
// reason, and the series of the volume are still exported (0).
TEST_F(ReplicationServiceTest, AVolumeWithoutAKeyIsRefusedButStillMeasured) {
  fs::remove(dir_ / "key");
  Harness h(plan_, "west");
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_TRUE((*s)->Start().ok());
  auto r = h.Call("POST", "/v1/replication/data/promote", "", "t0ken");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("key"), std::string::npos) << r.body;
  EXPECT_NE(h.ctx().metrics.Render().find("lifeboat_replication_replicating{volume=\"data\",role=\"target\"} 0"),
            std::string::npos);
  (*s)->Stop();
}

TEST(ReplicationServiceAbsent, NoVolumeHereNoService) {
  Harness h("name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
            "  west: { role: standby, agent: 127.0.0.1:2 }\n",
            "east");
  auto s = MakeReplicationService(h.ctx());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, nullptr);
  EXPECT_EQ(h.ctx().caps.Get<VolumeRoles>(), nullptr);
}

// The one answer to "which region is the source of V".
class FixedRoles final : public VolumeRoles {
 public:
  explicit FixedRoles(state::VolumeRole role) : role_(role) {}
  std::vector<std::string> Volumes() const override { return {"data"}; }
  std::optional<state::VolumeRole> RoleOf(std::string_view v) const override {
    return v == "data" ? std::optional(role_) : std::nullopt;
  }
  std::optional<RoleChange> LastChange(std::string_view) const override { return std::nullopt; }
  std::vector<TargetSync> Sending(std::string_view) const override { return {}; }
  Status Promote(std::string_view, uint64_t, Done) override { return Internal("not here"); }
  Status Fence(std::string_view, uint64_t, Done) override { return Internal("not here"); }
  void HoldSending(bool) override {}
  Status Reverse(std::string_view, const std::string&, uint64_t, Done) override { return Internal("not here"); }

 private:
  state::VolumeRole role_;
};

TEST(SourceOf, TheRoleElseThePlansPrimary) {
  Harness h("name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
            "  west: { role: standby, agent: 127.0.0.1:2 }\nvolumes:\n  data: { path: { east: /a, west: /b } }\n"
            "  logs: { path: { east: /c, west: /d } }\n",
            "west");
  const auto& plan = h.ctx().plan;
  const auto& west = h.ctx().region;
  FixedRoles promoted(state::VolumeRole{true, "", 2});
  FixedRoles following(state::VolumeRole{false, "east", 1});
  EXPECT_EQ(SourceOf(plan, west, &promoted, "data"), "west");
  EXPECT_EQ(SourceOf(plan, west, &following, "data"), "east");
  EXPECT_EQ(SourceOf(plan, west, &promoted, "logs"), "east");  // not replicated: the primary
  EXPECT_EQ(SourceOf(plan, west, nullptr, "data"), "east");
  EXPECT_EQ(SourceOf(plan, west, nullptr, "nope"), std::nullopt);
}

TEST(TrafficService, SwitchesThroughItsInterfaceAndItsRoute) {
  std::string plan = "name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
                     "  west: { role: standby, agent: 127.0.0.1:2 }\n  wit: { role: witness, agent: 127.0.0.1:3 }\n"
                     "routing_controls: { safety: { min_on: 1 } }\n"
                     "dns:\n  zone: example.com.\n  listen: [127.0.0.1:53]\n  ns: [ns1]\n  records:\n"
                     "    - { name: ns1, type: A, value: 127.0.0.53 }\n";
  Harness h(plan, "east");
  auto s = MakeTrafficService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_NE(*s, nullptr);
  auto* sw = h.ctx().caps.Get<TrafficSwitch>();
  ASSERT_NE(sw, nullptr);
  EXPECT_TRUE(sw->IsOn("west"));
  auto off = sw->Switch("west", false, false, "test");
  ASSERT_TRUE(off.ok()) << off.error().ToString();
  EXPECT_FALSE(sw->IsOn("west"));
  auto saved = state::keys::RoutingControlOf("west").Get(h.store());
  ASSERT_TRUE(saved.ok() && saved->has_value());
  EXPECT_FALSE((*saved)->on);
  // The safety rule keeps one region on.
  auto last = sw->Switch("east", false, false, "test");
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(sw->Switch("mars", false, false, "t").error().code(), Code::kNotFound);
  EXPECT_EQ(sw->Switch("wit", false, false, "t").error().code(), Code::kInvalidArgument);
  // The route: a "force" that is not a boolean threw out of the handler.
  auto r = h.Call("PUT", "/v1/routing-controls/west", R"({"on": true, "force": "yes", "by": 7})", "t0ken");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(sw->IsOn("west"));
  EXPECT_EQ(h.Call("PUT", "/v1/routing-controls/west", R"({"on": true})").status, 401);
  auto status = (*s)->StatusJson();
  EXPECT_TRUE(status.contains("health") && status.contains("routing_controls") && status.contains("dns"));
}

TEST(TrafficService, AWitnessServesNoTraffic) {
  Harness h("name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
            "  west: { role: standby, agent: 127.0.0.1:2 }\n  wit: { role: witness, agent: 127.0.0.1:3 }\n"
            "dns:\n  zone: example.com.\n  listen: [127.0.0.1:53]\n  ns: [ns1]\n  records:\n"
            "    - { name: ns1, type: A, value: 127.0.0.53 }\n",
            "wit");
  auto s = MakeTrafficService(h.ctx());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, nullptr);
}

// A drill recorded in the store shows in status (newest first) and in the
// metric the drill alert reads, per scenario: the last drill of a scenario
// decides, so a failed drill followed by a passing one clears the alert.
TEST(DrillsService, FollowsTheRecordedDrillsIntoStatusAndTheAlertsMetric) {
  Harness h("name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
            "  west: { role: standby, agent: 127.0.0.1:2 }\n",
            "west");
  auto record = [&](const std::string& id, const std::string& scenario, bool pass) {
    state::DrillRecord d;
    d.id = id;
    d.scenario = scenario;
    d.pass = pass;
    d.ended_at = "2026-12-03T13:00:10Z";
    if (!pass) d.missed = {"RTO 12s is over the objective 10s"};
    d.report = R"({"big":"report"})";
    ASSERT_TRUE(state::keys::DrillOf(id).Put(h.store(), d).ok());
  };
  record("20261203T120000Z-region-outage", "region-outage", true);
  auto s = MakeDrillsService(h.ctx());
  ASSERT_TRUE(s.ok() && *s != nullptr);
  ASSERT_TRUE((*s)->Start().ok());
  record("20261203T130000Z-region-outage", "region-outage", false);
  record("20261203T130100Z-planned-switchover", "planned-switchover", true);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((*s)->StatusJson()["recorded"] != 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  auto status = (*s)->StatusJson();
  ASSERT_EQ(status["recorded"], 3) << status.dump();
  ASSERT_EQ(status["recent"].size(), 3u);
  EXPECT_EQ(status["recent"][0]["id"], "20261203T130100Z-planned-switchover");
  EXPECT_EQ(status["recent"][1]["verdict"], "fail");
  EXPECT_EQ(status["recent"][1]["missed"][0], "RTO 12s is over the objective 10s");
  EXPECT_TRUE(status["recent"][1]["rto_seconds"].is_null());
  std::string text = h.metrics().Render();
  EXPECT_NE(text.find("lifeboat_drill_last_passed{scenario=\"region-outage\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("lifeboat_drill_last_passed{scenario=\"planned-switchover\"} 1"), std::string::npos);
  EXPECT_NE(text.find("lifeboat_drill_last_timestamp_seconds{scenario=\"region-outage\"} 1796302810"), std::string::npos)
      << text;
  record("20261203T140000Z-region-outage", "region-outage", true);
  ASSERT_TRUE(h.store().Delete("drills/20261203T120000Z-region-outage").ok());
  // The put and the delete arrive as two watch events: wait for both (the
  // metric moves with the first, the count with the second).
  auto settled = [&] {
    return h.metrics().Render().find("lifeboat_drill_last_passed{scenario=\"region-outage\"} 1") != std::string::npos &&
           (*s)->StatusJson()["recorded"] == 3;
  };
  deadline = std::chrono::steady_clock::now() + 5s;
  while (!settled() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(h.metrics().Render().find("lifeboat_drill_last_passed{scenario=\"region-outage\"} 1"), std::string::npos);
  EXPECT_EQ((*s)->StatusJson()["recorded"], 3);
  (*s)->Stop();
}

TEST(BackupService, RunNowNeedsTheTokenAndAKnownSchedule) {
  fs::path dir = fs::temp_directory_path() / ("lb-services-backup-" + std::to_string(::getpid()));
  Harness h("name: t\npattern: warm-standby\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
            "  west: { role: standby, agent: 127.0.0.1:2 }\n"
            "volumes:\n  data: { path: { east: /nonexistent, west: /nonexistent2 } }\n"
            "backup:\n  locations:\n    here: { type: filesystem, path: " + dir.string() + " }\n"
            "  schedules:\n    nightly: { cron: '0 3 * * *', volumes: [data], location: here }\n",
            "east");
  ASSERT_TRUE(state::keys::LastBackupOf("east", "nightly", "data").Put(h.store(), state::LastBackup{5'000'000'000, "abc", 1, 1, 1}).ok());
  auto s = MakeBackupService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_NE(*s, nullptr);
  EXPECT_EQ(h.Call("POST", "/v1/backups/nightly/run").status, 401);
  EXPECT_EQ(h.Call("POST", "/v1/backups/weekly/run", "", "t0ken").status, 404);
  EXPECT_EQ(h.Call("GET", "/v1/backups/nightly/run").status, 405);
  // The last success was read back from the store.
  auto status = (*s)->StatusJson();
  ASSERT_EQ(status["schedules"].size(), 1u);
  EXPECT_EQ(status["schedules"][0]["last_backup"], "abc");
}

// The backup-restore pattern's failover step: the newest backup of the
// volume in any location is restored into this region's copy; a volume with
// no backup says so without an error.
TEST(BackupService, RestoresTheNewestBackupOfAVolumeFromAnyLocation) {
  fs::path dir = fs::temp_directory_path() / ("lb-services-restore-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "src");
  {
    std::ofstream(dir / "pw") << "secret\n";
  }
  std::string plan = "name: t\npattern: backup-restore\nregions:\n  east: { role: primary, agent: 127.0.0.1:1 }\n"
                     "  west: { role: standby, agent: 127.0.0.1:2 }\n"
                     "volumes:\n"
                     "  data: { path: { east: " + (dir / "src").string() + ", west: " + (dir / "west").string() + " } }\n"
                     "  empty: { path: { east: /nonexistent, west: " + (dir / "west-empty").string() + " } }\n"
                     "backup:\n  locations:\n"
                     "    a: { type: filesystem, path: " + (dir / "a").string() + ", password_file: " + (dir / "pw").string() + " }\n"
                     "    b: { type: filesystem, path: " + (dir / "b").string() + ", password_file: " + (dir / "pw").string() + " }\n";
  Harness h(plan, "west");
  // Two backups of the volume: the older in a, the newer in b.
  auto backup_to = [&](const std::string& name, const std::string& content) {
    const plan::Location* loc = h.ctx().plan.FindLocation(name);
    auto backend = backup::OpenBackend(*loc);
    ASSERT_TRUE(backend.ok()) << backend.error().message();
    ASSERT_TRUE(repo::Repository::Init(**backend, true, "secret", chunk::ChunkParams::ForAverage(64 << 10),
                                       repo::ScryptParams{1 << 10, 1, 1})
                    .ok());
    auto repo = backup::OpenLocation(*loc);
    ASSERT_TRUE(repo.ok()) << repo.error().message();
    std::ofstream(dir / "src" / "file") << content;
    backup::BackupOptions o;
    o.path = (dir / "src").string();
    o.source = "volume:data";
    ASSERT_TRUE(backup::CreateBackup(**repo, o).ok());
  };
  backup_to("a", "older");
  backup_to("b", "newer");
  auto s = MakeBackupService(h.ctx());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_TRUE((*s)->Start().ok());
  auto* restorer = h.ctx().caps.Get<VolumeRestorer>();
  ASSERT_NE(restorer, nullptr);
  auto restore = [&](const std::string& volume) {
    std::promise<state::RestoreRecord::Volume> done;
    restorer->RestoreLatest(volume, [&](const state::RestoreRecord::Volume& v) { done.set_value(v); });
    return done.get_future().get();
  };
  auto data = restore("data");
  EXPECT_EQ(data.error, "");
  EXPECT_EQ(data.location, "b");
  EXPECT_EQ(data.files, 1u);
  std::ifstream in(dir / "west" / "file");
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "newer");
  auto empty = restore("empty");
  EXPECT_EQ(empty.backup, "");
  EXPECT_EQ(empty.error, "");
  EXPECT_FALSE(fs::exists(dir / "west-empty"));
  (*s)->Stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lifeboat::agent
