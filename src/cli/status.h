// Asking every region's agent for its status, for `lifeboat status` and the demo.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
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
// "primary: east (epoch 1)", and a running failover's step and how long it
// has run by `now`, from the first agent that answered; "" when none did.
std::string PrimaryLine(const std::vector<RegionStatus>& regions, Clock::TimePoint now);
nlohmann::ordered_json StatusJson(const plan::Plan& plan, const std::vector<RegionStatus>& regions);

// How far one copy of a replicated volume is behind, as its source reports
// (lifeboat status shows one per volume and target).
struct VolumeLag {
  std::string volume;
  std::string source;  // the region that reports itself the source; "" when none answered
  uint64_t epoch = 0;
  std::string target;  // "" on a row that says no source answers
  std::string state;   // the stream's state, or why there is no lag to show
  bool in_sync = false;
  std::optional<double> rpo_seconds;  // age of the oldest change the target lacks; nullopt: unknown
  uint64_t pending_files = 0, pending_bytes = 0;
};
// One row per (volume, target) of every continuously replicated volume of
// the plan, from the sources' reports; a volume no source reports gets one
// row saying so, and a fenced copy one row saying that.
std::vector<VolumeLag> VolumeLags(const plan::Plan& plan, const std::vector<RegionStatus>& regions);
std::string VolumeLagTable(const std::vector<VolumeLag>& lags);

// One row per database server of each agent that watches one: its role,
// its WAL position, a standby's lag, a primary's standbys.
std::string DatabaseTable(const std::vector<RegionStatus>& regions);

// One row per proxy listener of each agent that runs the proxy: where it
// listens, where it sends new connections, and its connections now.
std::string ProxyTable(const std::vector<RegionStatus>& regions);

// The source of a replicated volume by what the agents report: the region
// that reports itself its source under the highest epoch (after a promote
// two may, until the old one is reversed). nullopt when no agent that
// answered reports a role for it.
std::optional<std::string> ReportedSource(const std::vector<RegionStatus>& regions, const std::string& volume);

}  // namespace lifeboat::cli
