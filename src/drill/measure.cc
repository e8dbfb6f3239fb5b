#include "drill/measure.h"

#include <algorithm>

namespace lifeboat::drill {

Recovery MeasureRecovery(const std::vector<Attempt>& attempts, Clock::TimePoint fault) {
  Recovery r;
  std::string before;  // where writes were acknowledged just before the fault
  for (const auto& a : attempts) {
    if (a.end < fault && a.acked) before = a.target;
  }
  for (const auto& a : attempts) {
    if (a.end < fault) continue;  // finished before the fault: says nothing about it
    if (!r.first_failure) {
      if (a.acked && a.target == before) continue;  // still served as before
      r.first_failure = a.start;
    }
    if (!a.acked) {
      ++r.failed;
      continue;
    }
    if (!r.recovered) {
      r.recovered = a.end;
      r.recovered_at = a.target;
    }
  }
  if (!r.first_failure) {
    r.rto = Duration(0);
  } else if (r.recovered) {
    r.rto = std::chrono::duration_cast<Duration>(*r.recovered - *r.first_failure);
  }
  return r;
}

Loss MeasureLoss(const std::vector<Attempt>& attempts, const std::set<uint64_t>& found, Clock::TimePoint fault) {
  Loss l;
  std::vector<const Attempt*> missing;
  for (const auto& a : attempts) {
    if (!a.acked) continue;
    ++l.acked;
    if (found.count(a.seq)) continue;
    ++l.missing;
    missing.push_back(&a);
  }
  if (missing.empty()) return l;
  std::sort(missing.begin(), missing.end(), [](const Attempt* x, const Attempt* y) { return x->seq < y->seq; });
  for (size_t i = 0; i < missing.size() && i < 10000; ++i) l.missing_numbers.push_back(missing[i]->seq);
  l.first_missing.assign(l.missing_numbers.begin(), l.missing_numbers.begin() + std::min<size_t>(10, l.missing_numbers.size()));
  for (const Attempt* a : missing) {
    if (!l.oldest || a->end < *l.oldest) l.oldest = a->end;
    if (!l.newest || a->end > *l.newest) l.newest = a->end;
  }
  auto until = std::max(fault, *l.newest);
  l.rpo = until > *l.oldest ? std::chrono::duration_cast<Duration>(until - *l.oldest) : Duration(0);
  return l;
}

std::string FormatMs(Duration d) { return FormatDuration(std::chrono::round<std::chrono::milliseconds>(d)); }

Verdict Judge(const plan::Objectives& objectives, const Recovery& recovery, const Loss& loss) {
  Verdict v;
  if (!recovery.rto) {
    v.missed.push_back("the client never succeeded again after its first failure");
  } else if (objectives.rto && *recovery.rto > *objectives.rto) {
    v.missed.push_back("RTO " + FormatMs(*recovery.rto) + " is over the objective " +
                       FormatDuration(*objectives.rto));
  }
  if (objectives.rpo && loss.rpo > *objectives.rpo) {
    v.missed.push_back("RPO " + FormatMs(loss.rpo) + " (" + std::to_string(loss.missing) +
                       " acknowledged records lost) is over the objective " + FormatDuration(*objectives.rpo));
  }
  v.pass = v.missed.empty();
  return v;
}

Overlap MeasureOverlap(const std::vector<Attempt>& attempts, const std::string& old_target,
                       const std::string& new_target, Clock::TimePoint from, Clock::TimePoint to) {
  Overlap out;
  std::optional<Clock::TimePoint> new_since;  // the end of the first acknowledgement at the new target
  for (const auto& a : attempts) {
    if (a.start < from || a.start >= to || !a.acked) continue;
    if (a.target == new_target && (!new_since || a.end < *new_since)) new_since = a.end;
  }
  if (!new_since) return out;
  for (const auto& a : attempts) {
    if (a.start < from || a.start >= to || !a.acked || a.target != old_target) continue;
    if (a.start > *new_since) {
      ++out.writes;
      if (!out.first || a.end < *out.first) out.first = a.end;
    }
  }
  return out;
}

std::string FormatSeconds(double seconds) {
  return FormatMs(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace lifeboat::drill
