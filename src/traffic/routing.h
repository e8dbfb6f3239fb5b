// What the entry points route by: each endpoint's health, each region's
// routing control, and the failover epoch's primary. The traffic service
// builds one immutable RoutingState per change; the DNS answers and the L4
// proxy both read it, so that the two never disagree about where traffic
// goes.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "plan/plan.h"

namespace lifeboat::traffic {

struct RoutingState {
  uint64_t generation = 0;
  // The failover epoch's primary region; empty when no record says (the
  // plan's primary stands).
  std::string primary;
  uint64_t epoch = 0;
  std::unordered_map<std::string, bool> healthy;  // endpoint -> healthy; absent: healthy
  std::unordered_map<std::string, bool> on;       // region -> routing control; absent: on

  bool Healthy(const std::string& endpoint) const {
    auto it = healthy.find(endpoint);
    return it == healthy.end() || it->second;
  }
  bool On(const std::string& region) const {
    auto it = on.find(region);
    return it == on.end() || it->second;
  }
  // Healthy and its region switched on: traffic may go there.
  bool Up(const plan::Endpoint& ep) const { return Healthy(ep.name) && On(ep.region); }
  // The primary region: the epoch's, else the plan's; empty when neither.
  std::string PrimaryOf(const plan::Plan& plan) const {
    if (!primary.empty()) return primary;
    const plan::Region* p = plan.Primary();
    return p ? p->name : "";
  }
};

}  // namespace lifeboat::traffic
