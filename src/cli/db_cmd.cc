// lifeboat db status|bootstrap|rewind|promote|fence: the plan's PostgreSQL
// databases by hand. The agents do the same inside a failover; these are for
// setting a region up, looking, and repairing.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "cli/common.h"
#include "core/units.h"
#include "plan/load.h"
#include "postgres/control.h"
#include "postgres/instance.h"
#include "postgres/local.h"
#include "postgres/move.h"

namespace lifeboat::cli {
namespace {

using Json = nlohmann::ordered_json;

// Progress on stderr: one line per phase and per 5 % on a pipe, one line
// rewritten in place on a terminal.
postgres::ProgressFn Printer() {
  struct State {
    std::string phase;
    int pct = -100;
    bool tty = ::isatty(STDERR_FILENO) != 0;
  };
  auto st = std::make_shared<State>();
  return [st](const postgres::Progress& p) {
    bool new_phase = p.phase != st->phase;
    if (!new_phase && (p.percent < 0 || (!st->tty && p.percent < st->pct + 5 && p.percent != 100))) return;
    if (st->tty && !new_phase) std::cerr << "\r\033[K";
    if (st->tty && new_phase && !st->phase.empty()) std::cerr << "\n";
    std::cerr << "  " << p.phase;
    if (p.percent >= 0) std::cerr << " " << p.percent << "%";
    if (!p.detail.empty()) std::cerr << " (" << p.detail << ")";
    if (!st->tty) std::cerr << "\n";
    std::cerr.flush();
    st->phase = p.phase;
    st->pct = p.percent;
  };
}

void EndProgress() {
  if (::isatty(STDERR_FILENO)) std::cerr << "\n";
}

std::string Lsn(const std::optional<postgres::Lsn>& l) { return l ? postgres::FormatLsn(*l) : ""; }

Json StatusOf(const plan::Database& db) {
  auto seen = postgres::ObserveAll(db, std::chrono::seconds(5));
  const postgres::ServerState* primary = nullptr;
  for (const auto& [r, o] : seen) {
    if (o.state && !o.state->in_recovery) primary = &*o.state;
  }
  Json regions = Json::object();
  for (const auto& [region, o] : seen) {
    Json j = {{"server", o.where}};
    if (!o.state) {
      j["role"] = "unreachable";
      j["error"] = o.error ? o.error->message() : "";
      regions[region] = j;
      continue;
    }
    const auto& s = *o.state;
    j["role"] = s.Role();
    j["version"] = s.version;
    j["system_identifier"] = s.system_identifier;
    j["timeline"] = s.timeline;
    if (!s.in_recovery) {
      j["wal_lsn"] = Lsn(s.flush_lsn);
      j["synchronous_standby_names"] = s.synchronous_standby_names;
      Json reps = Json::array();
      for (const auto& r : s.replicas) {
        Json x = {{"application_name", r.application_name}, {"client_addr", r.client_addr}, {"state", r.state},
                  {"sync_state", r.sync_state}, {"replay_lsn", Lsn(r.replay)}};
        if (r.replay_lag_seconds) x["replay_lag_seconds"] = *r.replay_lag_seconds;
        reps.push_back(x);
      }
      j["standbys"] = reps;
    } else {
      j["receive_lsn"] = Lsn(s.receive_lsn);
      j["replay_lsn"] = Lsn(s.replay_lsn);
      j["upstream"] = s.upstream_status.empty() ? "none" : s.upstream_status;
      auto lag = postgres::LagOf(primary, s, postgres::StandbyName(region));
      j["lag_bytes"] = lag.bytes ? Json(*lag.bytes) : Json(nullptr);
      j["lag_seconds"] = lag.seconds ? Json(*lag.seconds) : Json(nullptr);
      j["within_max_lag"] = lag.bytes ? Json(*lag.bytes <= db.max_lag_on_failover.bytes) : Json(nullptr);
    }
    regions[region] = j;
  }
  auto writable = postgres::WritablePrimary(seen);
  Json out = {{"database", db.name}, {"mode", plan::Name(db.mode)}, {"max_lag_on_failover", FormatSize(db.max_lag_on_failover)}};
  if (writable.ok()) {
    out["primary"] = *writable;
  } else {
    out["primary"] = nullptr;
    out["problem"] = writable.error().message();
  }
  out["regions"] = regions;
  return out;
}

std::string Text(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

void PrintStatusTable(const Json& all) {
  for (const auto& db : all) {
    std::cout << "database " << db["database"].get<std::string>() << " (" << db["mode"].get<std::string>()
              << ", max lag on failover " << db["max_lag_on_failover"].get<std::string>() << "): primary "
              << (db["primary"].is_null() ? "none" : db["primary"].get<std::string>()) << "\n";
    if (db.contains("problem")) std::cout << "  " << db["problem"].get<std::string>() << "\n";
    Table t({"REGION", "ROLE", "SERVER", "WAL", "STREAM", "LAG", "LAG(S)"});
    for (const auto& [region, r] : db["regions"].items()) {
      std::string wal = r.contains("wal_lsn") ? Text(r, "wal_lsn") : Text(r, "replay_lsn");
      std::string stream = "-", lag = "-", lag_s = "-";
      if (r.contains("standbys")) {
        stream = std::to_string(r["standbys"].size()) + " standby(s)";
      } else if (r.contains("upstream")) {
        stream = Text(r, "upstream");
        if (!r["lag_bytes"].is_null()) lag = HumanBytes(r["lag_bytes"].get<uint64_t>());
        if (!r["lag_seconds"].is_null()) lag_s = ShortDuration(r["lag_seconds"].get<double>());
      }
      std::string role = Text(r, "role");
      if (role == "unreachable") wal = Text(r, "error");
      t.Add({region, role, Text(r, "server"), wal, stream, lag, lag_s});
    }
    std::cout << t.Render();
  }
}

struct Common {
  std::string plan_file, name, region, from, output = "table";
  std::string timeout = "6h";
};

// Loads the plan and finds the database and the region; prints the error.
Result<std::pair<plan::Plan, const plan::Database*>> Load(const Common& o, bool need_region) {
  LB_ASSIGN_OR_RETURN(auto plan, plan::LoadPlanOrError(o.plan_file));
  auto p = std::make_pair(std::move(plan), static_cast<const plan::Database*>(nullptr));
  LB_ASSIGN_OR_RETURN(p.second, FindDatabase(p.first, o.name));
  if (need_region && !p.second->instances.count(o.region)) {
    return InvalidArgument("database " + o.name + " has no instance in region '" + o.region + "'");
  }
  if (!o.from.empty() && !p.second->instances.count(o.from)) {
    return InvalidArgument("--from: database " + o.name + " has no instance in region '" + o.from + "'");
  }
  return p;
}

}  // namespace

void AddDbCommands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("db", "PostgreSQL databases across regions: look, build a standby, rewind, promote");
  group->require_subcommand(1);
  group->footer(
      "The plan's databases section names each region's server. The agents fence, promote and\n"
      "report lag inside a failover; these commands do it by hand. bootstrap and rewind run on\n"
      "the host of the region they name (they use its data_dir). The password comes from the\n"
      "database's password_file or LIFEBOAT_DB_<NAME>_PASSWORD, never from the plan.");

