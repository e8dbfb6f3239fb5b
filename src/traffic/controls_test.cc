#include "traffic/controls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "plan/load.h"
#include "state/sqlite_store.h"
#include "state/store_testing.h"

namespace lifeboat::traffic {
namespace {

namespace fs = std::filesystem;

class ControlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lb-controls-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto r = plan::LoadPlanText(R"(
name: t
pattern: active-active
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  north: { role: standby, agent: 127.0.0.1:3 }
  witness: { role: witness, agent: 127.0.0.1:4 }
routing_controls: { safety: { min_on: 2 } }
)", "t.yaml");
    ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
    plan_ = *r.plan;
    Open();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Open() {
    controls_.reset();
    store_.reset();
    store_ = std::move(*state::SqliteStore::Open((dir_ / "state.db").string()));
    metrics_ = std::make_unique<metrics::Registry>();
    controls_ = std::make_unique<RoutingControls>(*store_, plan_, *metrics_);
    ASSERT_TRUE(controls_->Load().ok());
  }
  fs::path dir_;
  plan::Plan plan_;
  std::unique_ptr<state::Store> store_;
  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<RoutingControls> controls_;
};

TEST_F(ControlsTest, EveryServingRegionStartsOn) {
  EXPECT_TRUE(controls_->IsOn("east"));
  EXPECT_EQ(controls_->All().size(), 3u);  // the witness has no switch
}

TEST_F(ControlsTest, SafetyRuleRefusesUnlessForced) {
  ASSERT_TRUE(controls_->Set("east", false, false, "alice").ok());
  auto refused = controls_->Set("west", false, false, "alice");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("at least 2"), std::string::npos);
  EXPECT_TRUE(controls_->IsOn("west"));
  ASSERT_TRUE(controls_->Set("west", false, true, "alice").ok());
  EXPECT_FALSE(controls_->IsOn("west"));
  ASSERT_TRUE(controls_->Set("east", true, false, "bob").ok());  // switching on is always allowed
  std::string m = metrics_->Render();
  EXPECT_NE(m.find("lifeboat_routing_control_changes_total{region=\"west\",result=\"refused\"} 1"), std::string::npos);
  EXPECT_NE(m.find("lifeboat_routing_control_changes_total{region=\"west\",result=\"forced\"} 1"), std::string::npos);
}

TEST_F(ControlsTest, UnknownAndWitnessRegionsAreInvalid) {
  EXPECT_EQ(controls_->Set("south", false, false, "x").error().code(), Code::kNotFound);
  EXPECT_EQ(controls_->Set("witness", false, false, "x").error().code(), Code::kInvalidArgument);
}

TEST_F(ControlsTest, SwitchesSurviveARestart) {
  ASSERT_TRUE(controls_->Set("north", false, false, "carol").ok());
  Open();
  EXPECT_FALSE(controls_->IsOn("north"));
  EXPECT_EQ(controls_->All()["north"].by, "carol");
}

TEST_F(ControlsTest, ChangesNotifyListeners) {
  int calls = 0;
  controls_->OnChange([&] { ++calls; });
  ASSERT_TRUE(controls_->Set("north", false, false, "x").ok());
  EXPECT_FALSE(controls_->Set("witness", false, false, "x").ok());
  EXPECT_EQ(calls, 1);
}

// Two agents on one store (two regions' agents on one machine, or etcd): a
// switch one of them sets reaches the other without a call to it.
TEST_F(ControlsTest, ASwitchSetByAnotherAgentOnTheStoreAppliesHere) {
  metrics::Registry other_metrics;
  auto other_store = state::SqliteStore::Open((dir_ / "state.db").string());
  ASSERT_TRUE(other_store.ok());
  RoutingControls other(**other_store, plan_, other_metrics);
  ASSERT_TRUE(other.Load().ok());
  std::atomic<int> calls{0};
  controls_->OnChange([&] { ++calls; });
  ASSERT_TRUE(other.Set("north", false, false, "ops").ok());
  ASSERT_TRUE(state::WaitUntil([&] { return !controls_->IsOn("north"); }, std::chrono::seconds(5)));
  EXPECT_EQ(controls_->All()["north"].by, "ops");
  EXPECT_TRUE(state::WaitUntil([&] { return calls == 1; }, std::chrono::seconds(5)));
}

// This agent switches north off and on again within one watch poll: the
// watch then delivers its own "off" after the "on" was applied, and that
// stale event switched north off again (until the "on" event came) — DNS
// answered by a switch older than the last one set. Seen under ASan.
TEST_F(ControlsTest, AStaleWatchEventNeverUndoesANewerSwitch) {
  std::atomic<int> flips_back{0};  // changes seen after both sets returned: stale events applied
  std::atomic<bool> set_done{false};
  controls_->OnChange([&] {
    if (set_done) ++flips_back;
  });
  ASSERT_TRUE(controls_->Set("north", false, false, "test").ok());
  ASSERT_TRUE(controls_->Set("north", true, false, "test").ok());
  set_done = true;
  // The watch delivers both of this agent's own events within a poll or two.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(controls_->IsOn("north"));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(flips_back.load(), 0) << "a stale watch event switched north back and forth";
}

// The safety rule holds across agents: each reads the store, and the write is
// conditional on every switch being as read. East and west off at once from
// two agents, with min_on 2 of 3: only one of them may land.
TEST_F(ControlsTest, TwoAgentsCannotTogetherBreakTheSafetyRule) {
  metrics::Registry other_metrics;
  auto other_store = state::SqliteStore::Open((dir_ / "state.db").string());
  ASSERT_TRUE(other_store.ok());
  RoutingControls other(**other_store, plan_, other_metrics);
  ASSERT_TRUE(other.Load().ok());
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(controls_->Set("east", true, true, "reset").ok());
    ASSERT_TRUE(controls_->Set("west", true, true, "reset").ok());
    Result<Control> a = Internal("not run"), b = Internal("not run");
    std::thread ta([&] { a = controls_->Set("east", false, false, "a"); });
    std::thread tb([&] { b = other.Set("west", false, false, "b"); });
    ta.join();
    tb.join();
    EXPECT_FALSE(a.ok() && b.ok()) << "both switched off: only one region left on";
    int on = 0;
    for (const char* r : {"east", "west", "north"}) on += (*state::keys::RoutingControlOf(r).Get(*store_)).value_or(Control{}).on;
    EXPECT_GE(on, 2);
  }
}

}  // namespace
}  // namespace lifeboat::traffic
