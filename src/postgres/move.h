// Moving a database's primary to another region: the part of a failover
// that is PostgreSQL's. Planned: the old primary is fenced, the new one has
// received everything it wrote, then it is promoted (no committed row is
// lost). Unplanned: the standby is promoted when its lag is within the
// plan's max_lag_on_failover (or forced), and the old primary is fenced
// first when it can be reached, so that it never takes another write.
#pragma once

#include <optional>
#include <string>

#include "plan/plan.h"
#include "postgres/local.h"

namespace lifeboat::postgres {

struct MoveOptions {
  bool planned = false;
  bool force = false;  // unplanned: promote whatever the lag
  // unplanned, when the old primary cannot be reached: the lag last
  // measured (the agent's record); nullopt: unknown, refused unless forced.
  std::optional<uint64_t> known_lag_bytes;
  Duration timeout = std::chrono::seconds(60);
  ProgressFn progress;
};

struct MoveReport {
  std::string from;  // the old primary's region; "" when none was writable or reachable
  std::string to;
  bool fenced = false;  // the old primary was fenced (it was reachable)
  int sessions_ended = 0;
  std::optional<uint64_t> lag_bytes;  // accepted at the promotion (planned: 0)
  std::string final_lsn;    // planned: the old primary's last position, all received
  std::string promoted_at;  // the new primary's position at its first write
  bool already = false;     // `to` was the primary already
  double seconds = 0;
};

// Moves `db`'s primary to `to`. InvalidArgument for an unknown region;
// FailedPrecondition when the lag is over the limit (the message has the
// figures and says --force), when a planned move cannot reach the old
// primary, or when `to` is not a standby of it.
Result<MoveReport> MovePrimary(const plan::Database& db, const std::string& to, const MoveOptions& opt);

}  // namespace lifeboat::postgres
