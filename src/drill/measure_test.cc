#include "drill/measure.h"

#include <gtest/gtest.h>

namespace lifeboat::drill {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kT0 = Clock::TimePoint(1'800'000'000s);

Recovery WithRto(Duration rto) {
  Recovery r;
  r.rto = rto;
  return r;
}

// One attempt every 10 ms from t0, lasting 2 ms; `ok(i)` says whether
// attempt i was acknowledged and `to(i)` where it went.
template <typename Ok, typename To>
std::vector<Attempt> Timeline(int n, Ok ok, To to) {
  std::vector<Attempt> out;
  for (int i = 0; i < n; ++i) {
    Attempt a;
    a.seq = static_cast<uint64_t>(i + 1);
    a.start = kT0 + i * 10ms;
    a.end = a.start + 2ms;
    a.acked = ok(i);
    a.target = to(i);
    if (!a.acked) a.error = "connection refused";
    out.push_back(a);
  }
  return out;
}

TEST(Recovery, RunsFromTheFirstFailureAfterTheFaultToTheFirstSuccessAfterIt) {
  // The fault at attempt 50; attempts 52..149 fail; 150 on succeed in west.
  auto attempts = Timeline(
      200, [](int i) { return i < 52 || i >= 150; }, [](int i) { return i < 150 ? "east" : "west"; });
  auto r = MeasureRecovery(attempts, kT0 + 500ms);
  ASSERT_TRUE(r.rto);
  EXPECT_EQ(*r.first_failure, kT0 + 520ms);
  EXPECT_EQ(*r.recovered, kT0 + 1502ms);
  EXPECT_EQ(*r.rto, 982ms);
  EXPECT_EQ(r.failed, 98u);
  EXPECT_EQ(r.recovered_at, "west");
}

TEST(Recovery, ASlowAttemptThatLandsElsewhereIsTheOutage) {
  // No attempt fails: the first after the fault waits a second for its
  // resolver to give up on the dead region's DNS server, then is answered
  // by the new primary. The client was without service all that time.
  auto attempts = Timeline(
      100, [](int) { return true; }, [](int i) { return i < 50 ? "east" : "west"; });
  attempts[50].end = attempts[50].start + 1007ms;
  for (size_t i = 51; i < attempts.size(); ++i) {
    attempts[i].start += 1007ms;
    attempts[i].end += 1007ms;
  }
  auto r = MeasureRecovery(attempts, kT0 + 495ms);
  ASSERT_TRUE(r.rto);
  EXPECT_EQ(*r.rto, 1007ms);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_EQ(r.recovered_at, "west");
}

TEST(Recovery, AttemptsStillServedAsBeforeAreNoOutage) {
  // Acknowledged by east after the fault (the kill not yet felt), then a
  // failure, then east again (a restart): the outage is the failure's.
  auto attempts = Timeline(
      30, [](int i) { return i != 20; }, [](int) { return "east"; });
  auto r = MeasureRecovery(attempts, kT0 + 150ms);
  ASSERT_TRUE(r.rto);
  EXPECT_EQ(*r.first_failure, kT0 + 200ms);
  EXPECT_EQ(*r.rto, 12ms);
  EXPECT_EQ(r.recovered_at, "east");
}

TEST(Recovery, FailuresBeforeTheFaultDoNotCountAndNoFailureIsZero) {
  auto attempts = Timeline(
      100, [](int i) { return i != 3; }, [](int) { return "east"; });
  auto r = MeasureRecovery(attempts, kT0 + 100ms);
  ASSERT_TRUE(r.rto);
  EXPECT_EQ(*r.rto, 0ms);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_FALSE(r.first_failure);
}

TEST(Recovery, AClientThatNeverSucceedsAgainHasNoRto) {
  auto attempts = Timeline(
      100, [](int i) { return i < 40; }, [](int) { return "east"; });
  auto r = MeasureRecovery(attempts, kT0 + 395ms);
  EXPECT_FALSE(r.rto);
  EXPECT_EQ(r.failed, 60u);
  auto v = Judge({.rto = 30s, .rpo = 5s}, r, Loss{});
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.missed.size(), 1u);
  EXPECT_EQ(v.missed[0], "the client never succeeded again after its first failure");
}

TEST(Loss, CountsAcknowledgedRecordsTheNewPrimaryLacksAndTheTimeTheySpan) {
  auto attempts = Timeline(
      100, [](int i) { return i < 50 || i >= 70; }, [](int i) { return i < 50 ? "east" : "west"; });
  // The new primary has 1..45 (replicated before the fault) and 71..100
  // (written to it): 46..50 were acknowledged by east and lost.
  std::set<uint64_t> found;
  for (uint64_t s = 1; s <= 45; ++s) found.insert(s);
  for (uint64_t s = 71; s <= 100; ++s) found.insert(s);
  auto fault = kT0 + 495ms;
  auto l = MeasureLoss(attempts, found, fault);
  EXPECT_EQ(l.acked, 80u);
  EXPECT_EQ(l.missing, 5u);
  EXPECT_EQ(l.first_missing, (std::vector<uint64_t>{46, 47, 48, 49, 50}));
  EXPECT_EQ(*l.oldest, kT0 + 452ms);  // record 46's acknowledgement
  EXPECT_EQ(*l.newest, kT0 + 492ms);
  EXPECT_EQ(l.rpo, 43ms);  // from the oldest lost acknowledgement to the fault
  // Unacknowledged attempts (51..70) are not losses even though absent.
  auto v = Judge({.rto = std::nullopt, .rpo = 10ms}, WithRto(0s), l);
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.missed.size(), 1u);
  EXPECT_EQ(v.missed[0], "RPO 43ms (5 acknowledged records lost) is over the objective 10ms");
}

