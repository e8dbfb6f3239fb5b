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

RoutingControls::~RoutingControls() { StopWatching(); }

Status RoutingControls::Load() { return Follow(); }

Result<RoutingControls::Switches> RoutingControls::Read() {
  LB_ASSIGN_OR_RETURN(auto range, store_.List(state::keys::kRoutingControlsPrefix));
  Switches out;
  out.revision = range.revision;
  {
    std::lock_guard lock(mu_);
    for (const auto& [region, c] : controls_) out.regions[region];  // a switch never set: on, absent
  }
  for (const auto& kv : range.kvs) {
    auto it = out.regions.find(kv.key.substr(state::keys::kRoutingControlsPrefix.size()));
    if (it == out.regions.end()) continue;  // not a serving region of this plan
    Control c;
    if (!state::Decode(kv.value, c)) return DataLoss("state key " + kv.key + " is not a routing control");
    it->second = {c, kv.mod_revision};
  }
  return out;
}

Status RoutingControls::Follow() {
  LB_ASSIGN_OR_RETURN(auto read, Read());
  bool changed = false;
  for (const auto& [region, saved] : read.regions) {
    changed |= Apply(region, saved.control, saved.revision ? saved.revision : read.revision);
  }
  auto watch = store_.Watch(state::keys::kRoutingControlsPrefix, read.revision + 1,
                            [this](const state::Event& e) { OnEvent(e); });
  {
    std::lock_guard lock(mu_);
    watches_.push_back(std::move(watch));
  }
  if (changed && on_change_) on_change_();
  return Ok();
}

void RoutingControls::StopWatching() {
  std::vector<std::unique_ptr<state::WatchHandle>> watches;
  {
    std::lock_guard lock(mu_);
    watches.swap(watches_);
  }
  watches.clear();  // waits for a callback in progress, which takes mu_
}

bool RoutingControls::Apply(const std::string& region, const Control& c, int64_t revision) {
  std::lock_guard lock(mu_);
  int64_t& applied = applied_[region];
  if (revision <= applied) return false;
  applied = revision;
  auto it = controls_.find(region);
  if (it == controls_.end() || (it->second.on == c.on && it->second.by == c.by && it->second.at == c.at)) return false;
  it->second = c;
  on_g_->With({region}).Set(c.on ? 1 : 0);
  return true;
}

void RoutingControls::OnEvent(const state::Event& e) {
  if (e.type == state::Event::Type::kCompacted) {
    // Changes were missed: read them all again and follow from there.
    if (auto s = Follow(); !s.ok()) {
      spdlog::error("routing controls: cannot re-read the switches after a compacted history: {}", s.error().message());
    }
    return;
  }
  std::lock_guard changing(change_mu_);  // a Set of this process notifies its own change
  std::string region = e.kv.key.substr(state::keys::kRoutingControlsPrefix.size());
  Control c;  // deleted: on, as a switch never set
  if (e.type == state::Event::Type::kPut && !state::Decode(e.kv.value, c)) {
    spdlog::error("routing controls: state key {} holds a value that is not a routing control; ignored", e.kv.key);
    return;
  }
  if (!Apply(region, c, e.kv.mod_revision)) return;
  spdlog::info("routing control of {} is now {} (set by {})", region, c.on ? "on" : "off", c.by);
  if (on_change_) on_change_();
}

bool RoutingControls::IsOn(const std::string& region) const {
  std::lock_guard lock(mu_);
  auto it = controls_.find(region);
  return it == controls_.end() || it->second.on;
}

Result<Control> RoutingControls::Set(const std::string& region, bool on, bool force, const std::string& who) {
  bool known;
  {
    std::lock_guard lock(mu_);
    known = controls_.count(region) > 0;
  }
  if (!known) {
    const plan::Region* r = plan_.FindRegion(region);
    changes_c_->With({region, "invalid"}).Inc();
    if (r == nullptr) return NotFound("no region '" + region + "' in plan " + plan_.name);
    return InvalidArgument("region '" + region + "' is a witness; it serves no traffic to switch");
  }
  std::lock_guard changing(change_mu_);
  // Every switch as the store has it now (another agent may have changed
  // one), and the condition that none changes before this write lands.
  LB_ASSIGN_OR_RETURN(auto read, Read());
  std::vector<state::Compare> unchanged;
  int on_after = 0;
  for (const auto& [name, saved] : read.regions) {
    unchanged.push_back({state::keys::RoutingControlOf(name).name(),
                         saved.revision ? state::Expect::Revision(saved.revision) : state::Expect::Absent()});
    on_after += name == region ? on : saved.control.on;
  }
  int min_on = plan_.routing_controls.min_on;
  if (!on && on_after < min_on && !force) {
    changes_c_->With({region, "refused"}).Inc();
    return FailedPrecondition("switching " + region + " off would leave " + std::to_string(on_after) +
                              " region(s) on; the safety rule (routing_controls.safety.min_on) needs at least " +
                              std::to_string(min_on) + ". Use --force to do it anyway");
  }
  Control next{on, who.empty() ? "unknown" : who, FormatUtc(Clock::Real().Now())};
  auto written = store_.Txn(unchanged, {state::Op::Put(state::keys::RoutingControlOf(region).name(), state::Encode(next))});
  if (!written.ok()) {
    changes_c_->With({region, "conflict"}).Inc();
    if (written.error().code() == Code::kAborted) {
      return Aborted("another routing control changed at the same moment; look again and retry");
    }
    return written.error();
  }
  bool changed = Apply(region, next, *written);
  changes_c_->With({region, force && on_after < min_on ? "forced" : "applied"}).Inc();
  spdlog::info("routing control of {} switched {} by {}{}", region, on ? "on" : "off", next.by,
               force && on_after < min_on ? " (forced past the safety rule)" : "");
  if (changed && on_change_) on_change_();
  return next;
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
