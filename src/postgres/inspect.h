// What a PostgreSQL server is right now, read in one call: primary or
// standby, where its WAL is, whom it streams to and from, and whether
// lifeboat has fenced it. The database service, `lifeboat db status` and the
// health check all read this one value.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "postgres/conn.h"

namespace lifeboat::postgres {

// A standby streaming from this server (a row of pg_stat_replication).
struct Replica {
  std::string application_name;  // lifeboat's standbys connect as StandbyName(region)
  std::string client_addr;
  std::string state;       // "streaming", "catchup", "startup", ...
  std::string sync_state;  // "async", "sync", "quorum", "potential"
  std::optional<Lsn> sent, write, flush, replay;
  std::optional<double> replay_lag_seconds;  // PostgreSQL's own measure; null when idle and caught up
};

struct ServerState {
  bool in_recovery = false;  // a standby (or a server still recovering)
  std::string version;       // server_version
  std::string system_identifier;  // the same on a primary and every standby built from it
  // A primary: the timeline it writes; a standby: the one its WAL receiver
  // streams (0 when it has none).
  uint32_t timeline = 0;
  bool fenced = false;            // lifeboat's fence is in place (default_transaction_read_only)
  std::string synchronous_standby_names;
  // A primary: where its WAL is written and flushed to.
  std::optional<Lsn> current_lsn, flush_lsn;
  // A standby: what it has received (and flushed) and replayed.
  std::optional<Lsn> receive_lsn, replay_lsn;
  // A standby: seconds since the last transaction it replayed committed on
  // the primary; null before the first.
  std::optional<double> last_replay_age_seconds;
  std::string upstream_status;  // a standby's WAL receiver: "streaming", ... ; "" when it has none
  std::string upstream_host;
  std::vector<Replica> replicas;  // a primary's standbys
  std::vector<std::string> slots;  // physical replication slots

  const Replica* FindReplica(std::string_view application_name) const;
  std::string Role() const { return in_recovery ? "standby" : (fenced ? "fenced primary" : "primary"); }
};

// Reads the state within `timeout` (three short queries). PermissionDenied
// names the role the user lacks (pg_monitor shows other sessions' details).
Result<ServerState> Inspect(Conn& c, Duration timeout = std::chrono::seconds(5));

// How far a standby is behind its primary, from what each reports.
struct Lag {
  std::optional<uint64_t> bytes;    // primary's flushed WAL - standby's replayed; null when unknown
  std::optional<double> seconds;    // 0 when everything received is replayed
};
// `primary` may be null (unreachable): then the bytes are unknown and the
// seconds come from the standby alone. `standby_name` finds the standby's
// row at the primary, whose replay_lag is PostgreSQL's own measure.
Lag LagOf(const ServerState* primary, const ServerState& standby, std::string_view standby_name);

// The application_name and the slot name of region `region`'s standby:
// "lifeboat_" and the region with every character outside [a-z0-9_] as '_'.
std::string StandbyName(std::string_view region);

}  // namespace lifeboat::postgres
