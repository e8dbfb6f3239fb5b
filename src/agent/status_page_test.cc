#include "agent/status_page.h"

#include <gtest/gtest.h>

namespace lifeboat::agent {
namespace {

using Json = nlohmann::ordered_json;

TEST(StatusPage, ShowsARunningFailoverTheViewsLagAndBackupsAndEscapesEverything) {
  auto status = Json::parse(R"({
    "plan": "shop", "region": "west", "version": "0.9",
    "regions": [{"name": "east", "role": "primary"}, {"name": "west", "role": "standby"},
                {"name": "witness", "role": "witness"}],
    "failover": {"primary": "east", "epoch": 1,
      "run": {"id": "r1", "state": "running", "from": "east", "to": "west", "owner": "west@h:1",
              "started_at": "2026-12-03T10:00:00.000Z",
              "steps": [{"name": "check", "state": "done", "started_at": "2026-12-03T10:00:00.000Z",
                         "ended_at": "2026-12-03T10:00:00.250Z", "output": "<img src=x onerror=alert(1)>"},
                        {"name": "fence", "state": "running", "started_at": "2026-12-03T10:00:00.250Z"},
                        {"name": "promote", "state": "pending"}]}},
    "services": {
      "failover": {"mode": "automatic", "quorum": 2, "grace": "1s",
        "verdict": {"votes": 2},
        "endpoints": {"web-east": false, "web-west": true},
        "views": [
          {"observer": "west", "primary_down": true, "down_for_ms": 3200, "reason": "every endpoint of east fails",
           "endpoints": {"web-east": false, "web-west": true}, "sending": [], "copies": []},
          {"observer": "witness", "primary_down": false, "down_for_ms": 1500, "reason": "",
           "endpoints": {"web-east": false, "web-west": true},
           "sending": [{"volume": "data", "target": "east", "in_sync": false, "lag_ms": 1200},
                       {"volume": "logs", "target": "east", "in_sync": true}],
           "copies": [{"volume": "<b>data</b>", "fenced": true, "epoch": 1}]}]},
      "backup": {"latest": [{"volume": "data", "backup": "abcdef0123456789", "location": "dr", "age_seconds": 90}]},
      "drills": {"recorded": 2, "recent": [
        {"id": "20261203T095900Z-region-outage", "scenario": "region-outage", "verdict": "fail",
         "rto_seconds": null, "rpo_seconds": 0.024, "ended_at": "2026-12-03T09:59:33.000Z",
         "missed": ["the client never recovered <i>"]},
        {"id": "20261203T095000Z-planned-switchover", "verdict": "pass", "rto_seconds": 0.002,
         "rpo_seconds": 0, "ended_at": "2026-12-03T09:50:30.000Z", "missed": []}]}}
  })");
  auto now = *ParseUtc("2026-12-03T10:00:03.000Z");
  std::string page = RenderStatusPage(status, now);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<meta http-equiv=\"refresh\" content=\"2\">"), std::string::npos);
  EXPECT_NE(page.find("primary: east (epoch 1) &mdash; failover to west running for 3s: step fence (1 of 3 done), "
                      "driven by west@h:1"),
            std::string::npos)
      << page;
  // Regions: east has no view (its agent is down), west sees it down, the
  // witness sees it failing.
  EXPECT_NE(page.find("<td>east</td><td>primary</td><td><span class=\"pill bad\">no view: agent down or cut off"),
            std::string::npos);
  EXPECT_NE(page.find("DOWN for 3.2s</span> every endpoint of east fails"), std::string::npos);
  EXPECT_NE(page.find("failing for 1.5s"), std::string::npos);
  EXPECT_NE(page.find("<td>web-east</td><td><span class=\"pill bad\">failing</span></td>"), std::string::npos);
  EXPECT_NE(page.find("<td>data</td><td>witness</td><td>east</td><td><span class=\"pill warn\">1.2s behind"),
            std::string::npos);
  EXPECT_NE(page.find("<td>logs</td><td>witness</td><td>east</td><td><span class=\"pill ok\">in sync"), std::string::npos);
  EXPECT_NE(page.find("fenced at epoch 1"), std::string::npos);
  EXPECT_NE(page.find("<td>data</td><td>abcdef01</td><td>dr</td><td>1m30s</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>fence</td><td><span class=\"pill warn\">running</span></td><td>2.8s so far</td>"),
            std::string::npos);
  EXPECT_NE(page.find("<td>20261203T095900Z-region-outage</td><td><span class=\"pill bad\">FAIL</span> the client "
                      "never recovered &lt;i&gt;</td><td>&ndash;</td><td>24ms</td><td>30s ago</td>"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("<span class=\"pill ok\">pass</span></td><td>2ms</td>"), std::string::npos);
  // Nothing from the document becomes markup.
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<b>"), std::string::npos);
  EXPECT_NE(page.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
}

TEST(StatusPage, AnAgentWithoutFailoverOrStoreStillRenders) {
  auto page = RenderStatusPage(Json::parse(R"({"plan": "p", "region": "r"})"), *ParseUtc("2026-12-03T10:00:00Z"));
  EXPECT_NE(page.find("the primary is not known"), std::string::npos);
  EXPECT_NE(page.find("</html>"), std::string::npos);
}

}  // namespace
}  // namespace lifeboat::agent
