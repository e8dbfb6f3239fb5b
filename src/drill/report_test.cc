#include "drill/report.h"

#include <gtest/gtest.h>

#include "core/strings.h"

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Two acknowledged writes 10 s apart: a timeline's span, for the lanes below it.
std::vector<Attempt> TwoWrites(Clock::TimePoint t0) {
  std::vector<Attempt> attempts(2);
  for (int i = 0; i < 2; ++i) {
    attempts[i].start = t0 + i * 10s;
    attempts[i].end = attempts[i].start + 5ms;
    attempts[i].acked = true;
  }
  return attempts;
}

TEST(HtmlReport, DrawsEveryAttemptTheRunAndTheVerdictAndEscapesWhatItShows) {
  auto t0 = *ParseUtc("2026-12-03T10:00:00Z");
  std::vector<Attempt> attempts;
  for (int i = 0; i < 40; ++i) {
    Attempt a;
    a.seq = 100 + static_cast<uint64_t>(i);
    a.start = t0 + i * 100ms;
    a.end = a.start + 5ms;
    a.acked = i < 18 || i >= 25;
    a.target = i < 18 ? "127.0.0.1:80" : "127.0.0.2:80";
    if (!a.acked) a.error = "refused <b>";
    if (i == 25) a.end = a.start + 300ms;  // answered after its resolver waited
    attempts.push_back(a);
  }
  Json report = {
      {"scenario", "region-outage"},
      {"plan", "shop <&>"},
      {"verdict", "fail"},
      {"missed", {"RTO 2s is over the objective 1s"}},
      {"objectives", {{"rto_seconds", 1.0}, {"rpo_seconds", nullptr}}},
      {"fault", {{"at", "2026-12-03T10:00:01.750Z"}, {"region", "east"}, {"what", "killed"}}},
      {"rto_seconds", 0.705},
      {"rpo_seconds", 0.05},
      {"detection_seconds", 1.2},
      {"client",
       {{"acknowledged", 33}, {"first_failure", "2026-12-03T10:00:01.800Z"}, {"recovered", "2026-12-03T10:00:02.505Z"},
        {"first_error", "refused <b>"}}},
      {"loss", {{"missing", 1}, {"all_missing", {117}}}},
      {"failover",
       {{"primary", "west"},
        {"epoch", 2},
        {"run_started_at", "2026-12-03T10:00:02.950Z"},
        {"steps",
         {{{"name", "fence"}, {"state", "done"}, {"started_at", "2026-12-03T10:00:02.950Z"},
           {"ended_at", "2026-12-03T10:00:02.960Z"}, {"seconds", 0.01}, {"output", "<script>alert(1)</script>"}},
          {{"name", "promote"}, {"state", "done"}, {"started_at", "2026-12-03T10:00:02.960Z"},
           {"ended_at", "2026-12-03T10:00:03.100Z"}, {"seconds", 0.14}, {"output", "ok"}}}}}},
  };
  std::string html = RenderHtml(report, attempts);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg id=\"timeline\""), std::string::npos);
  EXPECT_NE(html.find("class=\"verdict fail\""), std::string::npos);
  EXPECT_NE(html.find("RTO 2s is over the objective 1s"), std::string::npos);
  // One mark per attempt: 17 by the old target, 7 failed, 14 elsewhere, 1
  // after a wait, 1 lost.
  EXPECT_EQ(Count(html, "<rect class=\"old\""), 17u);
  EXPECT_EQ(Count(html, "<rect class=\"fail\""), 7u);
  EXPECT_EQ(Count(html, "<rect class=\"new\""), 14u);
  EXPECT_EQ(Count(html, "<rect class=\"slow\""), 1u);
  EXPECT_EQ(Count(html, "<rect class=\"lost\""), 1u);
  EXPECT_EQ(Count(html, "<rect class=\"step\""), 2u);
  for (const char* mark : {">fault<", ">run begins<", ">recovered<", ">RTO objective<"}) {
    EXPECT_NE(html.find(mark), std::string::npos) << mark;
  }
  // Nothing from the report reaches the page as markup; nothing is fetched.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("shop &lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
}

