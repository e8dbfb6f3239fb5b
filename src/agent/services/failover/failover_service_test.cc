// The failover service of three regions' agents (east primary, west
// standby, a witness) on one shared store, through the service seam: fake
// traffic (health set by the test, routing controls kept in the store) and
// fake volume roles (saved in the store as the replication service saves
// them). Real time, short grace and lease; waits poll, nothing asserts a
// duration.
#include "agent/services/failover/failover_service.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "agent/capabilities.h"
#include "orchestrate/primary.h"
#include "orchestrate/runbook.h"
#include "plan/load.h"
#include "state/keys.h"
#include "state/sqlite_store.h"
#include "state/store_testing.h"

namespace lifeboat::agent {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const char* kPlan = R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  witness: { role: witness, agent: 127.0.0.1:3 }
checks:
  web: { type: tcp, interval: 100ms, fall: 1 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:9, check: web }
  web-west: { region: west, address: 127.0.0.1:9, check: web }
volumes:
  data: { path: { east: /e, west: /w } }
failover:
  mode: MODE
  grace: 300ms
  lease: 1s
  self_fence: stop-app
  steps: [fence, promote, switch-traffic, announce, verify]
  hooks:
    stop-app: { run: "echo stopped > SELF_FENCE_FILE" }
    announce: { run: "echo moved from $LIFEBOAT_OLD_PRIMARY to $LIFEBOAT_NEW_PRIMARY at $LIFEBOAT_EPOCH" }
)";

// What each observer sees of each endpoint: healthy unless the test says not.
class World {
 public:
  void SetDown(const std::string& observer, const std::string& endpoint, bool down) {
    std::lock_guard lock(mu_);
    if (down) {
      down_.insert({observer, endpoint});
    } else {
      down_.erase({observer, endpoint});
    }
  }
  bool Healthy(const std::string& observer, const std::string& endpoint) const {
    std::lock_guard lock(mu_);
    return !down_.count({observer, endpoint});
  }

 private:
  mutable std::mutex mu_;
  std::set<std::pair<std::string, std::string>> down_;
};

class FakeTraffic final : public TrafficSwitch {
 public:
  FakeTraffic(World& world, std::string region, state::Store& store) : world_(world), region_(std::move(region)), store_(store) {}
  Result<state::RoutingControl> Switch(const std::string& region, bool on, bool, const std::string& who) override {
    state::RoutingControl c{on, who, "now"};
    LB_RETURN_IF_ERROR(StatusOf(state::keys::RoutingControlOf(region).Put(store_, c)));
    return c;
  }
  bool IsOn(const std::string& region) const override {
    auto c = state::keys::RoutingControlOf(region).Get(store_);
    return !c.ok() || !*c || (*c)->on;
  }
  bool Healthy(const std::string& endpoint) const override { return world_.Healthy(region_, endpoint); }

 private:
  World& world_;
  std::string region_;
  state::Store& store_;
};

// Roles as the replication service keeps them, changed at once.
class FakeRoles final : public VolumeRoles {
 public:
  FakeRoles(std::string region, state::Store& store) : region_(std::move(region)), store_(store) {
    role_.source = region_ == "east";
    role_.source_region = role_.source ? "" : "east";
    EXPECT_TRUE(Save().ok());
  }
  std::vector<std::string> Volumes() const override { return {"data"}; }
  std::optional<state::VolumeRole> RoleOf(std::string_view) const override {
    std::lock_guard lock(mu_);
    return role_;
  }
  std::optional<RoleChange> LastChange(std::string_view) const override { return std::nullopt; }
  // A source's one target, in sync as the test says, or streaming behind
  // by a lag the test sets.
  std::vector<TargetSync> Sending(std::string_view) const override {
    std::lock_guard lock(mu_);
    if (!role_.source || role_.fenced) return {};
    bool known = in_sync_ || lag_ms_ >= 0;
    return {TargetSync{region_ == "east" ? "west" : "east", in_sync_.load(), in_sync_ ? 0 : lag_ms_ / 1000.0,
                       in_sync_ ? 0u : 4096u, known}};
  }
  void SetInSync(bool in_sync) { in_sync_ = in_sync; }
  void SetLag(int64_t ms) { lag_ms_ = ms; }
  Status Promote(std::string_view, uint64_t epoch, Done) override {
    std::lock_guard lock(mu_);
    role_ = {true, "", epoch, false};
    return Save();
  }
  Status Fence(std::string_view, uint64_t, Done) override {
    std::lock_guard lock(mu_);
    role_.fenced = true;
    return Save();
  }
  Status Reverse(std::string_view, const std::string& source, uint64_t epoch, Done) override {
    std::lock_guard lock(mu_);
    role_ = {false, source, epoch, false};
    return Save();
  }
  void HoldSending(bool held) override { held_ = held; }
  bool held() const { return held_; }