  // status
  auto* status = group->add_subcommand("status", "Each region's server: role, WAL position, streaming, lag");
  auto so = std::make_shared<Common>();
  AddPlanFlag(*status, so->plan_file);
  status->add_option("name", so->name, "Database (default: every database of the plan)");
  AddOutputFlag(*status, so->output);
  status->footer(
      "Lag is the standby's distance behind the primary: bytes of WAL it has not replayed, and\n"
      "PostgreSQL's own replay delay. A standby further behind than max_lag_on_failover is not\n"
      "promoted unless forced.\n\n"
      "Examples:\n"
      "  lifeboat db status --plan shop.yaml\n"
      "  lifeboat db status orders --plan shop.yaml -o json");
  status->callback([&exit_code, so] {
    auto plan = plan::LoadPlanOrError(so->plan_file);
    if (!plan.ok()) {
      exit_code = Fail(plan.error());
      return;
    }
    Json all = Json::array();
    for (const auto& d : plan->databases) {
      if (so->name.empty() || d.name == so->name) all.push_back(StatusOf(d));
    }
    if (all.empty()) {
      exit_code = Fail(so->name.empty() ? Error(NotFound(plan->source + " has no databases section"))
                                        : FindDatabase(*plan, so->name).error());
      return;
    }
    if (Structured(so->output)) {
      PrintDocument(so->name.empty() ? Json{{"databases", all}} : all[0], so->output);
    } else {
      PrintStatusTable(all);
    }
    exit_code = kExitOk;
  });

