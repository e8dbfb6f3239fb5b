// Routing controls: one on/off switch per serving region, kept in the state
// store so they survive restarts. A region switched off counts as unhealthy
// for every policy record. The plan's safety rule (routing_controls.safety.
// min_on) refuses a change that would leave fewer regions on, unless forced.
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

  // Reads the saved switches (a region never set is on).
  Status Load();
  bool IsOn(const std::string& region) const;
  // Sets a region's switch. InvalidArgument for an unknown or witness region;
  // FailedPrecondition when the safety rule refuses and !force; Aborted if
  // another writer changed it concurrently.
  Result<Control> Set(const std::string& region, bool on, bool force, const std::string& who);
  std::map<std::string, Control> All() const;
  nlohmann::ordered_json Json() const;

  // `fn` runs after every change, on the caller's thread.
  void OnChange(std::function<void()> fn) { on_change_ = std::move(fn); }

 private:
  state::Store& store_;
  const plan::Plan& plan_;
  mutable std::mutex mu_;
  std::map<std::string, Control> controls_;  // guarded by mu_
  std::function<void()> on_change_;
  metrics::Family<metrics::Gauge>* on_g_;
  metrics::Family<metrics::Counter>* changes_c_;
};

}  // namespace lifeboat::traffic
