// What runs on the host of one region's PostgreSQL server, against its data
// directory (the plan's databases.NAME.data_dir): building it as a standby
// of the primary (bootstrap), making an old primary follow the new one
// (rewind), starting and stopping it. PostgreSQL's programs run as the data
// directory's owner, since they refuse to run as root; the password reaches
// them in the environment, never on a command line.
//
// The server's configuration is expected in its data directory (initdb's
// layout, the PGDG packages' and the container images'); the settings that
// belong to one region (its port, whom it follows) go into
// postgresql.auto.conf, which lifeboat rewrites.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "postgres/conn.h"

namespace lifeboat::postgres {

// A long operation's progress, for a terminal or a status section.
struct Progress {
  std::string phase;   // "checking", "base backup", "rewind", "starting", "catching up"
  int percent = -1;    // -1: unknown
  std::string detail;  // "123/456 MB", ...
};
using ProgressFn = std::function<void(const Progress&)>;

// A precondition a primary fails for a new standby, with its fix.
struct Problem {
  std::string what;
  std::string fix;
};

// Every reason `primary` cannot feed one more standby built in `data_dir`
// (wal_level, max_wal_senders, free slots, wal_log_hints or checksums, the
// user's REPLICATION attribute, free disk space); empty when none.
Result<std::vector<Problem>> CheckPrimaryForStandby(Conn& primary, const std::string& data_dir);

struct LocalOptions {
  std::string source;  // the region to follow; empty: the one writable primary
  ProgressFn progress;
  Duration timeout = std::chrono::hours(6);  // the whole operation
};

// What Bootstrap or Rewind did, in a sentence, and whom it now follows.
struct LocalOutcome {
  std::string done;
  std::string source;
  std::vector<std::string> warnings = {};  // settings that will hurt later (a rewind without the WAL it needs)
};

// Makes `region`'s server of `db` a streaming standby of the primary:
// nothing to do when it already is one; an existing standby's data
// directory is started; an empty or absent one is built by pg_basebackup
// through a replication slot of its own. A data directory holding anything
// else is never touched (FailedPrecondition names what to do instead). The
// preconditions are checked first and all reported at once.
Result<LocalOutcome> Bootstrap(const plan::Database& db, const std::string& region, const LocalOptions& opt);

// Makes `region`'s old primary a standby of the new one: stopped, pg_rewind
// against the new primary (nothing to rewind is fine), configured to
// follow it, started, and streaming. Nothing to do when it already streams.
Result<LocalOutcome> Rewind(const plan::Database& db, const std::string& region, const LocalOptions& opt);

// Stops `region`'s server (fast mode: sessions are ended, then a clean
// shutdown; immediate: every process quits at once, as in a crash, and the
// next start recovers); nothing to do when it is not running.
Status StopServer(const plan::Database& db, const std::string& region, Duration timeout, bool immediate = false);

// Starts `region`'s server from its data directory; nothing to do when it
// runs. NotFound when there is no data directory.
Status StartServer(const plan::Database& db, const std::string& region, Duration timeout);

// Makes a new server for `region` in its data_dir (absent or empty), for
// the demo and for trying lifeboat out: initdb with checksums (pg_rewind
// needs them), the user of the region's connection string as superuser
// with the database's password, the connection string's host and port,
// TCP only, and pg_hba entries for every region's host (replication too).
// Does not start it. Returns the data directory.
Result<std::string> InitServer(const plan::Database& db, const std::string& region);

// PostgreSQL's program directory: `configured`, else the one of
// `major` (15), else the newest under /usr/lib/postgresql.
Result<std::string> FindBinDir(const std::string& configured, int major = 0);

// A value for a libpq connection string, quoted: 'it''s' style with
// backslash escapes as libpq reads them.
std::string ConninfoValue(std::string_view v);

}  // namespace lifeboat::postgres
