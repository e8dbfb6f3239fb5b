#include "traffic/controls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "plan/load.h"
#include "state/sqlite_store.h"

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

}  // namespace
}  // namespace lifeboat::traffic
