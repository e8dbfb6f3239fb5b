// What a drill sees of its agents through their shared state store while it
// runs: each observer's health of each endpoint and its vote on the
// primary, its view appearing and vanishing (its agent's lease), every
// epoch change, the driver's lock and each step of the failover run, as
// timed events for the report (its "events" and the timeline's lanes).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "state/keys.h"
#include "state/store.h"

namespace lifeboat::drill {

using EventJson = nlohmann::ordered_json;

// The events between two versions of one observer's view (nullopt: no view,
// its agent gone): {"at", "kind": "observer"|"health"|"vote", "observer",
// ...}. `at` is the view's own time when it has one, else `now`.
std::vector<EventJson> ViewChanges(const std::string& observer, const std::optional<state::ObserverView>& before,
                                   const std::optional<state::ObserverView>& after, Clock::TimePoint now);

// The events between two versions of the failover run: a new run, each
// step whose state changed, the run's end; {"kind": "run"|"step", ...}.
std::vector<EventJson> RunChanges(const std::optional<state::FailoverRun>& before, const state::FailoverRun& after,
                                  Clock::TimePoint now);

// Watches a store from its current revision and keeps the events. `on_run`
// (optional) sees every version of the failover run as it is read, on the
// store's watch thread.
class StoreTimeline {
 public:
  using RunFn = std::function<void(const state::FailoverRun&)>;
  static Result<std::unique_ptr<StoreTimeline>> Start(state::Store& store, RunFn on_run = nullptr);
  ~StoreTimeline();
  std::vector<EventJson> Events() const;

 private:
  explicit StoreTimeline(RunFn on_run) : on_run_(std::move(on_run)) {}
  void OnEvent(const state::Event& e);

  RunFn on_run_;
  mutable std::mutex mu_;
  std::map<std::string, state::ObserverView> views_;  // by observer
  std::optional<state::FailoverRun> run_;
  std::optional<state::PrimaryRecord> primary_;
  std::vector<EventJson> events_;
  std::unique_ptr<state::WatchHandle> watch_;
};

}  // namespace lifeboat::drill