  auto add_local = [&](const char* verb, const char* help, const char* footer, bool rewind) {
    auto* cmd = group->add_subcommand(verb, help);
    auto o = std::make_shared<Common>();
    AddPlanFlag(*cmd, o->plan_file);
    cmd->add_option("name", o->name, "Database")->required();
    cmd->add_option("--region", o->region, "The region whose server this host runs")->required();
    cmd->add_option("--from", o->from, "The region to follow (default: the one writable primary)");
    cmd->add_option("--timeout", o->timeout, "Give up after this long")->capture_default_str();
    AddOutputFlag(*cmd, o->output);
    cmd->footer(footer);
    cmd->callback([&exit_code, o, rewind] {
      auto loaded = Load(*o, true);
      if (!loaded.ok()) {
        exit_code = Fail(loaded.error());
        return;
      }
      auto timeout = ParseDuration(o->timeout);
      if (!timeout.ok()) {
        exit_code = Fail(timeout.error().Wrap("--timeout"));
        return;
      }
      postgres::LocalOptions opt;
      opt.source = o->from;
      opt.timeout = *timeout;
      opt.progress = Printer();
      const auto& db = *loaded->second;
      auto r = rewind ? postgres::Rewind(db, o->region, opt) : postgres::Bootstrap(db, o->region, opt);
      EndProgress();
      if (!r.ok()) {
        exit_code = Fail(r.error());
        return;
      }
      if (Structured(o->output)) {
        PrintDocument(Json{{"database", db.name},
                           {"region", o->region},
                           {"follows", r->source},
                           {"done", r->done},
                           {"warnings", r->warnings}},
                      o->output);
      } else {
        std::cout << db.name << " in " << o->region << ": " << r->done << "\n";
      }
      for (const auto& w : r->warnings) std::cerr << "lifeboat: warning: " << w << "\n";
      exit_code = kExitOk;
    });
  };
  add_local("bootstrap", "Build this region's standby from the primary (pg_basebackup through a slot of its own)",
            "Runs on the host of --region's server, as root or as the data directory's owner.\n"
            "Checks the primary first and names every fix at once: wal_level, max_wal_senders, a free\n"
            "replication slot, wal_log_hints or data checksums (for a later rewind), the user's\n"
            "REPLICATION attribute, pg_hba for a replication connection, free disk space. Then copies\n"
            "the primary with progress, writes standby.signal and whom to follow (in\n"
            "postgresql.auto.conf, with this region's port), starts the server and waits until it\n"
            "streams. Idempotent: a streaming standby is left alone, a stopped one is started, and a\n"
            "data directory holding anything else is never overwritten.\n\n"
            "Examples:\n"
            "  lifeboat db bootstrap orders --region us-west --plan /etc/lifeboat/shop.yaml\n"
            "  LIFEBOAT_DB_ORDERS_PASSWORD=... lifeboat db bootstrap orders --region us-west --from us-east",
            false);
  add_local("rewind", "Make this region's old primary a standby of the new one (pg_rewind)",
            "After an unplanned failover the old primary may hold writes the new one never received;\n"
            "pg_rewind takes them back to where the histories split. Runs on the host of --region's\n"
            "server: stops it (fast), rewinds it against the writable primary, configures it to follow,\n"
            "starts it and waits until it streams. Nothing to do when it already streams. A planned\n"
            "failover back (lifeboat failover --planned) then returns the primary without loss.\n\n"
            "Examples:\n"
            "  lifeboat db rewind orders --region us-east --plan /etc/lifeboat/shop.yaml",
            true);

