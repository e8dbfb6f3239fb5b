// A PostgreSQL connection through libpq's asynchronous API, with a deadline
// on every call: a server that stops answering (a partition, a host gone)
// costs the caller its timeout, never a hung thread. The connection string
// and the password are never logged: messages name the server by Describe().
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/units.h"

namespace lifeboat::postgres {

// Where to connect and as whom: a plan instance's connection string and the
// password from outside the plan.
struct Target {
  std::string conninfo;
  std::string password;  // empty: none (trust, peer, ~/.pgpass)
  std::string application_name = "lifeboat";
  bool replication = false;  // a physical replication connection (what a standby opens)
};

// "host:port/dbname" of a connection string, for messages; never the
// password or other keywords.
std::string Describe(std::string_view conninfo);

// The rows of a query, every value as text (libpq's text format); a SQL
// NULL is nullopt.
struct Rows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;

  size_t size() const { return rows.size(); }
  bool empty() const { return rows.empty(); }
  // The value in `row` of `column`; nullopt for NULL or an unknown column.
  std::optional<std::string> At(size_t row, std::string_view column) const;
};

// An error from the server, for callers that branch on it.
struct ServerError {
  std::string sqlstate;  // "25006" (read-only transaction), "" when not from the server
  std::string message;
};

class Conn {
 public:
  // Connects within `timeout`. Unavailable when the server cannot be
  // reached or refuses (the message says which and why), DeadlineExceeded
  // when it does not finish in time, Unauthenticated for a rejected
  // password or pg_hba rule.
  static Result<Conn> Open(const Target& target, Duration timeout);

  Conn(Conn&& o) noexcept : c_(o.c_), where_(std::move(o.where_)), last_(std::move(o.last_)) { o.c_ = nullptr; }
  Conn& operator=(Conn&& o) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn();

  // Runs one statement with text parameters ($1, $2, ...) and returns its
  // rows. Past `timeout` the connection is dropped (the server ends the
  // statement when it notices) and the result is DeadlineExceeded: the
  // statement may or may not have taken effect. A lost connection is
  // Unavailable; an error from the server keeps its SQLSTATE in
  // last_error().
  Result<Rows> Query(std::string_view sql, const std::vector<std::string>& params = {},
                     Duration timeout = std::chrono::seconds(5));
  // Query for a statement whose rows do not matter.
  Status Exec(std::string_view sql, Duration timeout = std::chrono::seconds(5));

  // The last error the server sent (empty sqlstate: none, or not the server's).
  const ServerError& last_error() const { return last_; }
  // The server, as Describe() names it.
  const std::string& where() const { return where_; }
  bool ok() const { return c_ != nullptr && PQstatus(c_) == CONNECTION_OK; }

 private:
  Conn(PGconn* c, std::string where) : c_(c), where_(std::move(where)) {}
  void Drop();
  PGconn* c_ = nullptr;
  std::string where_;
  ServerError last_;
};

// What is left until `deadline`, but at least `floor`: each call of a
// multi-step operation gets a chance to answer.
Duration Remaining(std::chrono::steady_clock::time_point deadline, Duration floor = std::chrono::milliseconds(100));

// A log sequence number ("16/B374D848"), as a byte position in the WAL.
using Lsn = uint64_t;
std::optional<Lsn> ParseLsn(std::string_view text);
std::string FormatLsn(Lsn lsn);

}  // namespace lifeboat::postgres
