#include "traffic/controls.h"

#include <spdlog/spdlog.h>

#include "core/clock.h"

namespace lifeboat::traffic {

RoutingControls::RoutingControls(state::Store& store, const plan::Plan& plan, metrics::Registry& metrics)
    : store_(store), plan_(plan) {
  on_g_ = &metrics.AddGauge("lifeboat_routing_control_on", "1 when the region's routing control is on.", {"region"});
  changes_c_ = &metrics.AddCounter("lifeboat_routing_control_changes_total", "Routing control changes by region and result.",
                                   {"region", "result"});
  for (const auto& r : plan_.regions) {
    if (!r.serves()) continue;
    controls_[r.name] = Control{};
    on_g_->With({r.name}).Set(1);
  }
}

Status RoutingControls::Load() {
  std::lock_guard lock(mu_);
  for (auto& [region, control] : controls_) {
    LB_ASSIGN_OR_RETURN(auto saved, state::keys::RoutingControlOf(region).Get(store_));
    if (!saved) continue;
    control = *saved;
    on_g_->With({region}).Set(control.on ? 1 : 0);
  }
  return Ok();
}

bool RoutingControls::IsOn(const std::string& region) const {
  std::lock_guard lock(mu_);
  auto it = controls_.find(region);
  return it == controls_.end() || it->second.on;
}

Result<Control> RoutingControls::Set(const std::string& region, bool on, bool force, const std::string& who) {
  Control result;
  {
    std::lock_guard lock(mu_);
    auto it = controls_.find(region);
    if (it == controls_.end()) {
      const plan::Region* r = plan_.FindRegion(region);
      changes_c_->With({region, "invalid"}).Inc();
      if (r == nullptr) return NotFound("no region '" + region + "' in plan " + plan_.name);
      return InvalidArgument("region '" + region + "' is a witness; it serves no traffic to switch");
    }
    int on_after = 0;
    for (const auto& [name, c] : controls_) on_after += (name == region ? on : c.on);
    int min_on = plan_.routing_controls.min_on;
    if (!on && on_after < min_on && !force) {
      changes_c_->With({region, "refused"}).Inc();
      return FailedPrecondition("switching " + region + " off would leave " + std::to_string(on_after) +
                                " region(s) on; the safety rule (routing_controls.safety.min_on) needs at least " +
                                std::to_string(min_on) + ". Use --force to do it anyway");
    }
    Control next{on, who.empty() ? "unknown" : who, FormatUtc(Clock::Real().Now())};
    LB_RETURN_IF_ERROR(state::keys::RoutingControlOf(region).Put(store_, next));
    it->second = next;
    on_g_->With({region}).Set(on ? 1 : 0);
    changes_c_->With({region, force && on_after < min_on ? "forced" : "applied"}).Inc();
    spdlog::info("routing control of {} switched {} by {}{}", region, on ? "on" : "off", next.by,
                 force && on_after < min_on ? " (forced past the safety rule)" : "");
    result = next;
  }
  if (on_change_) on_change_();
  return result;
}

std::map<std::string, Control> RoutingControls::All() const {
  std::lock_guard lock(mu_);
  return controls_;
}

nlohmann::ordered_json RoutingControls::Json() const {
  nlohmann::ordered_json j;
  j["min_on"] = plan_.routing_controls.min_on;
  auto regions = nlohmann::ordered_json::object();
  for (const auto& [name, c] : All()) regions[name] = {{"on", c.on}, {"by", c.by}, {"at", c.at}};
  j["regions"] = regions;
  return j;
}

}  // namespace lifeboat::traffic
