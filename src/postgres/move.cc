#include "postgres/move.h"

#include "postgres/control.h"
#include "postgres/instance.h"

namespace lifeboat::postgres {
namespace {
using Steady = std::chrono::steady_clock;

}  // namespace

Result<MoveReport> MovePrimary(const plan::Database& db, const std::string& to, const MoveOptions& opt) {
  const auto started = Steady::now();
  const auto deadline = started + opt.timeout;
  auto say = [&](std::string phase, std::string detail) {
    if (opt.progress) opt.progress({std::move(phase), -1, std::move(detail)});
  };
  if (!db.instances.count(to)) return InvalidArgument("database " + db.name + " has no instance in region " + to);
  MoveReport rep;
  rep.to = to;
  say("checking", "reading every region's server");
  auto seen = ObserveAll(db, std::chrono::seconds(3));
  const Observed& next = seen.at(to);
  if (!next.state) {
    return Unavailable("the server in " + to + " cannot be reached: " +
                       (next.error ? next.error->message() : std::string("?")));
  }
  std::string from;
  for (const auto& [region, o] : seen) {
    if (region != to && o.state && !o.state->in_recovery) from = region;  // fenced or not
  }
  if (!next.state->in_recovery && !next.state->fenced) {
    rep.already = true;
    // Any other primary is fenced all the same: two writable ones must not stay.
    for (const auto& [region, o] : seen) {
      if (region == to || !o.state || o.state->in_recovery || o.state->fenced) continue;
      LB_ASSIGN_OR_RETURN(auto t, TargetOf(db, region));
      LB_ASSIGN_OR_RETURN(auto c, Conn::Open(t, std::chrono::seconds(5)));
      LB_ASSIGN_OR_RETURN(auto f, Fence(c, Remaining(deadline, std::chrono::seconds(1))));
      rep.from = region;
      rep.fenced = true;
      rep.sessions_ended = f.sessions_ended;
    }
    rep.seconds = std::chrono::duration<double>(Steady::now() - started).count();
    return rep;
  }
  rep.from = from;
  std::optional<Conn> old;
  if (!from.empty()) {
    LB_ASSIGN_OR_RETURN(auto t, TargetOf(db, from));
    auto c = Conn::Open(t, std::chrono::seconds(3));
    if (c.ok()) old.emplace(std::move(*c));
  }
  if (old && seen.at(from).state->system_identifier != next.state->system_identifier) {
    return FailedPrecondition("the server in " + to + " is not a standby of " + from + "'s (system identifiers " +
                              next.state->system_identifier + " and " + seen.at(from).state->system_identifier + ")");
  }
  LB_ASSIGN_OR_RETURN(auto nt, TargetOf(db, to));
  LB_ASSIGN_OR_RETURN(auto nc, Conn::Open(nt, std::chrono::seconds(5)));
  if (opt.planned) {
    if (!old) {
      return FailedPrecondition("a planned switchover needs the old primary" +
                                (from.empty() ? std::string() : " (" + from + ")") +
                                " reachable, to fence it and wait for its last write; fail over unplanned instead");
    }
    say("fencing", from + ": writes refused, sessions ended");
    LB_ASSIGN_OR_RETURN(auto f, Fence(*old, Remaining(deadline, std::chrono::seconds(1))));
    rep.fenced = true;
    rep.sessions_ended = f.sessions_ended;
    rep.final_lsn = FormatLsn(f.final_lsn);
    say("waiting", to + " to receive up to " + rep.final_lsn);
    LB_RETURN_IF_ERROR(WaitReceived(nc, f.final_lsn, Remaining(deadline, std::chrono::seconds(1)), [&](Lsn at) {
      say("waiting", to + " has " + FormatLsn(at) + " of " + rep.final_lsn);
    }));
    rep.lag_bytes = 0;
  } else {
    // The lag the promotion accepts: measured now when the old primary
    // answers, else the last measure the caller has.
    std::optional<uint64_t> lag = opt.known_lag_bytes;
    if (old) {
      auto s = Inspect(*old, std::chrono::seconds(3));
      if (s.ok() && s->flush_lsn && next.state->replay_lsn) {
        lag = *s->flush_lsn > *next.state->replay_lsn ? *s->flush_lsn - *next.state->replay_lsn : 0;
      }
    }
    rep.lag_bytes = lag;
    if (!opt.force) {
      if (!lag) {
        return FailedPrecondition("the old primary" + (from.empty() ? std::string() : " (" + from + ")") +
                                  " cannot be reached, so " + to + "'s lag behind it is unknown; promote with --force "
                                  "to accept whatever it had not received");
      }
      if (*lag > db.max_lag_on_failover.bytes) {
        return FailedPrecondition(to + " is " + HumanBytes(*lag) + " behind, over max_lag_on_failover (" +
                                  FormatSize(db.max_lag_on_failover) + "); wait for it to catch up, or promote with "
                                  "--force and lose what it has not received");
      }
    }
    if (old) {
      say("fencing", from + ": writes refused, sessions ended");
      auto f = Fence(*old, Remaining(deadline, std::chrono::seconds(1)));
      if (f.ok()) {
        rep.fenced = true;
        rep.sessions_ended = f->sessions_ended;
      } else {
        say("fencing", from + " could not be fenced (" + f.error().message() + "); promoting anyway");
      }
    }
  }
  say("promoting", to);
  LB_ASSIGN_OR_RETURN(auto at, Promote(nc, SyncStandbyNames(db, to, false), Remaining(deadline, std::chrono::seconds(1))));
  rep.promoted_at = FormatLsn(at);
  rep.seconds = std::chrono::duration<double>(Steady::now() - started).count();
  return rep;
}

}  // namespace lifeboat::postgres
