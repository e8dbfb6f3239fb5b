// Detection: what one agent sees of the primary region, and what the
// regions' views together decide. Pure logic over explicit times, so tests
// and the simulation drive it with their own clock; the agent's failover
// service (agent/services/failover) feeds it probes and the store's views.
//
// One observer sees the primary down when every endpoint of the primary
// region that has a health check fails it from here; a primary region with
// no checked endpoint is seen down when its agent's view has vanished from
// the store (its lease expired) after this observer saw it once (so a
// primary that starts later than the others is not taken for dead). Routing controls do not count: a region
// switched off by hand is not an outage. The observer publishes "down" only
// after `failover.grace` without a break, so a quorum of published views is
// a quorum that has agreed for the whole grace.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "state/keys.h"

namespace lifeboat::orchestrate {

using Steady = std::chrono::steady_clock::time_point;

struct Verdict {
  bool failover = false;  // a quorum of this epoch's views sees the primary down
  int votes = 0;          // views of this epoch that see the primary down
  int views = 0;          // views of this epoch
  std::vector<std::string> voters;
  std::string target;  // where to fail over to; empty when no region fits
  std::string why;     // one line for the log and status
};

class Detector {
 public:
  // `plan` outlives the detector; `region` is the observer's.
  Detector(const plan::Plan& plan, std::string region);

  // This region's view of `primary` at `now`: `healthy` tells an endpoint's
  // health as probed here, `heartbeat` whether the primary's agent has a
  // view in the store.
  state::ObserverView Observe(const state::PrimaryRecord& primary,
                              const std::function<bool(const std::string&)>& healthy, bool heartbeat, Steady now);

  // What the views decide for `primary`: only views of its epoch count.
  // The target is the first serving region after the primary in the plan's
  // order (standbys before others) that Unfit() accepts.
  Verdict Decide(const state::PrimaryRecord& primary, const std::vector<state::ObserverView>& views) const;

  // Why `region` cannot become primary now, or "" when it can: its agent
  // must have a view of this epoch (it takes the data over), each volume
  // copy in that view must follow the primary at this epoch or later (a
  // fenced or older copy may lack writes: fail back first), its server of
  // each database must be a standby measured within max_lag_on_failover of
  // the primary's (a fenced old primary must be rewound first), and, when
  // it has checked endpoints, one of them must be healthy in a majority of
  // the views.
  std::string Unfit(const std::string& region, const state::PrimaryRecord& primary,
                    const std::vector<state::ObserverView>& views) const;

 private:
  const plan::Plan& plan_;
  std::string region_;
  // Since when the primary of this epoch has been seen down without a break.
  std::string down_primary_;
  uint64_t down_epoch_ = 0;
  std::optional<Steady> down_since_;
  // Whether the primary's agent has had a view since this epoch began here:
  // until then its missing view means "not started yet", not "gone".
  bool heartbeat_seen_ = false;
};

// The endpoints of `region` that have a health check.
std::vector<const plan::Endpoint*> CheckedEndpoints(const plan::Plan& plan, const std::string& region);

// Whether `endpoint` is healthy in at least `quorum` of `views` (views that
// do not report it do not count either way).
bool HealthyInViews(const std::string& endpoint, const std::vector<state::ObserverView>& views, int quorum);

}  // namespace lifeboat::orchestrate
