// lifeboat drill run SCENARIO: the command line of a drill (cli/drill_run.h
// runs it); lifeboat drill report [ID]: the drills it recorded.
#include <filesystem>
#include <iostream>

#include "cli/common.h"
#include "cli/drill_run.h"
#include "cli/local_processes.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "drill/history.h"
#include "drill/measure.h"
#include "drill/report.h"
#include "plan/load.h"
#include "state/sqlite_store.h"

namespace lifeboat::cli {
namespace {

struct DrillOptions {
  std::string scenario, plan_file, data_dir, duration = "60s", warmup = "3s", record, volume, database, output = "table",
      agents_dir, fault_for = "75s", link_delay = "200ms", link_rate = "256KiB/s", crash_at = "promote";
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
  auto fault_for = ParseDuration(o.fault_for);
  if (!fault_for.ok()) return Fail("--fault-for: " + fault_for.error().message(), kExitInvalid);
  c.fault_for = *fault_for;
  auto delay = ParseDuration(o.link_delay);
  if (!delay.ok()) return Fail("--link-delay: " + delay.error().message(), kExitInvalid);
  c.link_delay = *delay;
  auto rate = ParseRate(o.link_rate);
  if (!rate.ok() || rate->bytes_per_second == 0) {
    return Fail("--link-rate: " + (rate.ok() ? std::string("must be over 0") : rate.error().message()), kExitInvalid);
  }
  c.link_rate = rate->bytes_per_second;
  c.crash_at = o.crash_at;
  c.failback = o.failback;
  c.record = o.record;
  c.volume = o.volume;
  c.database = o.database;
  c.output = o.output;
  c.agents_dir = o.agents_dir;
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

struct ReportOptions {
  std::string id, plan_file, agents_dir, output = "table", html;
};

std::string Seconds(double s) {
  return s < 0 ? "-" : drill::FormatSeconds(s);
}

int RunReportCommand(const ReportOptions& o) {
  auto loaded = plan::LoadPlanFile(o.plan_file);
  std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
  if (!loaded.plan) return kExitInvalid;
  std::string path = DrillHistoryPath(*loaded.plan, o.agents_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Fail("no drill of plan '" + loaded.plan->name + "' is recorded on this machine: " + path +
                    " does not exist (lifeboat drill run records there; --agents-dir names another place)",
                kExitInvalid);
  }
  auto store = state::SqliteStore::Open(path);
  if (!store.ok()) return Fail(store.error());
  auto drills = drill::ListDrills(**store);
  if (!drills.ok()) return Fail(drills.error());
  using Json = nlohmann::ordered_json;
  if (o.id.empty()) {
    if (!o.html.empty()) return Fail("--html writes one drill's page: name the drill (an ID, or latest)", kExitInvalid);
    Json list = Json::array();
    Table t({"ID", "SCENARIO", "VERDICT", "RTO", "RPO", "ENDED", "REPORT"});
    for (auto it = drills->rbegin(); it != drills->rend(); ++it) {
      auto figure = [](double s) { return s >= 0 ? Json(s) : Json(); };
      list.push_back({{"id", it->id},
                      {"scenario", it->scenario},
                      {"verdict", it->pass ? "pass" : "fail"},
                      {"rto_seconds", figure(it->rto_seconds)},
                      {"rpo_seconds", figure(it->rpo_seconds)},
                      {"started_at", it->started_at},
                      {"ended_at", it->ended_at},
                      {"missed", it->missed},
                      {"dir", it->dir}});
      t.Add({it->id, it->scenario, it->pass ? "pass" : "FAIL", Seconds(it->rto_seconds), Seconds(it->rpo_seconds),
             it->ended_at, it->dir + "/drill.html"});
    }
    if (Structured(o.output)) {
      PrintDocument(list, o.output);
    } else if (drills->empty()) {
      std::cout << "No drill is recorded in " << path << ".\n";
    } else {
      std::cout << t.Render();
    }
    return kExitOk;
  }
  const state::DrillRecord* found = nullptr;
  for (const auto& d : *drills) {
    if (d.id == o.id || (o.id == "latest" && &d == &drills->back())) found = &d;
  }
  if (found == nullptr) {
    return Fail("no drill " + o.id + " in " + path + (drills->empty() ? "" : "; the latest is " + drills->back().id),
                kExitInvalid);
  }
  Json report = Json::parse(found->report, nullptr, false);
  if (!report.is_object()) return Fail("drill " + found->id + "'s report in " + path + " is not JSON");
  if (!o.html.empty()) {
    auto attempts = drill::ExpandAttempts(json::Obj(report, "attempts"));
    if (auto w = WriteFileAtomic(o.html, drill::RenderHtml(report, attempts)); !w.ok()) return Fail(w.error());
    if (!Structured(o.output)) std::cerr << "wrote " << o.html << "\n";
  }
  if (Structured(o.output)) {
    report.erase("attempts");
    PrintDocument(report, o.output);
  } else if (o.html.empty()) {
    std::cout << found->id << ": " << found->scenario << " on plan '" << found->plan << "', " << found->started_at
              << " to " << found->ended_at << "\n"
              << (found->pass ? "PASS: within the plan's objectives" : "FAIL") << "\n";
    for (const auto& m : found->missed) std::cout << "  missed: " << m << "\n";
    std::cout << "RTO " << (found->rto_seconds < 0 ? "not measured (never recovered)" : Seconds(found->rto_seconds))
              << ", RPO " << Seconds(found->rpo_seconds) << "\nreport: " << found->dir
              << "/drill.html (again from the store: lifeboat drill report " << found->id << " --html FILE)\n";
  }
  return found->pass ? kExitOk : kExitFailure;
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
  cmd->add_option("--fault-for", o->fault_for,
                  "replication-partition: how long the link stays cut (over a minute: the lag alert's for:)")
      ->capture_default_str();
  cmd->add_option("--link-delay", o->link_delay, "slow-link: the replication link's one-way latency")
      ->capture_default_str();
  cmd->add_option("--link-rate", o->link_rate, "slow-link: the replication link's rate, each way")
      ->capture_default_str();
  cmd->add_option("--crash-at", o->crash_at,
                  "agent-crash-mid-failover: the run's step at which its driver is killed (fence, promote, "
                  "switch-traffic, verify, or a hook's name)")
      ->capture_default_str();
  cmd->add_flag("--failback", o->failback,
                "After the failover, start the dead processes again and move back by a planned failover "
                "(planned-switchover always does)");
  cmd->add_option("--data-dir", o->data_dir,
                  "A new directory for the agents' state, logs and the report (default: a new /tmp/lifeboat-drill-*)");
  cmd->add_option("--agents-dir", o->agents_dir,
                  "Where this machine's agents of the plan keep their data: the drill is recorded in their state "
                  "store (default /var/lib/lifeboat/PLAN)");
  cmd->add_option("--record", o->record, "The failover A record the client writes through (default: the plan's only one)");
  cmd->add_option("--volume", o->volume,
                  "The volume the sample application keeps records in (default: the only replicated one)");
  cmd->add_option("--database", o->database,
                  "The plan database it keeps them in instead (default: the plan's only database, if any)");
  AddOutputFlag(*cmd, o->output);
  cmd->footer(
      "Starts an agent per region (each with its own DNS server on loopback) and the sample\n"
      "application (lifeboat app serve) on each endpoint of the record, in the volume's path of that\n"
      "region; a client writes a numbered record through the DNS name every 10ms; then:\n"
      "  region-outage       every process of the primary region is killed;\n"
      "  endpoint-failure    the primary's applications are killed, its agent lives;\n"
      "  planned-switchover  a planned failover to the standby, then one back: nothing may be lost;\n"
      "  replication-partition  only the primary's replication link to the standby is cut (through a\n"
      "                      proxy the drill starts, the agent's --connect-to) for --fault-for: nothing\n"
      "                      may fail over, the lag must pass objectives.rpo, and once healed the\n"
      "                      standby must hold every acknowledged record;\n"
      "  slow-link           that link delayed (--link-delay) and throttled (--link-rate), then\n"
      "                      the primary region goes dark: what a slow link costs in RPO;\n"
      "  agent-crash-mid-failover  region-outage, and the agent driving the failover run is killed\n"
      "                      at its --crash-at step (or the first later one the drill sees) and\n"
      "                      started again a second later: the run must resume and finish.\n"
      "RTO runs from the first write after the fault that the old primary did not acknowledge to the\n"
      "next acknowledged one; RPO is how far before the fault the oldest acknowledged record that the\n"
      "new primary lacks was written. With --failback (and for planned-switchover) the same is\n"
      "measured for the move back. The data dir keeps drill.json, drill.html (the report, with a\n"
      "timeline) and attempts.jsonl.\n"
      "Exits 1 when the plan's objectives are missed, naming the figures; 130 on Ctrl-C.\n"
      "Every drill is recorded in the state store of the plan's agents on this machine (--agents-dir):\n"
      "lifeboat drill report lists them, the agents' status pages show them, and the alert\n"
      "LifeboatDrillFailed fires while a scenario's last drill missed the objectives.\n"
      "With a database (--database, or the plan's only one), the sample application keeps its records\n"
      "as rows in the region's PostgreSQL server (acknowledged once committed: in sync mode, once the\n"
      "standby has them); region-outage stops that server too (pg_ctl stop -m immediate), the\n"
      "failback rewinds it (pg_rewind), and the drill always fails back, leaving both servers as it\n"
      "found them: the primary region's a primary, the other's a streaming standby.\n"
      "The plan must use the embedded store at its default place: a drill never touches a shared store.\n"
      "Relative paths in the plan are relative to its file's directory.\n\n"
      "Examples:\n"
      "  lifeboat drill run region-outage --plan examples/drill.yaml\n"
      "  lifeboat drill run region-outage --plan examples/drill.yaml --failback\n"
      "  lifeboat drill run region-outage --plan pg.yaml --database orders   # RPO 0 in sync mode\n"
      "  lifeboat drill run planned-switchover --plan examples/drill.yaml -o json | jq .failback.rto_seconds\n"
      "  lifeboat drill run replication-partition --plan examples/drill.yaml --fault-for 90s\n"
      "  lifeboat drill run slow-link --plan examples/drill.yaml --link-delay 300ms --link-rate 128KiB/s");
  cmd->callback([&exit_code, o] { exit_code = RunDrillCommand(*o); });

  auto* report = group->add_subcommand("report", "List the drills recorded on this machine, or show one");
  auto r = std::make_shared<ReportOptions>();
  report->add_option("id", r->id, "The drill (an ID from the list, or latest); none: list them all");
  AddPlanFlag(*report, r->plan_file);
  report->add_option("--agents-dir", r->agents_dir,
                     "Where the plan's agents on this machine keep their data (default /var/lib/lifeboat/PLAN)");
  report->add_option("--html", r->html, "Write the drill's HTML report (timeline included) to this file");
  AddOutputFlag(*report, r->output);
  report->footer(
      "Drills are kept in the state store of the plan's agents on this machine, the newest 50.\n"
      "With an ID, exits 1 when that drill missed the plan's objectives.\n\n"
      "Examples:\n"
      "  lifeboat drill report --plan examples/drill.yaml\n"
      "  lifeboat drill report latest --plan examples/drill.yaml --html /tmp/drill.html\n"
      "  lifeboat drill report 20261203T130501Z-region-outage --plan examples/drill.yaml -o json | jq .rto_seconds");
  report->callback([&exit_code, r] { exit_code = RunReportCommand(*r); });
}

}  // namespace lifeboat::cli
