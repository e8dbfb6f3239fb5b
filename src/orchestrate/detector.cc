#include "orchestrate/detector.h"

#include <algorithm>

namespace lifeboat::orchestrate {

std::vector<const plan::Endpoint*> CheckedEndpoints(const plan::Plan& plan, const std::string& region) {
  std::vector<const plan::Endpoint*> out;
  for (const auto& e : plan.endpoints) {
    if (e.region == region && !e.check.empty()) out.push_back(&e);
  }
  return out;
}

bool HealthyInViews(const std::string& endpoint, const std::vector<state::ObserverView>& views, int quorum) {
  int healthy = 0;
  for (const auto& v : views) {
    for (const auto& [name, up] : v.endpoints) {
      if (name == endpoint && up) ++healthy;
    }
  }
  return healthy >= quorum;
}

Detector::Detector(const plan::Plan& plan, std::string region) : plan_(plan), region_(std::move(region)) {}

state::ObserverView Detector::Observe(const state::PrimaryRecord& primary,
                                      const std::function<bool(const std::string&)>& healthy, bool heartbeat,
                                      Steady now) {
  state::ObserverView v;
  v.observer = region_;
  v.primary = primary.region;
  v.epoch = primary.epoch;
  for (const auto& e : plan_.endpoints) {
    if (!e.check.empty()) v.endpoints.emplace_back(e.name, healthy(e.name));
  }

  // A new primary or epoch starts the watch afresh.
  if (down_primary_ != primary.region || down_epoch_ != primary.epoch) {
    down_primary_ = primary.region;
    down_epoch_ = primary.epoch;
    down_since_.reset();
    heartbeat_seen_ = false;
  }
  if (primary.region == region_) heartbeat = true;  // this agent is the primary's
  heartbeat_seen_ |= heartbeat;

  bool down = false;
  auto checked = CheckedEndpoints(plan_, primary.region);
  if (!checked.empty()) {
    down = std::none_of(checked.begin(), checked.end(), [&](const plan::Endpoint* e) { return healthy(e->name); });
    v.reason = down ? "every checked endpoint of " + primary.region + " fails its check from " + region_
                    : "an endpoint of " + primary.region + " passes its check from " + region_;
  } else {
    down = heartbeat_seen_ && !heartbeat;
    v.reason = down             ? primary.region + "'s agent has no view in the store (its lease expired)"
               : heartbeat      ? primary.region + " has no checked endpoint; its agent is alive"
                                : primary.region + " has no checked endpoint, and its agent has not been seen yet";
  }

  if (!down) {
    down_since_.reset();
  } else if (!down_since_) {
    down_since_ = now;
  }
  if (down_since_) {
    auto held = now - *down_since_;
    v.down_for_ms = std::chrono::duration_cast<std::chrono::milliseconds>(held).count();
    v.primary_down = held >= plan_.failover.grace;
  }
  return v;
}

Verdict Detector::Decide(const state::PrimaryRecord& primary, const std::vector<state::ObserverView>& views) const {
  Verdict out;
  std::vector<state::ObserverView> current;
  for (const auto& v : views) {
    if (v.epoch != primary.epoch || v.primary != primary.region) continue;
    current.push_back(v);
    if (v.primary_down) {
      ++out.votes;
      out.voters.push_back(v.observer);
    }
  }
  out.views = static_cast<int>(current.size());
  const int quorum = plan_.failover.quorum;
  out.failover = out.votes >= quorum;

  // Candidates: standbys first, then the other serving regions, in plan order.
  std::vector<const plan::Region*> candidates;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& r : plan_.regions) {
      if (!r.serves() || r.name == primary.region) continue;
      if ((r.role == plan::Role::kStandby) == (pass == 0)) candidates.push_back(&r);
    }
  }
  std::string unfit;
  for (const auto* r : candidates) {
    std::string why = Unfit(r->name, primary, current);
    if (why.empty()) {
      out.target = r->name;
      break;
    }
    unfit += (unfit.empty() ? "" : "; ") + r->name + ": " + why;
  }

  std::string voters;
  for (const auto& v : out.voters) voters += (voters.empty() ? "" : ", ") + v;
  out.why = std::to_string(out.votes) + " of " + std::to_string(out.views) + " regions see " + primary.region +
            " down (quorum " + std::to_string(quorum) + (voters.empty() ? "" : ": " + voters) + ")";
  if (out.failover) {
    out.why += out.target.empty() ? "; no region to fail over to (" + unfit + ")" : "; fail over to " + out.target;
  }
  return out;
}

std::string Detector::Unfit(const std::string& region, const state::PrimaryRecord& primary,
                            const std::vector<state::ObserverView>& views) const {
  std::vector<state::ObserverView> current;
  for (const auto& v : views) {
    if (v.epoch == primary.epoch && v.primary == primary.region) current.push_back(v);
  }
  auto own = std::find_if(current.begin(), current.end(), [&](const auto& v) { return v.observer == region; });
  if (own == current.end()) return "its agent has no view of epoch " + std::to_string(primary.epoch);
  for (const auto& c : own->copies) {
    if (c.role.fenced) return "its copy of " + c.volume + " is fenced (stale since an earlier failover): fail back first";
    if (c.role.source || c.role.source_region != primary.region || c.role.epoch < primary.epoch) {
      return "its copy of " + c.volume + " does not follow " + primary.region + " at epoch " +
             std::to_string(primary.epoch) + " (" +
             (c.role.source ? std::string("it is a source") : "it follows " + c.role.source_region) + " at epoch " +
             std::to_string(c.role.epoch) + "): fail back first";
    }
  }
  for (const auto& db : plan_.databases) {
    if (!db.instances.count(region) || !db.instances.count(primary.region)) continue;
    auto d = std::find_if(own->databases.begin(), own->databases.end(),
                          [&](const auto& x) { return x.database == db.name; });
    if (d == own->databases.end()) return "its agent does not report its server of database " + db.name;
    if (d->role != "standby") {
      return "its server of database " + db.name + " is " +
             (d->role == "unreachable" ? std::string("unreachable from its agent") : "a " + d->role + ", not a standby") +
             (d->role == "fenced primary" ? " (an old primary: lifeboat db rewind makes it follow first)" : "");
    }
    if (d->lag_bytes < 0) {
      return "its server of database " + db.name + " was never measured against " + primary.region + "'s";
    }
    if (static_cast<uint64_t>(d->lag_bytes) > db.max_lag_on_failover.bytes) {
      return "its server of database " + db.name + " was " + HumanBytes(static_cast<uint64_t>(d->lag_bytes)) +
             " behind, over max_lag_on_failover (" + FormatSize(db.max_lag_on_failover) + ")";
    }
  }
  auto checked = CheckedEndpoints(plan_, region);
  int majority = static_cast<int>(current.size()) / 2 + 1;
  bool healthy = checked.empty() || std::any_of(checked.begin(), checked.end(), [&](const plan::Endpoint* e) {
                   return HealthyInViews(e->name, current, majority);
                 });
  if (!healthy) return "no endpoint healthy in a majority of the views";
  return "";
}

}  // namespace lifeboat::orchestrate