 private:
  Status Save() { return StatusOf(state::keys::VolumeRoleOf(region_, "data").Put(store_, role_)); }
  std::string region_;
  state::Store& store_;
  mutable std::mutex mu_;
  state::VolumeRole role_;
  std::atomic<bool> held_{false};
  std::atomic<bool> in_sync_{true};
  std::atomic<int64_t> lag_ms_{-1};  // when not in sync: -1 unknown
};

// A region's backup service restoring: says it restored a fixed backup, or
// that there is none.
class FakeRestorer final : public VolumeRestorer {
 public:
  void RestoreLatest(const std::string& volume, Done done) override {
    state::RestoreRecord::Volume out;
    out.volume = volume;
    if (has_backup) {
      out.location = "dr";
      out.backup = "abcdef0123456789";
      out.files = 3;
      out.bytes = 3000;
    }
    {
      std::lock_guard lock(mu_);
      restored_.push_back(volume);
    }
    done(out);
  }
  std::vector<std::string> restored() const {
    std::lock_guard lock(mu_);
    return restored_;
  }
  std::atomic<bool> has_backup{true};

 private:
  mutable std::mutex mu_;
  std::vector<std::string> restored_;
};

// One region's agent: its context (its own view of the shared store, which
// the test can cut), its fakes and its failover service.
struct Agent {
  Agent(const plan::Plan& plan, const std::string& region, state::Store& shared, World& world)
      : store(shared), traffic(world, region, store), roles(region, store) {
    // Every agent's probes come from the test's world (the witness's agent
    // would run a health monitor of its own, which the integration tests use).
    caps.Provide<TrafficSwitch>(&traffic);
    if (region != "witness") caps.Provide<VolumeRoles>(&roles);
    if (region != "witness") caps.Provide<VolumeRestorer>(&restorer);
    ctx.reset(new ServiceContext{plan, *plan.FindRegion(region), io, store, metrics, Clock::Real(), router, caps,
                                 token, dns_listen});
    auto s = MakeFailoverService(*ctx);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    service = std::move(*s);
  }
  ~Agent() { service->Stop(); }
  net::HttpResponse Post(const std::string& body, const std::string& with_token = "t0ken") {
    net::HttpRequest req;
    req.method = "POST";
    req.path = "/v1/failover";
    req.body = body;
    req.remote = "127.0.0.1";
    req.headers.emplace_back("Authorization", "Bearer " + with_token);
    return router.Call(req);
  }
  Json Status() { return Json::parse(service->StatusJson().dump()); }

  state::CuttableStore store;
  FakeTraffic traffic;
  FakeRoles roles;
  FakeRestorer restorer;
  boost::asio::io_context io;
  metrics::Registry metrics;
  Router router;
  Capabilities caps;
  std::string token = "t0ken";
  std::vector<Address> dns_listen;
  std::unique_ptr<ServiceContext> ctx;
  std::unique_ptr<Service> service;
};

class FailoverServiceTest : public ::testing::Test {
 protected:
  void Start(const std::string& mode) {
    self_fence_file_ = ::testing::TempDir() + "self-fence-" + std::to_string(::getpid());
    std::remove(self_fence_file_.c_str());
    std::string text = kPlan;
    text.replace(text.find("MODE"), 4, mode);
    text.replace(text.find("SELF_FENCE_FILE"), 15, self_fence_file_);
    if (edit_plan_) edit_plan_(text);
    auto r = plan::LoadPlanText(text, "t.yaml");
    ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
    plan_ = *r.plan;
    store_ = std::move(*state::SqliteStore::Open(":memory:"));
    for (const char* region : {"east", "west", "witness"}) {
      agents_[region] = std::make_unique<Agent>(plan_, region, *store_, world_);
    }
    agents_["east"]->roles.SetInSync(east_in_sync_);
    agents_["east"]->roles.SetLag(east_lag_ms_);
    for (auto& [_, a] : agents_) ASSERT_TRUE(a->service->Start().ok());
  }
  void TearDown() override {
    agents_.clear();
    std::remove(self_fence_file_.c_str());
  }
  state::PrimaryRecord Primary() { return orchestrate::CurrentPrimary(*store_, plan_)->record; }
  std::optional<state::FailoverRun> Run() { return *state::keys::CurrentFailover().Get(*store_); }
  bool RunEnded() {
    auto r = Run();
    return r && r->state != "running";
  }
  size_t Views() { return store_->List(state::keys::kViewsPrefix)->kvs.size(); }