TEST(HtmlReport, AFailbackGetsItsOwnFiguresAndStepsAndAPlannedMoveWantsNothingLost) {
  Json report = {
      {"scenario", "region-outage"},
      {"plan", "p"},
      {"verdict", "pass"},
      {"objectives", {{"rto_seconds", 5.0}, {"rpo_seconds", 1.0}}},
      {"rto_seconds", 3.0},
      {"failover", {{"primary", "west"}, {"epoch", 2}, {"planned", false}}},
      {"failback",
       {{"fault", {{"at", "2026-12-03T10:00:09Z"}, {"region", "west"}, {"what", "planned failover back"}}},
        {"rto_seconds", 0.004},
        {"rpo_seconds", 0.0},
        {"detection_seconds", nullptr},
        {"client", {{"acknowledged", 250}}},
        {"loss", {{"missing", 0}}},
        {"failover",
         {{"primary", "east"},
          {"epoch", 3},
          {"planned", true},
          {"steps", {{{"name", "fence"}, {"state", "done"}, {"seconds", 1.8}, {"output", "drained <west>"}}}}}}}},
  };
  std::string html = RenderHtml(report, {});
  size_t back = html.find("<h2>Failback</h2>");
  ASSERT_NE(back, std::string::npos);
  EXPECT_NE(html.find("planned failover back from west", back), std::string::npos);
  EXPECT_NE(html.find("nothing lost (planned)", back), std::string::npos);
  EXPECT_EQ(html.find("nothing lost (planned)"), html.find("nothing lost (planned)", back))
      << "the unplanned failover keeps the plan's RPO objective";
  EXPECT_NE(html.find("east (epoch 3)", back), std::string::npos);
  EXPECT_NE(html.find("drained &lt;west&gt;", back), std::string::npos);
  EXPECT_EQ(html.find("<td>detection</td>", back), std::string::npos) << "a planned move has no detection";
}

TEST(HtmlReport, APassWithNoAttemptsOrRunStillRenders) {
  Json report = {{"scenario", "region-outage"}, {"plan", "p"}, {"verdict", "pass"}};
  std::string html = RenderHtml(report, {});
  EXPECT_NE(html.find("class=\"verdict pass\""), std::string::npos);
  EXPECT_NE(html.find("The client made no attempt."), std::string::npos);
  EXPECT_EQ(HtmlEscape("a'b\"c"), "a&#39;b&quot;c");
}

// The record in the state store keeps the attempts compact; they come back
// to the microsecond, and a damaged row is skipped rather than read wrong.
TEST(HtmlReport, CompactAttemptsComeBackAsTheyWereAndDamagedRowsAreSkipped) {
  auto t0 = *ParseUtc("2026-12-03T10:00:00.000123Z");
  std::vector<Attempt> attempts;
  for (int i = 0; i < 5; ++i) {
    Attempt a;
    a.seq = 7 + static_cast<uint64_t>(i);
    a.start = t0 + i * 10ms + std::chrono::microseconds(i);
    a.end = a.start + 3ms;
    a.acked = i != 2;
    a.target = i == 2 ? "" : i < 3 ? "127.0.0.1:7711" : "127.0.0.2:7711";
    a.error = i == 2 ? "no answer" : "";
    attempts.push_back(a);
  }
  Json compact = CompactAttempts(attempts);
  EXPECT_EQ(compact["targets"].size(), 2u);
  auto back = ExpandAttempts(Json::parse(compact.dump()));
  ASSERT_EQ(back.size(), attempts.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].seq, attempts[i].seq);
    EXPECT_EQ(back[i].start, attempts[i].start);
    EXPECT_EQ(back[i].end, attempts[i].end);
    EXPECT_EQ(back[i].target, attempts[i].target);
    EXPECT_EQ(back[i].acked, attempts[i].acked);
    EXPECT_EQ(back[i].error, attempts[i].error);
  }
  compact["rows"][1] = "not a row";
  compact["rows"][3][3] = 99;  // a target index out of range
  back = ExpandAttempts(compact);
  ASSERT_EQ(back.size(), 4u);
  EXPECT_EQ(back[2].seq, 10u);
  EXPECT_EQ(back[2].target, "");
  EXPECT_TRUE(ExpandAttempts(Json::object()).empty());
}

