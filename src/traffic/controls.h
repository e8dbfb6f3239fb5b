// Routing controls: one on/off switch per serving region, kept in the state
// store so they survive restarts. A region switched off counts as unhealthy
// for every policy record. The plan's safety rule (routing_controls.safety.
// min_on) refuses a change that would leave fewer regions on, unless forced;
// it is checked against the store, not this process's copy, and the write is
// a transaction on every switch's revision, so two agents changing switches
// at once cannot together break it. The switches are shared by every agent
// on the store: a change any of them makes is followed here (a watch) and
// reaches this region's DNS answers within a second.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"
#include "metrics/registry.h"
#include "plan/plan.h"
#include "state/keys.h"
#include "state/store.h"

namespace lifeboat::traffic {

using Control = state::RoutingControl;  // saved under state::keys::RoutingControlOf(region)

// Thread-safe. `store`, `plan` and `metrics` must outlive it.
class RoutingControls {
 public:
  RoutingControls(state::Store& store, const plan::Plan& plan, metrics::Registry& metrics);

  // Reads the saved switches (a region never set is on), then follows the
  // store's changes until StopWatching() or destruction.
  Status Load();
  void StopWatching();
  ~RoutingControls();
  bool IsOn(const std::string& region) const;
  // Sets a region's switch. InvalidArgument for an unknown or witness region;
  // FailedPrecondition when the safety rule refuses and !force; Aborted if
  // another writer changed it concurrently.
  Result<Control> Set(const std::string& region, bool on, bool force, const std::string& who);
  std::map<std::string, Control> All() const;
  nlohmann::ordered_json Json() const;

  // `fn` runs after every change: on the caller's thread for Set, on the
  // store's watch thread for a change made elsewhere. Set it before Load.
  void OnChange(std::function<void()> fn) { on_change_ = std::move(fn); }

 private:
  // Takes `c` as the region's switch as of store revision `revision`; an
  // older one than applied already is stale (a watch event arriving after
  // this process's own newer write) and ignored. True when it changed.
  bool Apply(const std::string& region, const Control& c, int64_t revision);
  void OnEvent(const state::Event& e);
  // Every serving region's switch as the store has it, in one read.
  struct Saved {
    Control control;
    int64_t revision = 0;  // of its key; 0 when never set
  };
  struct Switches {
    std::map<std::string, Saved> regions;
    int64_t revision = 0;  // of the read
  };
  Result<Switches> Read();
  // Re-reads every switch and watches from the revision after the read.
  Status Follow();

  state::Store& store_;
  const plan::Plan& plan_;
  mutable std::mutex mu_;
  // Held by Set across its write and by the watch's callback, so that a change
  // made here is applied and notified once, by Set, on the caller's thread.
  std::mutex change_mu_;
  std::map<std::string, Control> controls_;  // guarded by mu_
  std::map<std::string, int64_t> applied_;   // the revision of each switch's value; guarded by mu_
  // The watch and any a compacted history replaced (a callback cannot end its own); guarded by mu_.
  std::vector<std::unique_ptr<state::WatchHandle>> watches_;
  std::function<void()> on_change_;
  metrics::Family<metrics::Gauge>* on_g_;
  metrics::Family<metrics::Counter>* changes_c_;
};

}  // namespace lifeboat::traffic
