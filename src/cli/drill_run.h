// A drill on this machine: runs the plan's regions afresh (an agent per
// region, the sample application on each endpoint of the drill's DNS
// record), writes numbered records through the name with the drill client,
// makes the scenario's fault, optionally fails back, and measures what the
// client lived: RTO, RPO, detection and each runbook step (drill/measure.h).
// `lifeboat drill run` and `lifeboat demo` both run one.
#pragma once

#include <string>

#include "core/units.h"
#include "plan/plan.h"

namespace lifeboat::cli {

enum class Scenario {
  kRegionOutage,       // every process of the primary region killed
  kEndpointFailure,    // the primary's applications killed; its agent lives
  kPlannedSwitchover,  // a planned failover to the standby, then back
  // Only the replication link from the primary to the standby is cut (a
  // proxy the drill starts, --connect-to): nothing may fail over, the lag
  // grows over the RPO objective, and once healed the standby has it all.
  kReplicationPartition,
  // The replication link delayed and throttled (the same proxy), then the
  // primary region goes dark: what a long, narrow link costs in RPO.
  kSlowLink,
  // The primary region goes dark as in region-outage; then the agent driving
  // the failover run is killed when the run is at a chosen step (or a later
  // one), and started again a second later, as a supervisor would: another
  // agent must resume the run at its step.
  kAgentCrashMidFailover,
};
// "region-outage, endpoint-failure, planned-switchover"
extern const char* const kScenarioNames;
Result<Scenario> ParseScenario(const std::string& name);
const char* Name(Scenario s);

struct DrillConfig {
  Scenario scenario = Scenario::kRegionOutage;
  Duration duration = std::chrono::seconds(60);  // for the first full sync, and each recovery
  Duration warmup = std::chrono::seconds(3);     // the client writes this long before the fault
  bool failback = false;  // after the failover, back to the first primary (always for planned-switchover)
  std::string record, volume;  // empty: the plan's only failover A record, its only replicated volume
  // The plan database the sample application keeps its records in instead
  // of a volume; empty: the plan's only database when it has one and no
  // --volume was given. The drill stops and starts its servers (data_dir)
  // and always fails back, so that the servers end as they began.
  std::string database;
  std::string output = "table";
  bool stay = false;  // after the report, keep every process running until Ctrl-C
  Duration fault_for = std::chrono::seconds(75);  // how long a replication partition lasts
  Duration link_delay = std::chrono::milliseconds(200);  // slow-link: one-way latency
  uint64_t link_rate = 256 * 1024;                        // slow-link: bytes a second, each way
  std::string crash_at = "promote";  // agent-crash-mid-failover: the step at which the driver dies
  // The data dir of this machine's agents of the plan (the parent of their
  // REGION dirs): the drill records itself in the state store they share
  // (state/open.h), where `lifeboat drill report` and the agents find it.
  // Empty: /var/lib/lifeboat/PLAN, the agents' default.
  std::string agents_dir;
};

// Where this machine's agents of `plan` keep their drill history, for
// `agents_dir` as in DrillConfig.
std::string DrillHistoryPath(const plan::Plan& plan, const std::string& agents_dir);

// Checks that `plan` can be drilled (the embedded store at its default
// place, a failover A record, a replicated volume with a path in each
// endpoint's region or a database with a server and a data_dir there;
// automatic failover for the unplanned scenarios).
// InvalidArgument saying what to change.
Status CheckDrillable(const plan::Plan& plan, const DrillConfig& config);

// Runs the drill in `data_dir` (new, empty) with the agents on `plan_path`
// (the plan file, whose relative paths resolve against its directory).
// Writes drill.json, drill.html and attempts.jsonl there; prints progress
// and a summary (or the JSON report for -o json). The exit code: 0 when
// the plan's objectives were met, 1 when not or when the drill failed, 130
// on Ctrl-C.
int RunDrill(const plan::Plan& plan, const DrillConfig& config, const std::string& data_dir,
             const std::string& plan_path);

}  // namespace lifeboat::cli
