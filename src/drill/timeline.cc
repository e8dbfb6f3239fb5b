#include "drill/timeline.h"

namespace lifeboat::drill {

namespace {

std::string At(const std::string& written, Clock::TimePoint now) {
  return ParseUtc(written) ? written : FormatUtc(now);
}

}  // namespace

std::vector<EventJson> ViewChanges(const std::string& observer, const std::optional<state::ObserverView>& before,
                                   const std::optional<state::ObserverView>& after, Clock::TimePoint now) {
  std::vector<EventJson> out;
  std::string at = after ? At(after->at, now) : FormatUtc(now);
  auto event = [&](const char* kind) { return EventJson{{"at", at}, {"kind", kind}, {"observer", observer}}; };
  if (before.has_value() != after.has_value()) {
    auto e = event("observer");
    e["present"] = after.has_value();
    out.push_back(std::move(e));
    if (!after) return out;
  }
  for (const auto& [endpoint, healthy] : after->endpoints) {
    std::optional<bool> was;
    if (before) {
      for (const auto& [name, h] : before->endpoints) {
        if (name == endpoint) was = h;
      }
    }
    // A first view reports only what is not the agents' starting point (healthy).
    if ((was && *was == healthy) || (!was && healthy)) continue;
    auto e = event("health");
    e["endpoint"] = endpoint;
    e["healthy"] = healthy;
    out.push_back(std::move(e));
  }
  bool was_down = before && before->primary_down;
  if (was_down != after->primary_down) {
    auto e = event("vote");
    e["down"] = after->primary_down;
    e["primary"] = after->primary;
    e["epoch"] = after->epoch;
    e["reason"] = after->reason;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<EventJson> RunChanges(const std::optional<state::FailoverRun>& before, const state::FailoverRun& after,
                                  Clock::TimePoint now) {
  std::vector<EventJson> out;
  bool fresh = !before || before->id != after.id;
  if (fresh || before->state != after.state || before->owner != after.owner) {
    std::string at = after.state != "running" ? At(after.ended_at, now)
                     : fresh                   ? At(after.started_at, now)
                                               : FormatUtc(now);  // taken over by another driver
    out.push_back({{"at", at},
                   {"kind", "run"},
                   {"id", after.id},
                   {"from", after.from},
                   {"to", after.to},
                   {"epoch", after.epoch},
                   {"state", after.state},
                   {"owner", after.owner}});
  }
  for (const auto& s : after.steps) {
    const state::StepRecord* was = nullptr;
    if (!fresh) {
      for (const auto& b : before->steps) {
        if (b.name == s.name) was = &b;
      }
    }
    if (was && was->state == s.state && was->attempts == s.attempts) continue;
    if (!was && s.state == "pending") continue;
    out.push_back({{"at", s.state == "running" ? At(s.started_at, now) : At(s.ended_at, now)},
                   {"kind", "step"},
                   {"step", s.name},
                   {"state", s.state},
                   {"attempts", s.attempts},
                   {"owner", after.owner}});
  }
  return out;
}

Result<std::unique_ptr<StoreTimeline>> StoreTimeline::Start(state::Store& store, RunFn on_run) {
  std::unique_ptr<StoreTimeline> t(new StoreTimeline(std::move(on_run)));
  LB_ASSIGN_OR_RETURN(auto range, store.List(""));
  for (const auto& kv : range.kvs) {
    if (kv.key.starts_with(state::keys::kViewsPrefix)) {
      state::ObserverView v;
      if (state::Decode(kv.value, v)) t->views_[kv.key.substr(state::keys::kViewsPrefix.size())] = v;
    } else if (kv.key == state::keys::CurrentFailover().name()) {
      state::FailoverRun r;
      if (state::Decode(kv.value, r)) t->run_ = r;
    } else if (kv.key == state::keys::Primary().name()) {
      state::PrimaryRecord p;
      if (state::Decode(kv.value, p)) t->primary_ = p;
    }
  }
  StoreTimeline* raw = t.get();
  t->watch_ = store.Watch("", range.revision + 1, [raw](const state::Event& e) { raw->OnEvent(e); });
  return t;
}

StoreTimeline::~StoreTimeline() { watch_.reset(); }

std::vector<EventJson> StoreTimeline::Events() const {
  std::lock_guard lock(mu_);
  return events_;
}

void StoreTimeline::OnEvent(const state::Event& e) {
  auto now = Clock::Real().Now();
  const std::string& key = e.kv.key;
  bool put = e.type == state::Event::Type::kPut;
  std::optional<state::FailoverRun> run_seen;
  {
    std::lock_guard lock(mu_);
    if (e.type == state::Event::Type::kCompacted) {
      events_.push_back({{"at", FormatUtc(now)}, {"kind", "gap"}, {"why", "the store's history was compacted"}});
      return;
    }
    if (key.starts_with(state::keys::kViewsPrefix)) {
      std::string observer = key.substr(state::keys::kViewsPrefix.size());
      std::optional<state::ObserverView> before, after;
      if (auto it = views_.find(observer); it != views_.end()) before = it->second;
      state::ObserverView v;
      if (put && state::Decode(e.kv.value, v)) after = v;
      for (auto& ev : ViewChanges(observer, before, after, now)) events_.push_back(std::move(ev));
      if (after) {
        views_[observer] = *after;
      } else {
        views_.erase(observer);
      }
    } else if (key == state::keys::CurrentFailover().name() && put) {
      state::FailoverRun r;
      if (!state::Decode(e.kv.value, r)) return;
      for (auto& ev : RunChanges(run_, r, now)) events_.push_back(std::move(ev));
      run_ = r;
      run_seen = r;
    } else if (key == state::keys::Primary().name() && put) {
      state::PrimaryRecord p;
      if (!state::Decode(e.kv.value, p)) return;
      if (!primary_ || primary_->epoch != p.epoch || primary_->region != p.region) {
        events_.push_back({{"at", At(p.since, now)}, {"kind", "epoch"}, {"primary", p.region}, {"epoch", p.epoch},
                           {"by", p.by}});
      }
      primary_ = p;
    } else if (key == state::keys::kFailoverLock) {
      events_.push_back({{"at", FormatUtc(now)}, {"kind", "lock"}, {"owner", put ? e.kv.value : ""}});
    }
  }
  if (run_seen && on_run_) on_run_(*run_seen);
}

}  // namespace lifeboat::drill
