// lifeboat demo: the whole story on one machine, in about a minute. The
// embedded plan (examples/local.yaml) goes into a new data dir with a fresh
// replication key; then a drill (cli/drill_run.h) runs its regions and the
// sample application, writes through the DNS name, takes the primary region
// down, measures the failover, starts the region again and fails back, and
// prints RTO, RPO and where the report is. --stay keeps it all running
// afterwards until Ctrl-C.
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <array>

#include "cli/common.h"
#include "cli/drill_run.h"
#include "cli/embedded_plan.h"
#include "cli/local_processes.h"
#include "core/fs.h"
#include "plan/load.h"
#include "repo/crypto.h"

namespace lifeboat::cli {
namespace {

struct DemoOptions {
  std::string plan_file, data_dir, scenario = "region-outage", duration = "60s";
  bool stay = false;
};

// The files the embedded plan names relative to the data dir: a 32-byte
// replication key (mode 0600) and an empty directory for each copy.
Status PrepareEmbedded(const plan::Plan& plan) {
  for (const auto& v : plan.volumes) {
    for (const auto& [region, path] : v.path) LB_RETURN_IF_ERROR(EnsureWritableDir(path));
    const std::string& key = v.replication.key_file;
    std::error_code ec;
    if (key.empty() || std::filesystem::exists(key, ec)) continue;
    std::array<uint8_t, 32> bytes;
    repo::RandomBytes(bytes);
    LB_RETURN_IF_ERROR(WriteFileAtomic(key, std::string(bytes.begin(), bytes.end())));
    if (::chmod(key.c_str(), 0600) != 0) return ErrnoError(errno, "chmod 0600 " + key);
  }
  return Ok();
}

int RunDemo(const DemoOptions& o) {
  DrillConfig c;
  c.failback = true;
  c.stay = o.stay;
  auto scenario = ParseScenario(o.scenario);
  if (!scenario.ok()) return Fail("--scenario: " + scenario.error().message(), kExitInvalid);
  c.scenario = *scenario;
  auto duration = ParseDuration(o.duration);
  if (!duration.ok()) return Fail("--duration: " + duration.error().message(), kExitInvalid);
  c.duration = *duration;

  auto made = MakeDataDir(o.data_dir, "demo");
  if (!made.ok()) return Fail(made.error());
  const std::string data_dir = *made;
  // The demo's drill is recorded in its own agents' store: their status
  // pages (--stay) show it, and `lifeboat drill report --agents-dir DIR`
  // finds it.
  c.agents_dir = data_dir;
  plan::LoadResult loaded;
  std::string plan_path;
  if (o.plan_file.empty()) {
    plan_path = data_dir + "/plan.yaml";
    if (auto s = WriteFileAtomic(plan_path, kEmbeddedLocalPlan); !s.ok()) return Fail(s.error());
    loaded = plan::LoadPlanText(kEmbeddedLocalPlan, "examples/local.yaml (embedded)", data_dir);
  } else {
    std::error_code ec;
    plan_path = std::filesystem::absolute(o.plan_file, ec).string();
    loaded = plan::LoadPlanFile(o.plan_file);
  }
  std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
  if (!loaded.plan) return kExitInvalid;
  if (auto st = CheckDrillable(*loaded.plan, c); !st.ok()) {
    return Fail("the demo runs a drill on the plan, and " + st.error().message(), kExitInvalid);
  }
  if (o.plan_file.empty()) {
    if (auto st = PrepareEmbedded(*loaded.plan); !st.ok()) return Fail(st.error());
    std::cout << "lifeboat demo: the embedded plan '" << loaded.plan->name << "' (" << plan::Name(loaded.plan->pattern)
              << ", " << loaded.plan->regions.size() << " regions on this machine), written to " << plan_path
              << ".\nThe story: every region starts; a client writes to the application through DNS; the primary\n"
                 "region goes dark; the others notice and fail over; it comes back and the primary fails back.\n\n"
              << std::flush;
  }
  return RunDrill(*loaded.plan, c, data_dir, plan_path);
}

}  // namespace

void AddDemoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "demo", "The whole story on this machine: regions, an outage, failover, failback, measured RTO and RPO");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--plan", o->plan_file, "Plan to run instead of the embedded examples/local.yaml");
  cmd->add_option("--data-dir", o->data_dir, "A new directory for state, logs and the report (default: a new /tmp/lifeboat-demo-*)");
  cmd->add_option("--scenario", o->scenario, std::string("The fault: ") + kScenarioNames)->capture_default_str();
  cmd->add_option("--duration", o->duration, "The longest wait for a full sync, and for each recovery")
      ->capture_default_str();
  cmd->add_flag("--stay", o->stay, "Keep every process running after the story, until Ctrl-C");
  cmd->footer(
      "Runs a drill with failback (see `lifeboat drill run --help`) on the embedded plan: three agents\n"
      "(us-east, us-west and the witness eu-central) on 127.0.0.1-3:7701-7703, the sample application\n"
      "on 127.0.0.1:7711 and 127.0.0.2:7711, and the volume 'shop' replicated between\n"
      "DATA_DIR/volumes/us-east and us-west. A client writes a record every 10ms through\n"
      "shop.example.com; us-east goes dark; the agents fail over to us-west; us-east starts again,\n"
      "catches up and becomes primary again by a planned failover. Prints RTO and RPO beside the\n"
      "plan's objectives and the path of the HTML report; exits 1 when an objective is missed.\n"
      "Logs: DATA_DIR/REGION/agent.log.\n\n"
      "Examples:\n"
      "  lifeboat demo\n"
      "  lifeboat demo --stay            # then open http://127.0.0.1:7701/status\n"
      "  lifeboat demo --scenario planned-switchover --data-dir /tmp/lb");
  cmd->callback([&exit_code, o] { exit_code = RunDemo(*o); });
}

}  // namespace lifeboat::cli
