// lifeboat demo: the whole story on one machine, in about a minute. An
// embedded plan goes into a new data dir with what it needs: with
// PostgreSQL installed, examples/local-postgres.yaml and two PostgreSQL
// servers (us-east made by initdb, us-west its standby by `db bootstrap`);
// otherwise examples/local.yaml and a fresh replication key for its volume.
// Then a drill (cli/drill_run.h) runs its regions and the sample
// application, writes through the DNS name, takes the primary region down,
// measures the failover, starts the region again and fails back, and prints
// RTO, RPO and where the report is. --stay keeps it all running afterwards
// until Ctrl-C. The demo stops the servers it made when it ends.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <array>

#include "cli/common.h"
#include "cli/drill_run.h"
#include "cli/embedded_plan.h"
#include "cli/local_processes.h"
#include "core/fs.h"
#include "plan/load.h"
#include "postgres/local.h"
#include "repo/crypto.h"

namespace lifeboat::cli {
namespace {

struct DemoOptions {
  std::string plan_file, data_dir, scenario = "region-outage", duration = "60s", store = "auto";
  bool stay = false;
};

// The files the embedded plan names relative to the data dir: a 32-byte
// replication key (mode 0600) and an empty directory for each copy.
Status PrepareVolumes(const plan::Plan& plan) {
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

// PostgreSQL runs as `pw`: every directory above `dir` must let it pass.
// The data dir itself is opened to it (0711) by the caller.
Status CheckReachable(const std::string& dir, const passwd& pw) {
  for (auto p = std::filesystem::path(dir).parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return ErrnoError(errno, "stat " + p.string());
    bool passes = (st.st_mode & S_IXOTH) || (st.st_uid == pw.pw_uid && (st.st_mode & S_IXUSR)) ||
                  (st.st_gid == pw.pw_gid && (st.st_mode & S_IXGRP));
    if (!passes) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return FailedPrecondition("PostgreSQL refuses to run as root and runs as the user " + std::string(pw.pw_name) +
                                ", who cannot reach " + dir + ": " + p.string() + " is mode " + mode +
                                "; choose a --data-dir it can reach (the default is under /tmp) or --store files");
    }
    if (p == p.root_path()) break;
  }
  return Ok();
}

// The servers of the embedded PostgreSQL plan: a random password (mode
// 0600), the primary region's server made by initdb and started, every
// other region's built from it as a streaming standby. PostgreSQL refuses to
// run as root: as root, its directory belongs to the `postgres` user
// (Debian's package makes it), else `nobody`, and the data dir lets it pass.
Status PrepareDatabases(const plan::Plan& plan, const std::string& data_dir) {
  const plan::Region* primary = plan.Primary();
  const passwd* pw = nullptr;
  if (::geteuid() == 0) {
    pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) return NotFound("neither a postgres nor a nobody user to run PostgreSQL as (it refuses root)");
    LB_RETURN_IF_ERROR(CheckReachable(data_dir, *pw));
    if (::chmod(data_dir.c_str(), 0711) != 0) return ErrnoError(errno, "chmod 0711 " + data_dir);
  }
  for (const auto& db : plan.databases) {
    if (!db.password_file.empty()) {
      std::array<uint8_t, 24> bytes;
      repo::RandomBytes(bytes);
      LB_RETURN_IF_ERROR(WriteFileAtomic(db.password_file, repo::HexOf(bytes) + "\n"));
      if (::chmod(db.password_file.c_str(), 0600) != 0) return ErrnoError(errno, "chmod 0600 " + db.password_file);
    }
    for (const auto& [region, dir] : db.data_dir) {
      std::string parent = std::filesystem::path(dir).parent_path().string();
      LB_RETURN_IF_ERROR(EnsureWritableDir(parent));
      if (pw != nullptr && ::chown(parent.c_str(), pw->pw_uid, pw->pw_gid) != 0) return ErrnoError(errno, "chown " + parent);
    }
    std::cout << "Making database " << db.name << ": " << primary->name << "'s PostgreSQL server (initdb)..." << std::flush;
    if (auto made = postgres::InitServer(db, primary->name); !made.ok()) return made.error();
    LB_RETURN_IF_ERROR(postgres::StartServer(db, primary->name, std::chrono::minutes(1)));
    for (const auto& [region, conninfo] : db.instances) {
      if (region == primary->name) continue;
      std::cout << " " << region << "'s standby (db bootstrap)..." << std::flush;
      postgres::LocalOptions lo;
      lo.timeout = std::chrono::minutes(1);  // a new, nearly empty server
      auto built = postgres::Bootstrap(db, region, lo);
      if (!built.ok()) return built.error().Wrap("bootstrap " + region + "'s server of database " + db.name);
    }
    std::cout << " done\n" << std::flush;
  }
  return Ok();
}

// Stops every server of the plan's databases the demo made (each is
// nothing to do when it does not run).
void StopDatabases(const plan::Plan& plan) {
  for (const auto& db : plan.databases) {
    for (const auto& [region, dir] : db.data_dir) {
      if (auto st = postgres::StopServer(db, region, std::chrono::seconds(30)); !st.ok()) {
        std::cerr << "lifeboat demo: could not stop " << region << "'s server of database " << db.name << ": "
                  << st.error().message() << "\n";
      }
    }
  }
}

// The embedded plan --store names: postgres when PostgreSQL is installed
// (auto), else the replicated volume.
Result<bool> UsePostgres(const std::string& store) {
  if (store == "files") return false;
  bool installed = postgres::FindBinDir("", 15).ok();
  if (store == "postgres") {
    if (!installed) return postgres::FindBinDir("", 15).error().Wrap("--store postgres");
    return true;
  }
  if (store == "auto") return installed;
  return InvalidArgument("--store: '" + store + "' is not one of auto, postgres, files");
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

  // The exit code of a plan that cannot be drilled, else 0.
  auto refused = [&](const plan::LoadResult& loaded) {
    std::cerr << plan::FormatDiagnostics(loaded.diagnostics);
    if (!loaded.plan) return kExitInvalid;
    if (auto st = CheckDrillable(*loaded.plan, c); !st.ok()) {
      return Fail("the demo runs a drill on the plan, and " + st.error().message(), kExitInvalid);
    }
    return 0;
  };
  // Everything that can be refused is checked before the data directory is
  // made: a refusal leaves no empty /tmp/lifeboat-demo-* behind.
  plan::LoadResult loaded;
  std::string plan_path;
  bool postgres = false;
  if (o.plan_file.empty()) {
    auto use = UsePostgres(o.store);
    if (!use.ok()) return Fail(use.error());
    postgres = *use;
  } else {
    if (o.store != "auto") return Fail("--store chooses an embedded plan; it goes without --plan", kExitInvalid);
    std::error_code ec;
    plan_path = std::filesystem::absolute(o.plan_file, ec).string();
    loaded = plan::LoadPlanFile(o.plan_file);
    if (int rc = refused(loaded)) return rc;
  }

  auto made = MakeDataDir(o.data_dir, "demo");
  if (!made.ok()) return Fail(made.error());
  const std::string data_dir = *made;
  // The demo's drill is recorded in its own agents' store: their status
  // pages (--stay) show it, and `lifeboat drill report --agents-dir DIR`
  // finds it.
  c.agents_dir = data_dir;
  if (!o.plan_file.empty()) return RunDrill(*loaded.plan, c, data_dir, plan_path);
  const char* text = postgres ? kEmbeddedPostgresPlan : kEmbeddedLocalPlan;
  plan_path = data_dir + "/plan.yaml";
  if (auto s = WriteFileAtomic(plan_path, text); !s.ok()) return Fail(s.error());
  loaded = plan::LoadPlanText(text, postgres ? "examples/local-postgres.yaml (embedded)"
                                             : "examples/local.yaml (embedded)", data_dir);
  if (int rc = refused(loaded)) return rc;  // the embedded plans are drillable: a bug if not

  const plan::Plan& plan = *loaded.plan;
  std::cout << "lifeboat demo: the embedded plan '" << plan.name << "' (" << plan::Name(plan.pattern) << ", "
            << plan.regions.size() << " regions on this machine), written to " << plan_path
            << ".\nThe story: every region starts; a client writes to the application through DNS; the primary\n"
               "region goes dark; the others notice and fail over; it comes back and the primary fails back.\n"
            << (plan.databases.empty() ? "The application keeps its records in a volume replicated between the regions.\n"
                                       : "The application keeps its records in PostgreSQL, replicated between the "
                                         "regions' servers.\n")
            << "\n" << std::flush;
  if (auto st = PrepareVolumes(plan); !st.ok()) return Fail(st.error());
  if (auto st = PrepareDatabases(plan, data_dir); !st.ok()) {
    std::cout << "\n";
    StopDatabases(plan);
    return Fail(st.error().Wrap("making the demo's PostgreSQL servers (logs: " + data_dir + "/postgres/*.log)"));
  }
  int rc = RunDrill(plan, c, data_dir, plan_path);
  if (!plan.databases.empty()) {
    std::cout << "Stopping the demo's PostgreSQL servers (their data stays in " << data_dir << "/postgres)\n";
    StopDatabases(plan);
  }
  return rc;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "demo", "The whole story on this machine: regions, an outage, failover, failback, measured RTO and RPO");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--plan", o->plan_file, "Plan to run instead of an embedded one (see --store)");
  cmd->add_option("--data-dir", o->data_dir, "A new directory for state, logs and the report (default: a new /tmp/lifeboat-demo-*)");
  cmd->add_option("--scenario", o->scenario, std::string("The fault: ") + kScenarioNames)->capture_default_str();
  cmd->add_option("--duration", o->duration, "The longest wait for a full sync, and for each recovery")
      ->capture_default_str();
  cmd->add_option("--store", o->store,
                  "Where the sample application keeps its records: postgres (examples/local-postgres.yaml, two "
                  "PostgreSQL 15 servers the demo makes), files (examples/local.yaml, a replicated volume), auto "
                  "(postgres when PostgreSQL 15 is installed)")
      ->capture_default_str();
  cmd->add_flag("--stay", o->stay, "Keep every process running after the story, until Ctrl-C");
  cmd->footer(
      "Runs a drill with failback (see `lifeboat drill run --help`) on an embedded plan: three agents\n"
      "(us-east, us-west and the witness eu-central) on 127.0.0.1-3:7701-7703 and the sample application\n"
      "on 127.0.0.1:7711 and 127.0.0.2:7711. With PostgreSQL 15 installed (examples/local-postgres.yaml)\n"
      "it keeps its records in database 'shop': the demo makes us-east's server (initdb, port 7721) and\n"
      "us-west's streaming standby (port 7722) in DATA_DIR/postgres, commits wait for the standby (sync),\n"
      "and the outage kills us-east's server too; the demo stops both servers when it ends. Otherwise\n"
      "(examples/local.yaml) the records are files in the volume 'shop', replicated between\n"
      "DATA_DIR/volumes/us-east and us-west on port 7770. A client writes a record every 10ms through\n"
      "shop.example.com; us-east goes dark; the agents fail over to us-west; us-east starts again,\n"
      "catches up and becomes primary again by a planned failover. Prints RTO and RPO beside the\n"
      "plan's objectives and the path of the HTML report; exits 1 when an objective is missed.\n"
      "Logs: DATA_DIR/REGION/agent.log, DATA_DIR/postgres/REGION.log.\n\n"
      "Examples:\n"
      "  lifeboat demo\n"
      "  lifeboat demo --stay            # then open http://127.0.0.1:7701/status\n"
      "  lifeboat demo --scenario planned-switchover --data-dir /tmp/lb\n"
      "  lifeboat demo --store files     # the records in a replicated volume, not PostgreSQL");
  cmd->callback([&exit_code, o] { exit_code = RunDemo(*o); });
}

}  // namespace lifeboat::cli
