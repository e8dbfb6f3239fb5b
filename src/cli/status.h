// Asking every region's agent for its status, for `lifeboat status` and the demo.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/units.h"
#include "plan/plan.h"

namespace lifeboat::cli {

struct RegionStatus {
  std::string region;
  std::string role;  // as the agent reports it, or the plan's when down
  std::string agent;
  bool up = false;
  std::string version;
  double uptime_seconds = -1;
  std::string error;  // why it is down
  nlohmann::ordered_json status;  // the agent's /v1/status when up
};

// Queries all agents in parallel; an agent that does not answer within
// `timeout` is reported down, with the reason.
std::vector<RegionStatus> CollectStatus(const plan::Plan& plan, Duration timeout);
std::string StatusTable(const std::vector<RegionStatus>& regions);
// "primary: east (epoch 1)", and a running failover's step, from the first
// agent that answered; "" when none did.
std::string PrimaryLine(const std::vector<RegionStatus>& regions);
nlohmann::ordered_json StatusJson(const plan::Plan& plan, const std::vector<RegionStatus>& regions);

// The source of a replicated volume by what the agents report: the region
// that reports itself its source under the highest epoch (after a promote
// two may, until the old one is reversed). nullopt when no agent that
// answered reports a role for it.
std::optional<std::string> ReportedSource(const std::vector<RegionStatus>& regions, const std::string& volume);

}  // namespace lifeboat::cli
