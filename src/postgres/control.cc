#include "postgres/control.h"

#include <thread>

namespace lifeboat::postgres {
namespace {

using Steady = std::chrono::steady_clock;

// A standby name no server ever connects as: a fenced primary's commits
// wait for it forever.
constexpr const char* kFencedStandby = "lifeboat_fenced_no_standby";


// A quoted literal for ALTER SYSTEM (which takes no parameters).
std::string Literal(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace

Result<Fenced> Fence(Conn& c, Duration timeout) {
  auto deadline = Steady::now() + timeout;
  LB_ASSIGN_OR_RETURN(auto state, Inspect(c, Remaining(deadline)));
  if (state.in_recovery) return FailedPrecondition(c.where() + " is a standby; only a primary is fenced");
  Fenced out;
  out.was_fenced = state.fenced && state.synchronous_standby_names == kFencedStandby;
  // Writes refused from the next statement of every session on.
  LB_RETURN_IF_ERROR(c.Exec("ALTER SYSTEM SET default_transaction_read_only = on", Remaining(deadline)));
  LB_RETURN_IF_ERROR(c.Exec(std::string("ALTER SYSTEM SET synchronous_standby_names = ") + Literal(kFencedStandby),
                            Remaining(deadline)));
  LB_RETURN_IF_ERROR(c.Exec("SELECT pg_reload_conf()", Remaining(deadline)));
  // A transaction already running keeps the settings it started with: end
  // every client session (waiting up to 5 s for each to go). A session
  // still logging in during this sweep may run one statement under the old
  // settings, and its commit then waits for the unreachable standby: the
  // second sweep, after the checkpoint, ends it (its client sees an error,
  // never an acknowledgement).
  auto sweep = [&]() -> Result<int> {
    LB_ASSIGN_OR_RETURN(auto ended, c.Query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) AS n "
                                            "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                            "AND pid <> pg_backend_pid()",
                                            {}, Remaining(deadline)));
    return std::atoi(ended.At(0, "n").value_or("0").c_str());
  };
  LB_ASSIGN_OR_RETURN(out.sessions_ended, sweep());
  // Commits acknowledged with synchronous_commit off may sit in WAL
  // buffers: a checkpoint flushes them before the final position is read.
  LB_RETURN_IF_ERROR(c.Exec("CHECKPOINT", Remaining(deadline)));
  LB_ASSIGN_OR_RETURN(int late, sweep());
  out.sessions_ended += late;
  LB_ASSIGN_OR_RETURN(auto lsn, c.Query("SELECT pg_current_wal_flush_lsn() AS lsn", {}, Remaining(deadline)));
  auto final_lsn = ParseLsn(lsn.At(0, "lsn").value_or(""));
  if (!final_lsn) return Internal(c.where() + ": unreadable WAL position '" + lsn.At(0, "lsn").value_or("") + "'");
  out.final_lsn = *final_lsn;
  return out;
}

std::string SyncStandbyNames(const plan::Database& db, std::string_view here, bool degraded) {
  if (db.mode != plan::DbMode::kSync || degraded) return "";
  std::string names;
  for (const auto& [region, conninfo] : db.instances) {
    if (region == here) continue;
    names += (names.empty() ? "" : ", ") + ("\"" + StandbyName(region) + "\"");
  }
  return names.empty() ? "" : "ANY 1 (" + names + ")";
}

Status Unfence(Conn& c, const std::string& sync_standby_names, Duration timeout) {
  auto deadline = Steady::now() + timeout;
  LB_RETURN_IF_ERROR(c.Exec("ALTER SYSTEM RESET default_transaction_read_only", Remaining(deadline)));
  LB_RETURN_IF_ERROR(c.Exec("ALTER SYSTEM SET synchronous_standby_names = " + Literal(sync_standby_names),
                            Remaining(deadline)));
  return c.Exec("SELECT pg_reload_conf()", Remaining(deadline));
}

Result<Lsn> Promote(Conn& c, const std::string& sync_standby_names, Duration timeout) {
  auto deadline = Steady::now() + timeout;
  // The settings first: a server that comes out of recovery fenced (a
  // rejoined old primary) would refuse its first writes.
  LB_RETURN_IF_ERROR(Unfence(c, sync_standby_names, Remaining(deadline)));
  LB_ASSIGN_OR_RETURN(auto state, Inspect(c, Remaining(deadline)));
  if (state.in_recovery) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(Remaining(deadline)).count();
    LB_ASSIGN_OR_RETURN(auto r, c.Query("SELECT pg_promote(true, $1) AS promoted", {std::to_string(std::max<long long>(1, secs))},
                                        Remaining(deadline) + std::chrono::seconds(1)));
    if (r.At(0, "promoted").value_or("") != "t") {
      return DeadlineExceeded(c.where() + " did not finish promoting within " + FormatDuration(timeout));
    }
  }
  // The proof: a transaction that takes an id commits. Our own session says
  // read-write explicitly (the reload reaches it at its own pace).
  for (;;) {
    LB_RETURN_IF_ERROR(c.Exec("SET default_transaction_read_only = off", Remaining(deadline)));
    LB_RETURN_IF_ERROR(c.Exec("SET synchronous_commit = local", Remaining(deadline)));
    auto w = c.Query("SELECT pg_current_wal_lsn() AS lsn, txid_current() AS xid", {}, Remaining(deadline));
    if (w.ok()) {
      auto lsn = ParseLsn(w->At(0, "lsn").value_or(""));
      if (lsn) {
        // A promotion's own checkpoint is spread out, and until it ends the
        // control file names the old timeline: pg_rewind against this
        // server would then find nothing to rewind. An immediate one now
        // (the server already takes writes).
        LB_RETURN_IF_ERROR(c.Exec("CHECKPOINT", Remaining(deadline)));
        return *lsn;
      }
    } else if (w.error().code() != Code::kFailedPrecondition && w.error().code() != Code::kInternal) {
      return w.error();
    }
    if (Steady::now() > deadline) {
      return DeadlineExceeded(c.where() + " was promoted but did not accept a write within " + FormatDuration(timeout) +
                              (w.ok() ? "" : ": " + w.error().message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status WaitReceived(Conn& standby, Lsn lsn, Duration timeout, const std::function<void(Lsn)>& progress) {
  auto deadline = Steady::now() + timeout;
  auto reported = Steady::now();
  for (;;) {
    LB_ASSIGN_OR_RETURN(auto r, standby.Query("SELECT pg_is_in_recovery() AS rec, pg_last_wal_receive_lsn() AS lsn",
                                              {}, Remaining(deadline)));
    if (r.At(0, "rec").value_or("") != "t") {
      return FailedPrecondition(standby.where() + " is not a standby (it was promoted?)");
    }
    auto at = ParseLsn(r.At(0, "lsn").value_or(""));
    if (at && *at >= lsn) return Ok();
    auto now = Steady::now();
    if (progress && now - reported >= std::chrono::seconds(1)) {
      reported = now;
      progress(at.value_or(0));
    }
    if (now > deadline) {
      return DeadlineExceeded(standby.where() + " has received up to " + (at ? FormatLsn(*at) : std::string("nothing")) +
                              ", not " + FormatLsn(lsn) + ", after " + FormatDuration(timeout));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace lifeboat::postgres
