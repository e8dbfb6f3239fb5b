// A plan database's servers: how to reach the one of each region (the
// connection string from the plan, the password from outside it), and what
// each of them is now.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "plan/plan.h"
#include "postgres/conn.h"
#include "postgres/inspect.h"

namespace lifeboat::postgres {

// The password of `db`: LIFEBOAT_DB_<NAME>_PASSWORD (the name upper-cased,
// '-' and '.' as '_'), else the first line of its password_file, else empty
// (the server trusts, or ~/.pgpass has it). PermissionDenied/NotFound for a
// password_file that cannot be read.
Result<std::string> PasswordOf(const plan::Database& db);
std::string PasswordVariable(const plan::Database& db);

// How to connect to `db`'s server in `region`. NotFound for a region
// without one.
Result<Target> TargetOf(const plan::Database& db, const std::string& region);

// What one region's server is, or why it could not be read.
struct Observed {
  std::string region;
  std::string where;  // Describe() of its connection string
  std::optional<ServerState> state;
  std::optional<Error> error;
};

// Reads every region's server at once (in parallel, each within `timeout`).
std::map<std::string, Observed> ObserveAll(const plan::Database& db, Duration timeout);

// The region whose server is an unfenced primary. NotFound when none is;
// FailedPrecondition when more than one is (the message names them: two
// writable primaries are what lifeboat exists to prevent).
Result<std::string> WritablePrimary(const std::map<std::string, Observed>& seen);

}  // namespace lifeboat::postgres