// The replication lag the drill sampled is drawn per stream, with the RPO
// objective; names from the report are escaped there too.
TEST(HtmlReport, DrawsTheReplicationLagOfEachStreamAndTheObjective) {
  auto t0 = *ParseUtc("2026-12-03T10:00:00Z");
  auto attempts = TwoWrites(t0);
  Json lag = Json::array();
  for (int i = 0; i < 10; ++i) {
    lag.push_back({{"at", FormatUtc(t0 + i * 1s)}, {"from", "east"}, {"to", "west<x>"}, {"seconds", i * 0.5}});
  }
  lag.push_back({{"at", "garbage"}, {"from", "east"}, {"to", "west<x>"}, {"seconds", 1}});
  Json report = {{"scenario", "replication-partition"},
                 {"verdict", "pass"},
                 {"objectives", {{"rpo_seconds", 1.0}}},
                 {"replication", {{"lag", lag}, {"max_lag_seconds", 4.5}}}};
  std::string html = RenderHtml(report, attempts);
  EXPECT_EQ(Count(html, "<polyline class=\"lag lag0\""), 1u) << html;
  EXPECT_EQ(Count(html, "<polyline"), 1u);
  EXPECT_NE(html.find("east \u2192 west&lt;x&gt;"), std::string::npos);
  EXPECT_NE(html.find(">RPO objective</text>"), std::string::npos);
  EXPECT_NE(html.find("max 4.50 s"), std::string::npos);
  // The polyline has one point per valid sample.
  auto at = html.find("points=\"");
  auto end = html.find('"', at + 8);
  EXPECT_EQ(Count(html.substr(at, end - at), ","), 10u);
  EXPECT_EQ(RenderHtml({{"verdict", "pass"}}, attempts).find("<polyline"), std::string::npos);
}

// Each agent's view gets a row: its health changes, its votes and its view
// vanishing; epoch changes and a killed driver are marked across the lanes.
TEST(HtmlReport, DrawsEachObserversViewsVotesAndTheEpochChanges) {
  auto t0 = *ParseUtc("2026-12-03T10:00:00Z");
  auto attempts = TwoWrites(t0);
  Json events = Json::array({
      {{"at", "2026-12-03T10:00:02Z"}, {"kind", "health"}, {"observer", "west"}, {"endpoint", "web-east"}, {"healthy", false}},
      {{"at", "2026-12-03T10:00:02Z"}, {"kind", "health"}, {"observer", "witness"}, {"endpoint", "web-east"}, {"healthy", false}},
      {{"at", "2026-12-03T10:00:03Z"}, {"kind", "vote"}, {"observer", "west"}, {"down", true}, {"reason", "<all> fail"}},
      {{"at", "2026-12-03T10:00:03Z"}, {"kind", "observer"}, {"observer", "east"}, {"present", false}},
      {{"at", "2026-12-03T10:00:04Z"}, {"kind", "epoch"}, {"primary", "west"}, {"epoch", 2}},
      {{"at", "2026-12-03T10:00:05Z"}, {"kind", "vote"}, {"observer", "west"}, {"down", false}, {"reason", ""}},
      {{"at", "not a time"}, {"kind", "vote"}, {"observer", "west"}, {"down", true}},
  });
  Json report = {{"verdict", "pass"}, {"events", events}, {"crash", {{"at", "2026-12-03T10:00:04.5Z"}}}};
  std::string html = RenderHtml(report, attempts);
  EXPECT_EQ(Count(html, " sees</text>"), 3u) << html;  // east, west, witness
  EXPECT_LT(html.find(">east sees</text>"), html.find(">west sees</text>"));
  EXPECT_EQ(Count(html, "<polygon class=\"vote-down\""), 1u);
  EXPECT_EQ(Count(html, "<polygon class=\"vote-up\""), 1u);
  EXPECT_NE(html.find("west votes the primary down: &lt;all&gt; fail"), std::string::npos);
  EXPECT_EQ(Count(html, "<rect class=\"seen-down\" x="), 2u);
  EXPECT_NE(html.find(">view gone<title>"), std::string::npos);
  EXPECT_NE(html.find(">epoch 2: west</text>"), std::string::npos);
  EXPECT_NE(html.find(">driver killed</text>"), std::string::npos);
}

}  // namespace
}  // namespace lifeboat::drill
