// lifeboat app serve: the sample application that drills and the demo run
// on each region's endpoint (drill/app.h), keeping its records as files in
// a volume or in the region's server of a plan database.
#include <signal.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "drill/app.h"
#include "drill/pg_records.h"
#include "plan/load.h"
#include "postgres/instance.h"

namespace lifeboat::cli {
namespace {

struct AppServeOptions {
  std::string dir, listen, region, database, plan_file;
};

// Where the records go: the directory, or the region's database server.
Result<drill::AppOptions> Records(const AppServeOptions& o) {
  if (o.database.empty()) {
    if (o.dir.empty()) return InvalidArgument("name where the records go: --dir DIR or --database NAME");
    return drill::AppOptions{o.dir, o.region};
  }
  if (!o.dir.empty()) return InvalidArgument("--dir and --database both say where the records go: give one");
  if (o.region.empty()) return InvalidArgument("--database needs --region: the records go to that region's server");
  if (o.plan_file.empty()) return InvalidArgument("--database needs the plan: --plan FILE or LIFEBOAT_PLAN");
  LB_ASSIGN_OR_RETURN(auto plan, plan::LoadPlanOrError(o.plan_file));
  LB_ASSIGN_OR_RETURN(const plan::Database* db, FindDatabase(plan, o.database));
  auto target = postgres::TargetOf(*db, o.region);
  if (!target.ok()) return target.error().Wrap("--region");
  // Its own name, so that a fence ends its sessions like any client's.
  target->application_name = "lifeboat-app";
  return drill::AppOptions{"", o.region, drill::PostgresRecords(std::move(*target))};
}

}  // namespace

void AddAppCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("app", "The sample application that drills and the demo run in each region");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand(
      "serve", "Serve records kept as files in a volume, or as rows in a plan database, over HTTP until stopped");
  auto o = std::make_shared<AppServeOptions>();
  cmd->add_option("--dir", o->dir, "The region's copy of the volume; records go to DIR/records/");
  cmd->add_option("--database", o->database,
                  "A database of the plan instead: records go to its server in --region (table "
                  "lifeboat_drill_records)");
  cmd->add_option("--plan", o->plan_file, "The plan naming --database (default: $LIFEBOAT_PLAN)")->envname("LIFEBOAT_PLAN");
  cmd->add_option("--listen", o->listen, "HOST:PORT to serve on (the region's endpoint)")->required();
  cmd->add_option("--region", o->region, "Region named in every answer (X-Lifeboat-Region); whose server --database uses");
  cmd->footer(
      "PUT /records/N keeps a record durably before answering 201 (a file fsynced and renamed, or a\n"
      "committed row: in a sync-mode database, once the standby has it); 503 when it cannot, as on\n"
      "a standby's read-only server. GET /records lists them; GET /healthz answers ok. SIGINT or\n"
      "SIGTERM stops it. The database's password comes from its password_file or\n"
      "LIFEBOAT_DB_<NAME>_PASSWORD, as for the agents.\n\n"
      "Examples:\n"
      "  lifeboat app serve --dir /srv/shop-east --listen 127.0.0.1:7711 --region us-east\n"
      "  lifeboat app serve --database shop --plan plan.yaml --region us-east --listen 127.0.0.1:7711\n"
      "  curl -X PUT --data hello http://127.0.0.1:7711/records/1");
  cmd->callback([&exit_code, o] {
    auto listen = ParseAddress(o->listen);
    if (!listen.ok()) {
      exit_code = Fail(listen.error().Wrap("--listen"));
      return;
    }
    auto options = Records(*o);
    if (!options.ok()) {
      exit_code = Fail(options.error());
      return;
    }
    // Signals wait for sigwait below, not the server's threads.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    auto served = drill::App::Start(*options, *listen);
    if (!served.ok()) {
      exit_code = Fail(served.error());
      return;
    }
    spdlog::info("app: serving records of {} on {}",
                 o->database.empty() ? o->dir : "database " + o->database + " in " + o->region, o->listen);
    int sig = 0;
    sigwait(&stop, &sig);
    spdlog::info("app: stopping on {}", strsignal(sig));
    (*served)->Stop();
  });
}

}  // namespace lifeboat::cli
