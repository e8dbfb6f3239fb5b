#include "drill/timeline.h"

#include <gtest/gtest.h>

#include <thread>

#include "state/sqlite_store.h"

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;

state::ObserverView View(bool down, bool east_up, const std::string& at = "2026-12-03T10:00:01.000Z") {
  state::ObserverView v;
  v.observer = "west";
  v.primary = "east";
  v.epoch = 1;
  v.primary_down = down;
  v.reason = down ? "every endpoint of east fails" : "";
  v.endpoints = {{"web-east", east_up}, {"web-west", true}};
  v.at = at;
  return v;
}

TEST(DrillTimeline, AViewReportsItsTransitionsOnlyAtTheViewsOwnTime) {
  auto now = *ParseUtc("2026-12-03T10:00:05Z");
  // A first view: present, and only what differs from healthy.
  auto first = ViewChanges("west", std::nullopt, View(false, true), now);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["kind"], "observer");
  EXPECT_TRUE(first[0]["present"].get<bool>());
  EXPECT_EQ(first[0]["at"], "2026-12-03T10:00:01.000Z");
  // Unchanged: nothing.
  EXPECT_TRUE(ViewChanges("west", View(false, true), View(false, true, "2026-12-03T10:00:02Z"), now).empty());
  auto failing = ViewChanges("west", View(false, true), View(false, false, "garbage"), now);
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_EQ(failing[0]["kind"], "health");
  EXPECT_EQ(failing[0]["endpoint"], "web-east");
  EXPECT_FALSE(failing[0]["healthy"].get<bool>());
  EXPECT_EQ(failing[0]["at"], FormatUtc(now));  // an unreadable time: when the drill saw it
  auto vote = ViewChanges("west", View(false, false), View(true, false), now);
  ASSERT_EQ(vote.size(), 1u);
  EXPECT_EQ(vote[0]["kind"], "vote");
  EXPECT_TRUE(vote[0]["down"].get<bool>());
  EXPECT_EQ(vote[0]["reason"], "every endpoint of east fails");
  auto gone = ViewChanges("west", View(true, false), std::nullopt, now);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_FALSE(gone[0]["present"].get<bool>());
}

TEST(DrillTimeline, ARunReportsEachStepAsItsStateChanges) {
  auto now = *ParseUtc("2026-12-03T10:00:05Z");
  state::FailoverRun r;
  r.id = "r1";
  r.from = "east";
  r.to = "west";
  r.epoch = 2;
  r.owner = "west@h:1";
  r.started_at = "2026-12-03T10:00:03.000Z";
  r.steps = {{"fence", "running", 1, "2026-12-03T10:00:03.001Z", "", ""}, {"promote", "pending", 0, "", "", ""}};
  auto begun = RunChanges(std::nullopt, r, now);
  ASSERT_EQ(begun.size(), 2u);
  EXPECT_EQ(begun[0]["kind"], "run");
  EXPECT_EQ(begun[0]["at"], "2026-12-03T10:00:03.000Z");
  EXPECT_EQ(begun[1]["step"], "fence");
  EXPECT_EQ(begun[1]["at"], "2026-12-03T10:00:03.001Z");
  auto next = r;
  next.steps[0].state = "done";
  next.steps[0].ended_at = "2026-12-03T10:00:03.005Z";
  next.steps[1].state = "running";
  next.steps[1].attempts = 1;
  next.steps[1].started_at = "2026-12-03T10:00:03.006Z";
  auto moved = RunChanges(r, next, now);
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved[0]["state"], "done");
  EXPECT_EQ(moved[1]["step"], "promote");
  // Another driver takes over: the run's owner changes, the step's attempt too.
  auto resumed = next;
  resumed.owner = "east@h:2";
  resumed.steps[1].attempts = 2;
  auto taken = RunChanges(next, resumed, now);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0]["owner"], "east@h:2");
  EXPECT_EQ(taken[1]["attempts"], 2);
}

TEST(DrillTimeline, FollowsAStoreFromNow) {
  auto store = state::SqliteStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  state::Store& s = **store;
  ASSERT_TRUE(state::keys::ViewOf("west").Put(s, View(false, true)).ok());  // before: the starting point
  std::atomic<int> runs{0};
  auto t = StoreTimeline::Start(s, [&](const state::FailoverRun&) { ++runs; });
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  ASSERT_TRUE(state::keys::ViewOf("west").Put(s, View(true, false)).ok());
  ASSERT_TRUE(state::keys::Primary().Put(s, {"west", 2, "2026-12-03T10:00:04.000Z", "west@h:1"}).ok());
  state::FailoverRun r;
  r.id = "r1";
  r.state = "done";
  r.ended_at = "2026-12-03T10:00:04.100Z";
  ASSERT_TRUE(state::keys::CurrentFailover().Put(s, r).ok());
  ASSERT_TRUE(s.Delete("views/west").ok());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((*t)->Events().size() < 5 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  auto events = (*t)->Events();
  ASSERT_EQ(events.size(), 5u) << nlohmann::ordered_json(events).dump();
  EXPECT_EQ(events[0]["kind"], "health");
  EXPECT_EQ(events[1]["kind"], "vote");
  EXPECT_EQ(events[2]["kind"], "epoch");
  EXPECT_EQ(events[2]["epoch"], 2);
  EXPECT_EQ(events[3]["kind"], "run");
  EXPECT_EQ(events[4]["kind"], "observer");
  EXPECT_EQ(runs.load(), 1);
}

}  // namespace
}  // namespace lifeboat::drill
