// The changes lifeboat makes to a PostgreSQL server during a failover:
// fence an old primary, promote a standby, wait for a standby to have what a
// primary wrote, and choose which standbys a commit waits for. Each is
// idempotent (a failover step may run again) and bounded by a deadline.
//
// The user needs to be a superuser (ALTER SYSTEM, pg_promote,
// pg_terminate_backend of other users' sessions, CHECKPOINT); see
// docs/postgres.md for a narrower set of grants.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "postgres/conn.h"
#include "postgres/inspect.h"

namespace lifeboat::postgres {

// What Fence did.
struct Fenced {
  int sessions_ended = 0;
  // The primary's WAL flushed after its sessions ended and a checkpoint:
  // every transaction it acknowledged is at or before this position.
  Lsn final_lsn = 0;
  bool was_fenced = false;  // it already was (a step run again)
};

// Makes a primary refuse writes at once and for good (until Unfence or
// Promote): default_transaction_read_only on, and synchronous_standby_names
// set to a standby that never connects, so that even a session that turns
// read-only off cannot have a commit acknowledged; both by ALTER SYSTEM, so
// that they survive a restart. Then every other client session is ended and
// a checkpoint flushes the WAL. FailedPrecondition on a standby.
Result<Fenced> Fence(Conn& c, Duration timeout);

// The synchronous_standby_names a primary of `db` in region `here` runs
// with: '' for async (and for sync while degraded), else any one of the
// other regions' standbys.
std::string SyncStandbyNames(const plan::Database& db, std::string_view here, bool degraded);

// Clears a fence and sets synchronous_standby_names; a reload applies both.
Status Unfence(Conn& c, const std::string& sync_standby_names, Duration timeout);

// Promotes a standby and waits until it commits a write (with
// synchronous_commit local, so that a sync primary with no standby yet
// still answers); clears a fence it inherited and sets
// synchronous_standby_names. Already a primary: only that last part.
// Returns the timeline-switch position (the promoted server's WAL position
// when it first accepted a write).
Result<Lsn> Promote(Conn& c, const std::string& sync_standby_names, Duration timeout);

// Waits until a standby has received and flushed WAL up to `lsn` (after a
// promote it replays all of it before its first write). `progress` gets the
// standby's position about once a second.
Status WaitReceived(Conn& standby, Lsn lsn, Duration timeout, const std::function<void(Lsn)>& progress = {});

}  // namespace lifeboat::postgres
