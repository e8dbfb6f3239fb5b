// What a drill measures, from what its client saw: RTO, RPO and the verdict
// against the plan's objectives. Pure functions over explicit times, so the
// tests give them timelines by hand.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/units.h"
#include "plan/plan.h"

namespace lifeboat::drill {

// One write of record `seq` by the drill client.
struct Attempt {
  uint64_t seq = 0;
  Clock::TimePoint start, end;
  std::string target;  // "127.0.0.2:7711"; "" when the name did not resolve
  bool acked = false;  // the application answered 2xx: the record is kept
  std::string error;   // why not, when not
};

// Time to recover, as the client lived it.
struct Recovery {
  uint64_t failed = 0;  // attempts that failed from the fault on
  // The start of the first attempt from the fault on that the target of
  // before the fault did not acknowledge (one that failed, or one that
  // succeeded elsewhere only after its resolver waited out a dead DNS
  // server), and the end of the first acknowledged attempt from then on.
  std::optional<Clock::TimePoint> first_failure, recovered;
  // recovered - first_failure; zero when no attempt failed; unset when the
  // client never succeeded again.
  std::optional<Duration> rto;
  std::string recovered_at;  // the target of that first success
};
Recovery MeasureRecovery(const std::vector<Attempt>& attempts, Clock::TimePoint fault);

// Acknowledged records that the new primary does not hold.
struct Loss {
  uint64_t acked = 0;    // acknowledged records, in all
  uint64_t missing = 0;  // of those, not found
  std::vector<uint64_t> first_missing;  // up to ten of their numbers, lowest first
  std::vector<uint64_t> missing_numbers;  // all of them (10,000 at most), lowest first
  // When the oldest and the newest missing records were acknowledged.
  std::optional<Clock::TimePoint> oldest, newest;
  // The span of time whose acknowledged writes are lost: from the oldest
  // missing acknowledgement to the fault, or to the newest one if that came
  // later (writes acknowledged by a cut-off primary). Zero when none is lost.
  Duration rpo{0};
};
Loss MeasureLoss(const std::vector<Attempt>& attempts, const std::set<uint64_t>& found, Clock::TimePoint fault);

// Writes acknowledged by `old_target` after `new_target` had acknowledged
// one, among attempts that started in [from, to): the client saw two
// primaries at once. Zero in every drill, or the fencing failed.
struct Overlap {
  uint64_t writes = 0;
  std::optional<Clock::TimePoint> first;  // the first such acknowledgement
};
Overlap MeasureOverlap(const std::vector<Attempt>& attempts, const std::string& old_target,
                       const std::string& new_target, Clock::TimePoint from, Clock::TimePoint to);

// A measured duration to the millisecond ("3.007s", "41ms"), as the
// verdict and the drill's summary print it.
std::string FormatMs(Duration d);
// The same for a figure in seconds, as the reports keep them.
std::string FormatSeconds(double seconds);

struct Verdict {
  bool pass = true;
  std::vector<std::string> missed;  // "RTO 41.2s is over the objective 30s"
};
// An objective the plan does not set is met; an RTO that never ended
// misses any objective.
Verdict Judge(const plan::Objectives& objectives, const Recovery& recovery, const Loss& loss);

}  // namespace lifeboat::drill
