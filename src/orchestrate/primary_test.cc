#include "orchestrate/primary.h"

#include <gtest/gtest.h>

#include <thread>

#include "plan/load.h"
#include "state/sqlite_store.h"

namespace lifeboat::orchestrate {
namespace {

plan::Plan ThreeRegions() {
  auto r = plan::LoadPlanText(R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  north: { role: standby, agent: 127.0.0.1:3 }
  witness: { role: witness, agent: 127.0.0.1:4 }
)", "t.yaml");
  EXPECT_TRUE(r.plan);
  return *r.plan;
}

TEST(Primary, ThePlansPrimaryAtEpochOneUntilAFailover) {
  auto store = std::move(*state::SqliteStore::Open(":memory:"));
  plan::Plan plan = ThreeRegions();
  auto p = CurrentPrimary(*store, plan);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(p->record.region, "east");
  EXPECT_EQ(p->record.epoch, 1u);
  auto moved = AdvanceEpoch(*store, plan, *p, "west", "test");
  ASSERT_TRUE(moved.ok()) << moved.error().ToString();
  EXPECT_EQ(moved->record.epoch, 2u);
  // The plan still says east; the store decides from now on.
  auto again = CurrentPrimary(*store, plan);
  EXPECT_EQ(again->record.region, "west");
  EXPECT_EQ(again->record.epoch, 2u);
  EXPECT_EQ(AdvanceEpoch(*store, plan, *again, "witness", "test").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(AdvanceEpoch(*store, plan, *again, "nowhere", "test").error().code(), Code::kInvalidArgument);
}

// Two regions race to become primary from the same reading: exactly one
// wins each epoch, every time.
TEST(Primary, TwoRacingFailoversNeverMakeTwoPrimariesInOneEpoch) {
  auto store = std::move(*state::SqliteStore::Open(":memory:"));
  plan::Plan plan = ThreeRegions();
  for (int round = 0; round < 50; ++round) {
    auto read = CurrentPrimary(*store, plan);
    ASSERT_TRUE(read.ok());
    Result<Primary> a = Internal("not run"), b = Internal("not run");
    std::thread ta([&] { a = AdvanceEpoch(*store, plan, *read, "west", "a"); });
    std::thread tb([&] { b = AdvanceEpoch(*store, plan, *read, "north", "b"); });
    ta.join();
    tb.join();
    ASSERT_NE(a.ok(), b.ok()) << "round " << round << ": both or neither won";
    const Result<Primary>& lost = a.ok() ? b : a;
    EXPECT_EQ(lost.error().code(), Code::kAborted);
    auto now = CurrentPrimary(*store, plan);
    EXPECT_EQ(now->record.epoch, read->record.epoch + 1);
    EXPECT_EQ(now->record.region, a.ok() ? "west" : "north");
  }
}

}  // namespace
}  // namespace lifeboat::orchestrate
