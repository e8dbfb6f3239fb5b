#include "proxy/route.h"

#include <gtest/gtest.h>

#include <map>

#include "plan/load.h"

namespace lifeboat::proxy {
namespace {

constexpr const char* kPlan = R"(
name: t
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
  west: { role: standby, agent: 127.0.0.1:2 }
  south: { role: standby, agent: 127.0.0.1:3 }
endpoints:
  e1: { region: east, address: 10.0.0.1:80 }
  e2: { region: east, address: 10.0.0.2:80 }
  w1: { region: west, address: 10.0.1.1:80 }
  s1: { region: south, address: 10.0.2.1:80 }
proxy:
  listeners:
    fo: { listen: 127.0.0.1:8001, endpoints: [w1, e1, s1, e2] }
    wt: { listen: 127.0.0.1:8002, policy: weighted, endpoints: [{ endpoint: e1, weight: 3 }, { endpoint: w1, weight: 1 }, { endpoint: s1, weight: 0 }] }
    nr: { listen: 127.0.0.1:8003, policy: nearest, endpoints: [e1, w1, s1] }
    closed: { listen: 127.0.0.1:8004, endpoints: [e1, w1], fail_open: false }
)";

class RouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = plan::LoadPlanText(kPlan, "t.yaml");
    ASSERT_TRUE(r.plan) << plan::FormatDiagnostics(r.diagnostics);
    plan_ = *r.plan;
  }
  const plan::ProxyListener& L(const std::string& name) {
    for (const auto& l : plan_.proxy->listeners) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no listener " << name;
    return plan_.proxy->listeners.front();
  }
  // The endpoint names of `idx` for readable failures.
  std::vector<std::string> Names(const std::string& listener, const std::vector<size_t>& idx) {
    std::vector<std::string> out;
    for (size_t i : idx) out.push_back(L(listener).endpoints[i].endpoint);
    return out;
  }
  using V = std::vector<std::string>;
  plan::Plan plan_;
  traffic::RoutingState rs_;
};

TEST_F(RouteTest, FailoverSendsToThePrimaryRegionThenTheNextInPlanOrder) {
  Route r = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_EQ(Names("fo", r.first), (V{"e1", "e2"}));
  EXPECT_EQ(Names("fo", r.fallback), (V{"w1", "s1"}));
  EXPECT_EQ(r.state, (std::vector<TargetState>{TargetState::kStandby, TargetState::kActive, TargetState::kStandby,
                                               TargetState::kActive}));
  // Both east endpoints get new connections, evenly.
  std::map<std::string, int> firsts;
  std::vector<size_t> c;
  for (uint32_t rnd = 0; rnd < 100; ++rnd) {
    r.Candidates(rnd, c);
    ASSERT_EQ(c.size(), 4u);
    ++firsts[L("fo").endpoints[c[0]].endpoint];
    EXPECT_EQ(Names("fo", {c[2], c[3]}), (V{"w1", "s1"}));
  }
  EXPECT_EQ(firsts["e1"], 50);
  EXPECT_EQ(firsts["e2"], 50);
}

TEST_F(RouteTest, FailoverFollowsTheEpochsPrimaryNotThePlans) {
  rs_.primary = "south";
  rs_.epoch = 2;
  Route r = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_EQ(Names("fo", r.first), (V{"s1"}));
  EXPECT_EQ(Names("fo", r.fallback), (V{"e1", "e2", "w1"}));  // east, then west: the plan's order
  EXPECT_EQ(r.state[1], TargetState::kStandby) << "the old primary's connections are drained";
}

TEST_F(RouteTest, FailoverMovesToTheNextRegionWhenThePrimarysEndpointsAreDownOrSwitchedOff) {
  rs_.healthy["e1"] = false;
  rs_.healthy["e2"] = false;
  Route r = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_EQ(Names("fo", r.first), (V{"w1"}));
  EXPECT_EQ(r.state[1], TargetState::kDown) << "connections to a failing endpoint are closed";
  rs_.healthy.clear();
  rs_.on["east"] = false;
  r = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_EQ(Names("fo", r.first), (V{"w1"}));
  EXPECT_EQ(r.state[1], TargetState::kStandby) << "a switched-off but healthy endpoint is drained, not cut";
}

TEST_F(RouteTest, NothingUpFailsOpenToEveryTargetOrRefusesWhenTold) {
  for (auto ep : {"e1", "e2", "w1", "s1"}) rs_.healthy[ep] = false;
  Route r = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_TRUE(r.failed_open);
  EXPECT_EQ(r.first.size(), 4u);
  for (auto s : r.state) EXPECT_EQ(s, TargetState::kActive) << "failing open keeps every connection";
  Route closed = MakeRoute(plan_, L("closed"), rs_);
  EXPECT_FALSE(closed.failed_open);
  std::vector<size_t> c;
  closed.Candidates(0, c);
  EXPECT_TRUE(c.empty());
}

TEST_F(RouteTest, WeightedPicksByWeightAndKeepsWeightZeroForWhenTheOthersFail) {
  Route r = MakeRoute(plan_, L("wt"), rs_);
  EXPECT_EQ(Names("wt", r.first), (V{"e1", "w1"}));
  EXPECT_EQ(Names("wt", r.fallback), (V{"s1"}));
  std::map<std::string, int> firsts;
  std::vector<size_t> c;
  for (uint32_t rnd = 0; rnd < 400; ++rnd) {
    r.Candidates(rnd, c);
    ++firsts[L("wt").endpoints[c[0]].endpoint];
    EXPECT_EQ(L("wt").endpoints[c.back()].endpoint, "s1");
  }
  EXPECT_EQ(firsts["e1"], 300);
  EXPECT_EQ(firsts["w1"], 100);
  // Every weighted endpoint down: the weight-0 one takes the traffic.
  rs_.healthy["e1"] = false;
  rs_.healthy["w1"] = false;
  r = MakeRoute(plan_, L("wt"), rs_);
  EXPECT_EQ(Names("wt", r.first), (V{"s1"}));
  EXPECT_EQ(r.state[2], TargetState::kActive);
}

TEST_F(RouteTest, NearestOrdersByMeasuredConnectTimeUnmeasuredLast) {
  std::vector<double> seconds{0.030, -1, 0.002};
  Route r = MakeRoute(plan_, L("nr"), rs_, seconds);
  EXPECT_EQ(Names("nr", r.first), (V{"s1", "e1", "w1"}));
  std::vector<size_t> c;
  for (uint32_t rnd = 0; rnd < 10; ++rnd) {
    r.Candidates(rnd, c);
    EXPECT_EQ(L("nr").endpoints[c[0]].endpoint, "s1");
  }
  // Every up endpoint stays active: a nearer one appearing drains nobody.
  for (auto s : r.state) EXPECT_EQ(s, TargetState::kActive);
  rs_.healthy["s1"] = false;
  r = MakeRoute(plan_, L("nr"), rs_, seconds);
  EXPECT_EQ(Names("nr", r.first), (V{"e1", "w1"}));
}

TEST_F(RouteTest, SameChoiceTellsASwitch) {
  Route a = MakeRoute(plan_, L("fo"), rs_);
  rs_.generation = 7;
  Route b = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_TRUE(a.SameChoice(b)) << "a new generation with the same choice is no switch";
  rs_.primary = "west";
  Route c = MakeRoute(plan_, L("fo"), rs_);
  EXPECT_FALSE(a.SameChoice(c));
}

}  // namespace
}  // namespace lifeboat::proxy