  World world_;
  plan::Plan plan_;
  std::unique_ptr<state::Store> store_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
  std::string self_fence_file_;
  bool east_in_sync_ = true;  // whether east's volume starts in sync at west
  int64_t east_lag_ms_ = -1;  // when not: how far behind west's copy streams (-1 unknown)
  std::function<void(std::string&)> edit_plan_;
};

// The backup-restore pattern: the volume (without a replication section, so
// not replicated) is restored into the new primary from its newest backup
// before traffic moves there.
void BackupRestorePlan(std::string& text) {
  auto replace = [&](const std::string& from, const std::string& to) { text.replace(text.find(from), from.size(), to); };
  replace("pattern: warm-standby", "pattern: backup-restore");
  replace("  steps: [fence, promote, switch-traffic, announce, verify]\n", "");
  text += "backup:\n  locations: { dr: { type: filesystem, path: /nonexistent } }\n";
}

TEST_F(FailoverServiceTest, AQuorumSeeingThePrimaryDownFailsOverOnceAndFencesTheOldSource) {
  Start("automatic");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  // Every region sees east's endpoint fail.
  for (const char* observer : {"east", "west", "witness"}) world_.SetDown(observer, "web-east", true);
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s)) << agents_["west"]->Status().dump(2);
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  EXPECT_EQ(run.from, "east");
  EXPECT_EQ(run.to, "west");
  EXPECT_EQ(run.epoch, 2u);
  ASSERT_EQ(run.steps.size(), 5u);  // fence, promote, switch-traffic, announce, verify
  for (const auto& s : run.steps) EXPECT_EQ(s.state, "done") << s.name << ": " << s.output;
  EXPECT_EQ(run.steps[3].output, "hook announce: moved from east to west at 2");
  // Unplanned: the fence reports what it accepted, from east's view before it went down.
  EXPECT_NE(run.steps[0].output.find("accepted lag: data: last seen in sync "), std::string::npos)
      << run.steps[0].output;
  EXPECT_NE(run.steps[0].output.find("changes east made after 20"), std::string::npos) << run.steps[0].output;
  EXPECT_NE(run.steps[4].output.find("web-west passes its check from"), std::string::npos) << run.steps[4].output;

  auto p = Primary();
  EXPECT_EQ(p.region, "west");
  EXPECT_EQ(p.epoch, 2u);
  // The data moved by the epoch: west's copy is the source, east's is fenced.
  auto west = agents_["west"]->roles.RoleOf("data");
  EXPECT_TRUE(west->source);
  EXPECT_EQ(west->epoch, 2u);
  ASSERT_TRUE(state::WaitUntil([&] { return agents_["east"]->roles.RoleOf("data")->fenced; }, 10s));
  EXPECT_FALSE(agents_["east"]->traffic.IsOn("east"));
  EXPECT_TRUE(agents_["east"]->traffic.IsOn("west"));

  // Still down, but the primary is west now: nothing runs again.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(Run()->id, run.id);
  EXPECT_EQ(Primary().epoch, 2u);
  // The agent that drove the run counts it: west or the witness, whichever
  // took the run's lock first. That is the one that began it, or another
  // that saw the run before its beginner took the lock and resumed it.
  std::string driver = run.owner.substr(0, run.owner.find('@'));
  ASSERT_TRUE(agents_.count(driver)) << run.owner;
  auto metrics = agents_[driver]->metrics.Render();
  EXPECT_TRUE(metrics.find("lifeboat_failover_runs_total{kind=\"automatic\",result=\"done\"} 1") != std::string::npos ||
              metrics.find("lifeboat_failover_runs_total{kind=\"resume\",result=\"done\"} 1") != std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("lifeboat_failover_epoch 2"), std::string::npos);
  EXPECT_NE(metrics.find("lifeboat_failover_accepted_lag_seconds{volume=\"data\"} "), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("lifeboat_failover_accepted_lag_seconds{volume=\"data\"} NaN"), std::string::npos) << metrics;
}

