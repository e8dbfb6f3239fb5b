#include "drill/history.h"

#include <gtest/gtest.h>

#include "state/sqlite_store.h"

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;

state::DrillRecord Drill(const std::string& id, bool pass) {
  state::DrillRecord d;
  d.id = id;
  d.scenario = "region-outage";
  d.pass = pass;
  d.report = "{}";
  return d;
}

TEST(DrillHistory, IdsSortByTimeAndNameTheScenario) {
  auto t = *ParseUtc("2026-12-03T13:05:01.900Z");
  EXPECT_EQ(DrillId(t, "region-outage"), "20261203T130501Z-region-outage");
  EXPECT_LT(DrillId(t, "slow-link"), DrillId(t + 1s, "agent-crash-mid-failover"));
}

// A store keeps the newest kKeptDrills; a drill's history never grows
// without bound in a store every agent watches.
TEST(DrillHistory, KeepsTheNewestDrillsOldestFirst) {
  auto store = state::SqliteStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  auto t = *ParseUtc("2026-12-03T13:00:00Z");
  for (size_t i = 0; i < kKeptDrills + 3; ++i) {
    ASSERT_TRUE(RecordDrill(**store, Drill(DrillId(t + i * 1min, "region-outage"), i % 2 == 0)).ok());
  }
  auto all = ListDrills(**store);
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  ASSERT_EQ(all->size(), kKeptDrills);
  EXPECT_EQ(all->front().id, DrillId(t + 3min, "region-outage"));
  EXPECT_EQ(all->back().id, DrillId(t + (kKeptDrills + 2) * 1min, "region-outage"));
  EXPECT_TRUE(all->back().pass);

  state::Store& base = **store;
  ASSERT_TRUE(base.Put("drills/zz-broken", "not json").ok());
  auto broken = ListDrills(**store);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code(), Code::kDataLoss);
  EXPECT_NE(broken.error().message().find("drills/zz-broken"), std::string::npos);
}

}  // namespace
}  // namespace lifeboat::drill
