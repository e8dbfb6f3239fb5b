// lifeboat drill run SCENARIO: the command line of a drill (cli/drill_run.h
// runs it).
#include <filesystem>

#include "cli/common.h"
#include "cli/drill_run.h"
#include "cli/local_processes.h"
#include "plan/load.h"

namespace lifeboat::cli {
namespace {

struct DrillOptions {
  std::string scenario, plan_file, data_dir, duration = "60s", warmup = "3s", record, volume, output = "table";
  bool failback = false;
};

int RunDrillCommand(const DrillOptions& o) {
  DrillConfig c;
  auto scenario = ParseScenario(o.scenario);
  if (!scenario.ok()) return Fail(scenario.error().message(), kExitInvalid);
  c.scenario = *scenario;
  auto duration = ParseDuration(o.duration);
  if (!duration.ok()) return Fail("--duration: " + duration.error().message(), kExitInvalid);
  c.duration = *duration;
  auto warmup = ParseDuration(o.warmup);
  if (!warmup.ok()) return Fail("--warmup: " + warmup.error().message(), kExitInvalid);
  c.warmup = *warmup;
  c.failback = o.failback;
  c.record = o.record;
  c.volume = o.volume;
  c.output = o.output;
  auto loaded = plan::LoadPlanFile(o.plan_file);
  std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
  if (!loaded.plan) return kExitInvalid;
  if (auto st = CheckDrillable(*loaded.plan, c); !st.ok()) return Fail(st.error());
  auto made = MakeDataDir(o.data_dir, "drill");
  if (!made.ok()) return Fail(made.error());
  std::error_code ec;
  std::string plan_path = std::filesystem::absolute(o.plan_file, ec).string();
  return RunDrill(*loaded.plan, c, *made, plan_path);
}

}  // namespace

void AddDrillCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("drill", "Prove the plan: make a fault on this machine and measure RTO and RPO");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand("run", "Run the plan's regions here, make SCENARIO's fault, measure, report");
  auto o = std::make_shared<DrillOptions>();
  cmd->add_option("scenario", o->scenario, std::string("What goes wrong: ") + kScenarioNames)->required();
  AddPlanFlag(*cmd, o->plan_file);
  cmd->add_option("--duration", o->duration,
                  "How long to wait for a full sync, and after each fault or switch for recovery")
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "How long the client writes before the fault")->capture_default_str();
  cmd->add_flag("--failback", o->failback,
                "After the failover, start the dead processes again and move back by a planned failover "
                "(planned-switchover always does)");
  cmd->add_option("--data-dir", o->data_dir,
                  "A new directory for the agents' state, logs and the report (default: a new /tmp/lifeboat-drill-*)");
  cmd->add_option("--record", o->record, "The failover A record the client writes through (default: the plan's only one)");
  cmd->add_option("--volume", o->volume,
                  "The volume the sample application keeps records in (default: the only replicated one)");
  AddOutputFlag(*cmd, o->output);
  cmd->footer(
      "Starts an agent per region (each with its own DNS server on loopback) and the sample\n"
      "application (lifeboat app serve) on each endpoint of the record, in the volume's path of that\n"
      "region; a client writes a numbered record through the DNS name every 10ms; then:\n"
      "  region-outage       every process of the primary region is killed;\n"
      "  endpoint-failure    the primary's applications are killed, its agent lives;\n"
      "  planned-switchover  a planned failover to the standby, then one back: nothing may be lost.\n"
      "RTO runs from the first write after the fault that the old primary did not acknowledge to the\n"
      "next acknowledged one; RPO is how far before the fault the oldest acknowledged record that the\n"
      "new primary lacks was written. With --failback (and for planned-switchover) the same is\n"
      "measured for the move back. The data dir keeps drill.json, drill.html (the report, with a\n"
      "timeline) and attempts.jsonl.\n"
      "Exits 1 when the plan's objectives are missed, naming the figures; 130 on Ctrl-C.\n"
      "The plan must use the embedded store at its default place: a drill never touches a shared store.\n"
      "Relative paths in the plan are relative to its file's directory.\n\n"
      "Examples:\n"
      "  lifeboat drill run region-outage --plan examples/drill.yaml\n"
      "  lifeboat drill run region-outage --plan examples/drill.yaml --failback\n"
      "  lifeboat drill run planned-switchover --plan examples/drill.yaml -o json | jq .failback.rto_seconds");
  cmd->callback([&exit_code, o] { exit_code = RunDrillCommand(*o); });
}

}  // namespace lifeboat::cli