// An unplanned failover from a primary whose volume was never seen in sync
// goes ahead (that is what unplanned means) and says the loss is unknown.
TEST_F(FailoverServiceTest, AnUnplannedFailoverSaysWhenItCannotTellTheLag) {
  east_in_sync_ = false;
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return agents_["west"]->Post(R"({"to": "west"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  EXPECT_NE(run.steps[0].output.find("accepted lag: data: this agent never saw how far behind it was, so what "
                                     "west lacks is unknown"),
            std::string::npos)
      << run.steps[0].output;
  auto metrics = agents_["west"]->metrics.Render();
  EXPECT_NE(metrics.find("lifeboat_failover_accepted_lag_seconds{volume=\"data\"} NaN"), std::string::npos) << metrics;
}

// A volume written without pause is never in sync, but its source streams
// and knows the lag: the failover reports that lag, not "unknown".
TEST_F(FailoverServiceTest, AnUnplannedFailoverFromAVolumeNeverAtRestReportsItsStreamingLag) {
  east_in_sync_ = false;
  east_lag_ms_ = 250;
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  std::this_thread::sleep_for(500ms);  // a tick of west's reads east's view
  ASSERT_TRUE(state::WaitUntil([&] { return agents_["west"]->Post(R"({"to": "west"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  EXPECT_NE(run.steps[0].output.find("accepted lag: data: last seen 250ms behind, "), std::string::npos)
      << run.steps[0].output;
  auto metrics = agents_["west"]->metrics.Render();
  auto at = metrics.find("lifeboat_failover_accepted_lag_seconds{volume=\"data\"} ");
  ASSERT_NE(at, std::string::npos) << metrics;
  double lag = std::stod(metrics.substr(at + std::string("lifeboat_failover_accepted_lag_seconds{volume=\"data\"} ").size()));
  EXPECT_GE(lag, 0.25);
}

// A partition between the witness and the primary: one observer alone.
TEST_F(FailoverServiceTest, OneObserverSeeingThePrimaryDownNeverFailsOver) {
  Start("automatic");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  world_.SetDown("west", "web-east", true);
  ASSERT_TRUE(state::WaitUntil(
      [&] {
        auto v = state::keys::ViewOf("west").Get(*store_);
        return v.ok() && *v && (*v)->primary_down;
      },
      10s));
  std::this_thread::sleep_for(1s);  // ticks well past the grace
  EXPECT_FALSE(Run().has_value());
  EXPECT_EQ(Primary().region, "east");
  auto verdict = agents_["west"]->Status()["verdict"];
  EXPECT_FALSE(verdict["failover"].get<bool>());
  EXPECT_EQ(verdict["votes"], 1);
}

TEST_F(FailoverServiceTest, AManualFailoverChecksItsTargetAndRuns) {
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  auto& east = *agents_["east"];
  EXPECT_EQ(east.Post(R"({"to": "west"})", "wrong").status, 401);
  EXPECT_EQ(east.Post("nonsense").status, 400);
  EXPECT_EQ(east.Post(R"({"to": "mars"})").status, 400);
  EXPECT_EQ(east.Post(R"({"to": "witness"})").status, 400);
  EXPECT_EQ(east.Post(R"({"to": "east"})").status, 409);
  // West's endpoint fails everywhere: refused unless forced.
  for (const char* observer : {"east", "west", "witness"}) world_.SetDown(observer, "web-west", true);
  // Until east's agent (which answers) has read every view saying so.
  auto everyone_sees_west_down = [&] {
    auto views = east.Status()["views"];
    if (views.size() != 3) return false;
    for (const auto& v : views) {
      if (v["endpoints"]["web-west"].get<bool>()) return false;
    }
    return true;
  };
  ASSERT_TRUE(state::WaitUntil(everyone_sees_west_down, 10s));
  auto refused = east.Post(R"({"to": "west"})");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("west cannot become primary now: no endpoint healthy in a majority"), std::string::npos)
      << refused.body;
  for (const char* observer : {"east", "west", "witness"}) world_.SetDown(observer, "web-west", false);
  ASSERT_TRUE(state::WaitUntil([&] { return east.Post(R"({"to": "west", "by": "alice"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  EXPECT_EQ(Run()->state, "done") << state::Encode(*Run());
  EXPECT_EQ(Primary().region, "west");
  EXPECT_NE(Primary().by.find("east@"), std::string::npos) << Primary().by;
}

// One region's trouble reaching an endpoint does not change what the DNS
// servers answer: the views of a majority decide; without the store, the
// region's own probe does.
TEST_F(FailoverServiceTest, TheRegionsViewsTogetherDecideAnEndpointsHealth) {
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  auto* west = agents_["west"]->caps.Get<EndpointViews>();
  ASSERT_NE(west, nullptr);
  std::atomic<int> changes{0};
  west->OnChange([&] { ++changes; });
  ASSERT_TRUE(state::WaitUntil([&] { return west->Healthy("web-east") == std::optional<bool>(true); }, 10s));
  world_.SetDown("west", "web-east", true);
  ASSERT_TRUE(state::WaitUntil(
      [&] {
        auto v = state::keys::ViewOf("west").Get(*store_);
        return v.ok() && *v && !(*v)->endpoints[0].second;
      },
      10s));
  std::this_thread::sleep_for(500ms);  // ticks of every agent
  EXPECT_EQ(west->Healthy("web-east"), std::optional<bool>(true)) << "1 of 3 regions sees it down";
  world_.SetDown("witness", "web-east", true);
  ASSERT_TRUE(state::WaitUntil([&] { return west->Healthy("web-east") == std::optional<bool>(false); }, 10s))
      << "2 of 3 regions see it down";
  EXPECT_GT(changes.load(), 0);
  EXPECT_EQ(west->Healthy("no-such-endpoint"), std::nullopt);
  agents_["west"]->store.Cut(true);
  ASSERT_TRUE(state::WaitUntil([&] { return west->Healthy("web-east") == std::nullopt; }, 10s))
      << "without the store the views may be stale: the region's own probe decides";
  agents_["west"]->store.Cut(false);
}

// A planned failover switches the old primary off, waits while its volume is
// behind, moves the epoch once it is in sync, and the old primary follows.
TEST_F(FailoverServiceTest, APlannedFailoverWaitsForSyncAndTheOldPrimaryFollows) {
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  auto& east = *agents_["east"];
  east.roles.SetInSync(false);
  ASSERT_TRUE(state::WaitUntil(
      [&] { return east.Post(R"({"to": "west", "planned": true, "by": "alice"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return !east.traffic.IsOn("east"); }, 10s));
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Primary().region, "east") << "the epoch moved while east's volume was behind";
  EXPECT_EQ(Run()->state, "running");
  east.roles.SetInSync(true);
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  EXPECT_TRUE(run.planned);
  EXPECT_NE(run.steps[0].output.find("planned: every volume was in sync at the switch"), std::string::npos)
      << run.steps[0].output;
  EXPECT_EQ(Primary().region, "west");
  ASSERT_TRUE(state::WaitUntil([&] { return !east.roles.RoleOf("data")->source; }, 10s));
  auto role = east.roles.RoleOf("data");
  EXPECT_FALSE(role->fenced) << "a source moved away from in sync follows; it is not stale";
  EXPECT_EQ(role->source_region, "west");
  EXPECT_EQ(role->epoch, 2u);
}

// Resolvers may send clients to east for the TTL of its answers after its
// traffic went off; a write there after the switch would be overwritten
// when east follows west. So a planned switch waits out the TTL, even with
// every volume in sync from the start.
TEST_F(FailoverServiceTest, APlannedFailoverWaitsOutTheDnsTtlOfTheOldPrimary) {
  edit_plan_ = [](std::string& text) {
    text += R"(
dns:
  zone: example.com.
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53, ttl: 1h }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 3s }
)";
  };
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  auto& east = *agents_["east"];
  ASSERT_TRUE(state::WaitUntil(
      [&] { return east.Post(R"({"to": "west", "planned": true, "by": "alice"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return !east.traffic.IsOn("east"); }, 10s));
  // In sync all along, the switch used to come after a 1 s settle; the
  // TTL's 3 s cannot have passed 2 s after the traffic was seen off.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(Primary().region, "east") << "the epoch moved before the TTL of east's answers ran out";
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  EXPECT_EQ(Run()->state, "done") << state::Encode(*Run());
  EXPECT_EQ(Primary().region, "west");
}

// The agent driving a run died after its first step: the lock went with its
// lease, and a serving agent resumes at the step that was running, in
// manual mode too (a manual run's driver can die as well).
TEST_F(FailoverServiceTest, ARunWhoseDriverDiedIsResumedAtItsStep) {
  Start("manual");
  struct Nothing : orchestrate::StepRunner {
    Result<std::string> RunStep(const state::StepRecord&, const state::FailoverRun&) override { return std::string(); }
  } nothing;
  orchestrate::Runbook rb(*store_, nothing, {"ghost@gone:1"});
  // The ghost began the run under a lease of its own and died before it
  // drove a step: the lock goes when that lease ends.
  auto lease = store_->Grant(1s);
  ASSERT_TRUE(lease.ok());
  auto begun = rb.Begin("east", "west", 2, false, plan_.failover.steps, *lease);
  ASSERT_TRUE(begun.ok()) << begun.error().ToString();
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  EXPECT_NE(run.owner, "ghost@gone:1");
  EXPECT_EQ(Primary().region, "west");
}

// The primary loses the store for a lease: it stops sending and runs the
// self-fence hook; when the store answers again it sends again (it is still
// primary: nobody failed over, the mode is manual).
TEST_F(FailoverServiceTest, APrimaryThatLosesTheStoreFencesItself) {
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  auto& east = *agents_["east"];
  east.store.Cut(true);
  ASSERT_TRUE(state::WaitUntil([&] { return east.roles.held(); }, 10s));
  EXPECT_TRUE(east.Status()["self_fenced"].get<bool>());
  EXPECT_FALSE(east.Status()["store_error"].is_null());
  ASSERT_TRUE(state::WaitUntil([&] { return std::ifstream(self_fence_file_).good(); }, 10s));
  EXPECT_NE(east.metrics.Render().find("lifeboat_failover_self_fence_total 1"), std::string::npos);
  // A standby losing the store does not fence anything.
  agents_["west"]->store.Cut(true);
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(agents_["west"]->roles.held());
  agents_["west"]->store.Cut(false);

  east.store.Cut(false);
  ASSERT_TRUE(state::WaitUntil([&] { return !east.roles.held(); }, 10s));
  EXPECT_FALSE(east.Status()["self_fenced"].get<bool>());
}

// backup-restore: the pattern's steps restore the newest backup of the
// volume in the new primary (by that region's own agent), before
// switch-traffic.
TEST_F(FailoverServiceTest, ABackupRestoreFailoverRestoresTheNewestBackupsBeforeTraffic) {
  edit_plan_ = BackupRestorePlan;
  Start("manual");
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  // The witness drives it: the restore still happens in west, by west's agent.
  ASSERT_TRUE(state::WaitUntil([&] { return agents_["witness"]->Post(R"({"to": "west"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 30s));
  auto run = *Run();
  EXPECT_EQ(run.state, "done") << state::Encode(run);
  std::vector<std::string> names;
  for (const auto& st : run.steps) names.push_back(st.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fence", "restore", "switch-traffic", "announce", "verify"}));
  EXPECT_EQ(run.steps[1].output, "restored in west: data: backup abcdef01 from dr, 3 files (2.9 KiB)");
  EXPECT_EQ(agents_["west"]->restorer.restored(), (std::vector<std::string>{"data"}));
  EXPECT_TRUE(agents_["east"]->restorer.restored().empty());
  auto record = state::keys::RestoreOf("west").Get(*store_);
  ASSERT_TRUE(record.ok() && *record);
  EXPECT_EQ((*record)->run, run.id + "#1");
  EXPECT_EQ((*record)->state, "done");
}

// No backup anywhere: the step fails (each attempt restores again) and the
// run fails before traffic moves to an empty region.
TEST_F(FailoverServiceTest, ABackupRestoreFailoverWithoutABackupFailsBeforeTraffic) {
  edit_plan_ = BackupRestorePlan;
  Start("manual");
  agents_["west"]->restorer.has_backup = false;
  ASSERT_TRUE(state::WaitUntil([&] { return Views() == 3; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return agents_["west"]->Post(R"({"to": "west"})").status == 202; }, 10s));
  ASSERT_TRUE(state::WaitUntil([&] { return RunEnded(); }, 60s));
  auto run = *Run();
  EXPECT_EQ(run.state, "failed");
  EXPECT_EQ(run.steps[1].state, "failed");
  EXPECT_EQ(run.steps[1].attempts, 3);
  EXPECT_NE(run.steps[1].output.find("restore in west failed: data: no backup in any location"), std::string::npos)
      << run.steps[1].output;
  EXPECT_EQ(run.steps[2].state, "pending") << "traffic moved to a region that restored nothing";
  EXPECT_EQ(agents_["west"]->restorer.restored().size(), 3u);
}

}  // namespace
}  // namespace lifeboat::agent