  // promote
  auto* promote = group->add_subcommand("promote", "Make this region's standby the primary (fencing the old one)");
  auto po = std::make_shared<Common>();
  struct Flags {
    bool planned = false, force = false;
  };
  auto pf = std::make_shared<Flags>();
  AddPlanFlag(*promote, po->plan_file);
  promote->add_option("name", po->name, "Database")->required();
  promote->add_option("--region", po->region, "The region whose standby becomes the primary")->required();
  promote->add_flag("--planned", pf->planned,
                    "Zero loss: fence the old primary, wait until the standby has all it wrote, then promote");
  promote->add_flag("--force", pf->force, "Promote whatever the lag (unplanned; what it lacks is lost)");
  promote->add_option("--timeout", po->timeout, "Give up after this long")->default_val("60s");
  AddOutputFlag(*promote, po->output);
  promote->footer(
      "Moves only the database, outside the failover engine: the agents' primary region and\n"
      "traffic stay as they are. `lifeboat failover` moves the whole region, database included.\n"
      "Unplanned, a standby more than max_lag_on_failover behind (or whose lag is unknown, the old\n"
      "primary being unreachable) is refused unless --force. The old primary, when reachable, is\n"
      "fenced first: it refuses writes at once and its sessions are ended.\n\n"
      "Examples:\n"
      "  lifeboat db promote orders --region us-west --planned --plan shop.yaml\n"
      "  lifeboat db promote orders --region us-west --force --plan shop.yaml");
  promote->callback([&exit_code, po, pf] {
    auto loaded = Load(*po, true);
    if (!loaded.ok()) {
      exit_code = Fail(loaded.error());
      return;
    }
    auto timeout = ParseDuration(po->timeout);
    if (!timeout.ok()) {
      exit_code = Fail(timeout.error().Wrap("--timeout"));
      return;
    }
    if (pf->planned && pf->force) {
      exit_code = Fail("--planned and --force: a planned promotion loses nothing and needs no force", kExitInvalid);
      return;
    }
    postgres::MoveOptions opt;
    opt.planned = pf->planned;
    opt.force = pf->force;
    opt.timeout = *timeout;
    opt.progress = Printer();
    const auto& db = *loaded->second;
    auto r = postgres::MovePrimary(db, po->region, opt);
    EndProgress();
    if (!r.ok()) {
      exit_code = Fail(r.error());
      return;
    }
    Json j = {{"database", db.name},   {"primary", r->to},       {"previous", r->from.empty() ? Json(nullptr) : Json(r->from)},
              {"fenced", r->fenced},   {"sessions_ended", r->sessions_ended},
              {"already", r->already}, {"seconds", r->seconds}};
    j["lag_bytes"] = r->lag_bytes ? Json(*r->lag_bytes) : Json(nullptr);
    if (!r->final_lsn.empty()) j["final_lsn"] = r->final_lsn;
    if (!r->promoted_at.empty()) j["promoted_at"] = r->promoted_at;
    if (Structured(po->output)) {
      PrintDocument(j, po->output);
    } else if (r->already) {
      std::cout << db.name << ": " << r->to << " is the primary already"
                << (r->fenced ? "; fenced the other writable primary in " + r->from : std::string()) << "\n";
    } else {
      std::cout << db.name << ": " << r->to << " is the primary (" << (pf->planned ? "planned" : "unplanned") << ", "
                << ShortDuration(r->seconds) << ")";
      if (!r->from.empty()) std::cout << "; " << r->from << (r->fenced ? " fenced" : " could not be fenced");
      if (r->lag_bytes) std::cout << "; lag accepted: " << HumanBytes(*r->lag_bytes);
      std::cout << "\n";
      if (!r->from.empty()) {
        std::cout << "next: lifeboat db rewind " << db.name << " --region " << r->from
                  << " (on its host) makes it follow " << r->to << "\n";
      }
    }
    exit_code = kExitOk;
  });

  // fence
  auto* fence = group->add_subcommand("fence", "Make a primary refuse writes and end its sessions");
  auto fo = std::make_shared<Common>();
  AddPlanFlag(*fence, fo->plan_file);
  fence->add_option("name", fo->name, "Database")->required();
  fence->add_option("--region", fo->region, "The region whose primary is fenced")->required();
  fence->add_option("--timeout", fo->timeout, "Give up after this long")->default_val("30s");
  AddOutputFlag(*fence, fo->output);
  fence->footer(
      "Sets default_transaction_read_only and a synchronous standby that never comes (so that not\n"
      "even a session turning read-only off has a commit acknowledged), by ALTER SYSTEM so that a\n"
      "restart keeps them; ends every client session; flushes the WAL. `db promote` on this region\n"
      "(or `db rewind`, which makes it a standby) lifts the fence.\n\n"
      "Examples:\n"
      "  lifeboat db fence orders --region us-east --plan shop.yaml");
  fence->callback([&exit_code, fo] {
    auto loaded = Load(*fo, true);
    if (!loaded.ok()) {
      exit_code = Fail(loaded.error());
      return;
    }
    auto timeout = ParseDuration(fo->timeout);
    if (!timeout.ok()) {
      exit_code = Fail(timeout.error().Wrap("--timeout"));
      return;
    }
    const auto& db = *loaded->second;
    auto target = postgres::TargetOf(db, fo->region);
    auto conn = target.ok() ? postgres::Conn::Open(*target, std::chrono::seconds(5)) : Result<postgres::Conn>(target.error());
    if (!conn.ok()) {
      exit_code = Fail(conn.error());
      return;
    }
    auto f = postgres::Fence(*conn, *timeout);
    if (!f.ok()) {
      exit_code = Fail(f.error());
      return;
    }
    if (Structured(fo->output)) {
      PrintDocument(Json{{"database", db.name}, {"region", fo->region}, {"sessions_ended", f->sessions_ended},
                         {"final_lsn", postgres::FormatLsn(f->final_lsn)}, {"was_fenced", f->was_fenced}},
                    fo->output);
    } else {
      std::cout << db.name << " in " << fo->region << ": fenced" << (f->was_fenced ? " (it was already)" : "")
                << "; " << f->sessions_ended << " session(s) ended; its WAL ends at " << postgres::FormatLsn(f->final_lsn)
                << "\n";
    }
    exit_code = kExitOk;
  });
}

}  // namespace lifeboat::cli