TEST(Loss, WritesAcknowledgedAfterTheFaultStretchTheWindow) {
  // A cut-off primary that still acknowledges: its records after the fault
  // are lost too, and the window runs to the newest of them.
  auto attempts = Timeline(
      100, [](int) { return true; }, [](int) { return "east"; });
  std::set<uint64_t> found;
  for (uint64_t s = 1; s <= 20; ++s) found.insert(s);
  auto l = MeasureLoss(attempts, found, kT0 + 300ms);
  EXPECT_EQ(l.missing, 80u);
  EXPECT_EQ(l.first_missing.size(), 10u);
  EXPECT_EQ(l.rpo, 990ms + 2ms - 202ms);
}

TEST(Verdict, NamesMeasuredFiguresToTheMillisecond) {
  Loss l;
  l.missing = 241;
  l.rpo = std::chrono::nanoseconds(3'007'326'785);
  auto v = Judge({.rto = 5s, .rpo = 1s}, WithRto(std::chrono::nanoseconds(5'000'600'000)), l);
  ASSERT_EQ(v.missed.size(), 2u);
  EXPECT_EQ(v.missed[0], "RTO 5.001s is over the objective 5s");
  EXPECT_EQ(v.missed[1], "RPO 3.007s (241 acknowledged records lost) is over the objective 1s");
}

TEST(Loss, NothingLostIsRpoZeroAndMeetsAnyObjective) {
  auto attempts = Timeline(
      30, [](int) { return true; }, [](int) { return "east"; });
  std::set<uint64_t> found;
  for (uint64_t s = 1; s <= 30; ++s) found.insert(s);
  auto l = MeasureLoss(attempts, found, kT0 + 100ms);
  EXPECT_EQ(l.missing, 0u);
  EXPECT_EQ(l.rpo, 0s);
  EXPECT_FALSE(l.oldest);
  EXPECT_TRUE(Judge({.rto = 1s, .rpo = 0s}, WithRto(900ms), l).pass);
  auto late = Judge({.rto = 1s, .rpo = 0s}, WithRto(1500ms), l);
  EXPECT_FALSE(late.pass);
  EXPECT_EQ(late.missed.at(0), "RTO 1.5s is over the objective 1s");
}

// A write the old primary acknowledged after the new one had acknowledged
// one is two primaries at once; writes before the switch, or concurrent
// with the first one at the new primary, are not.
TEST(MeasureOverlap, CountsOldPrimaryAcknowledgementsAfterTheNewOnesFirst) {
  auto t0 = *ParseUtc("2026-12-03T10:00:00Z");
  auto at = [&](int ms, const std::string& target, bool acked = true) {
    Attempt a;
    a.start = t0 + std::chrono::milliseconds(ms);
    a.end = a.start + std::chrono::milliseconds(5);
    a.target = target;
    a.acked = acked;
    return a;
  };
  std::vector<Attempt> clean = {at(0, "east"), at(10, "east"), at(20, "west"), at(22, "east"), at(30, "west")};
  auto none = MeasureOverlap(clean, "east", "west", t0, t0 + std::chrono::seconds(1));
  EXPECT_EQ(none.writes, 0u);  // 22 started before the first ack at west ended (25)
  auto split = clean;
  split.push_back(at(40, "east"));
  split.push_back(at(50, "east", false));  // failed: not acknowledged
  split.push_back(at(60, "east"));
  auto two = MeasureOverlap(split, "east", "west", t0, t0 + std::chrono::seconds(1));
  EXPECT_EQ(two.writes, 2u);
  EXPECT_EQ(two.first, t0 + std::chrono::milliseconds(45));
  // Outside the window (the next phase's failback) it does not count.
  EXPECT_EQ(MeasureOverlap(split, "east", "west", t0, t0 + std::chrono::milliseconds(35)).writes, 0u);
  EXPECT_EQ(MeasureOverlap(split, "east", "nowhere", t0, t0 + std::chrono::seconds(1)).writes, 0u);
}

}  // namespace
}  // namespace lifeboat::drill
