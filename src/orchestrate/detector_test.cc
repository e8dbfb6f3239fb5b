#include "orchestrate/detector.h"

#include <gtest/gtest.h>

#include <set>

#include "plan/load.h"

namespace lifeboat::orchestrate {
namespace {

using namespace std::chrono_literals;

plan::Plan Plan(const std::string& extra = "") {
  auto r = plan::LoadPlanText(R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  witness: { role: witness, agent: 127.0.0.1:3 }
checks:
  web: { type: tcp, interval: 200ms, fall: 3 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:8001, check: web }
  web-west: { region: west, address: 127.0.0.1:8002, check: web }
failover: { mode: automatic, grace: 2s }
)" + extra, "t.yaml");
  EXPECT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  return *r.plan;
}

state::PrimaryRecord East(uint64_t epoch = 1) { return {"east", epoch, "", ""}; }

auto Health(std::set<std::string> down) {
  return [down](const std::string& e) { return !down.count(e); };
}

TEST(Detector, SeesThePrimaryDownOnlyAfterTheGraceWithoutABreak) {
  plan::Plan plan = Plan();
  Detector d(plan, "west");
  Steady t0;
  auto v = d.Observe(East(), Health({}), true, t0);
  EXPECT_FALSE(v.primary_down);
  EXPECT_EQ(v.down_for_ms, 0);
  EXPECT_EQ(v.endpoints.size(), 2u);

  v = d.Observe(East(), Health({"web-east"}), true, t0 + 1s);
  EXPECT_FALSE(v.primary_down) << "down for 0 s of a 2 s grace";
  v = d.Observe(East(), Health({"web-east"}), true, t0 + 2500ms);
  EXPECT_FALSE(v.primary_down) << "1.5 s of 2 s";
  // One good probe in between restarts the grace.
  v = d.Observe(East(), Health({}), true, t0 + 2600ms);
  EXPECT_FALSE(v.primary_down);
  v = d.Observe(East(), Health({"web-east"}), true, t0 + 2700ms);
  v = d.Observe(East(), Health({"web-east"}), true, t0 + 4600ms);
  EXPECT_FALSE(v.primary_down) << "1.9 s since the break";
  v = d.Observe(East(), Health({"web-east"}), true, t0 + 4700ms);
  EXPECT_TRUE(v.primary_down);
  EXPECT_EQ(v.down_for_ms, 2000);
  EXPECT_NE(v.reason.find("every checked endpoint of east"), std::string::npos) << v.reason;
}

TEST(Detector, ANewEpochStartsTheGraceAgain) {
  plan::Plan plan = Plan();
  Detector d(plan, "witness");
  Steady t0;
  d.Observe(East(), Health({"web-east"}), true, t0);
  EXPECT_TRUE(d.Observe(East(), Health({"web-east"}), true, t0 + 3s).primary_down);
  // After a failover the record names west at epoch 2: the old watch means nothing.
  state::PrimaryRecord west{"west", 2, "", ""};
  auto v = d.Observe(west, Health({"web-west"}), true, t0 + 3s);
  EXPECT_FALSE(v.primary_down);
  EXPECT_EQ(v.primary, "west");
  EXPECT_EQ(v.epoch, 2u);
}

TEST(Detector, APrimaryWithoutCheckedEndpointsIsDownWhenItsAgentsViewIsGone) {
  auto r = plan::LoadPlanText(R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
failover: { grace: 0s }
)", "t.yaml");
  ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
  Detector d(*r.plan, "west");
  // Not seen yet (east's agent starts later): not down.
  auto v = d.Observe(East(), Health({}), false, Steady());
  EXPECT_FALSE(v.primary_down);
  EXPECT_NE(v.reason.find("not been seen yet"), std::string::npos) << v.reason;
  EXPECT_FALSE(d.Observe(East(), Health({}), true, Steady() + 1ms).primary_down);
  v = d.Observe(East(), Health({}), false, Steady() + 2ms);
  EXPECT_TRUE(v.primary_down);
  EXPECT_NE(v.reason.find("no view"), std::string::npos) << v.reason;
  // The primary's own agent never sees itself without a view.
  Detector self(*r.plan, "east");
  EXPECT_FALSE(self.Observe(East(), Health({}), false, Steady()).primary_down);
  EXPECT_FALSE(self.Observe(East(), Health({}), false, Steady() + 1s).primary_down);
}

state::ObserverView View(const std::string& observer, bool down, uint64_t epoch = 1, bool west_healthy = true) {
  state::ObserverView v;
  v.observer = observer;
  v.primary = "east";
  v.epoch = epoch;
  v.primary_down = down;
  v.endpoints = {{"web-east", !down}, {"web-west", west_healthy}};
  return v;
}

TEST(Detector, AQuorumOfThisEpochsViewsDecides) {
  plan::Plan plan = Plan();
  ASSERT_EQ(plan.failover.quorum, 2);
  Detector d(plan, "west");
  // One observer alone (a partition around the witness) never decides.
  auto v = d.Decide(East(), {View("witness", true), View("west", false)});
  EXPECT_FALSE(v.failover);
  EXPECT_EQ(v.votes, 1);
  EXPECT_EQ(v.views, 2);
  // Views of an older epoch do not vote.
  v = d.Decide(East(2), {View("witness", true, 1), View("west", true, 1)});
  EXPECT_FALSE(v.failover);
  EXPECT_EQ(v.views, 0);

  v = d.Decide(East(), {View("witness", true), View("west", true)});
  EXPECT_TRUE(v.failover);
  EXPECT_EQ(v.target, "west");
  EXPECT_EQ(v.voters, (std::vector<std::string>{"witness", "west"}));
  EXPECT_NE(v.why.find("2 of 2 regions see east down (quorum 2: witness, west); fail over to west"),
            std::string::npos)
      << v.why;
}

TEST(Detector, NoTargetWhoseAgentIsGoneOrWhoseEndpointsFail) {
  plan::Plan plan = Plan("  \n");
  Detector d(plan, "witness");
  // West's agent has no view: it could not take the data over.
  auto v = d.Decide(East(), {View("witness", true), View("east", true)});
  EXPECT_TRUE(v.failover);
  EXPECT_EQ(v.target, "");
  EXPECT_NE(v.why.find("west: its agent has no view of epoch 1"), std::string::npos) << v.why;
  // West's endpoint fails in a majority of the views.
  v = d.Decide(East(), {View("witness", true, 1, false), View("west", true, 1, false), View("east", true, 1, true)});
  EXPECT_TRUE(v.failover);
  EXPECT_EQ(v.target, "");
  EXPECT_NE(v.why.find("west: no endpoint healthy in a majority"), std::string::npos) << v.why;
}

// A region whose copy is fenced holds data older than the last failover:
// promoting it would lose what was written since.
TEST(Detector, ARegionWithAFencedCopyIsNoTarget) {
  plan::Plan plan = Plan();
  Detector d(plan, "witness");
  auto west = View("west", true);
  west.copies = {{"data", {true, "", 1, true}}};
  auto v = d.Decide(East(), {View("witness", true), west});
  EXPECT_TRUE(v.failover);
  EXPECT_EQ(v.target, "");
  EXPECT_NE(v.why.find("west: its copy of data is fenced (stale since an earlier failover): fail back first"),
            std::string::npos)
      << v.why;
  // A copy that is a source, or follows another region or an older epoch,
  // may lack writes too; one that follows the primary at this epoch is fit.
  west.copies = {{"data", {false, "north", 1, false}}};
  EXPECT_EQ(d.Unfit("west", East(), {View("witness", true), west}),
            "its copy of data does not follow east at epoch 1 (it follows north at epoch 1): fail back first");
  west.copies = {{"data", {false, "east", 1, false}}};
  EXPECT_EQ(d.Unfit("west", East(2), {View("witness", true, 2), [&] { auto w = west; w.epoch = 2; return w; }()}),
            "its copy of data does not follow east at epoch 2 (it follows east at epoch 1): fail back first");
  EXPECT_EQ(d.Unfit("west", East(), {View("witness", true), west}), "");
  EXPECT_EQ(d.Unfit("west", East(), {View("witness", true), View("west", true)}), "");
}

TEST(Detector, EndpointHealthFromTheViewsCountsOnlyWhoReportsIt) {
  std::vector<state::ObserverView> views = {View("a", false), View("b", true), View("c", true)};
  EXPECT_TRUE(HealthyInViews("web-west", views, 3));
  EXPECT_TRUE(HealthyInViews("web-east", views, 1));
  EXPECT_FALSE(HealthyInViews("web-east", views, 2));
  EXPECT_FALSE(HealthyInViews("nowhere", views, 1));
}

}  // namespace
}  // namespace lifeboat::orchestrate
