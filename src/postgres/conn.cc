#include "postgres/conn.h"

#include <poll.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

namespace lifeboat::postgres {
namespace {

using Steady = std::chrono::steady_clock;

std::string Trimmed(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  // libpq prefixes connection errors with the address it tried; keep it (it
  // names no secret) but fold multi-line messages onto one line.
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

// Waits until the socket is readable (or writable) or the deadline passes.
// false: the deadline passed.
bool WaitFor(int fd, bool write, Steady::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let libpq see and report the socket's error
  }
}

Error ConnectError(const std::string& where, const std::string& message) {
  // libpq reports a rejected login only as text.
  if (message.find("authentication failed") != std::string::npos ||
      message.find("pg_hba.conf") != std::string::npos) {
    return Unauthenticated(where + ": " + message);
  }
  return Unavailable(where + ": " + message);
}

}  // namespace

std::string Describe(std::string_view conninfo) {
  std::string info(conninfo);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(info.c_str(), &err);
  if (opts == nullptr) {
    PQfreemem(err);
    return "(an unreadable connection string)";
  }
  std::string host, port, dbname;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view k = o->keyword;
    if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = "localhost";
  if (host.starts_with('/')) host = "socket " + host;
  return host + (port.empty() ? "" : ":" + port) + (dbname.empty() ? "" : "/" + dbname);
}

std::optional<std::string> Rows::At(size_t row, std::string_view column) const {
  if (row >= rows.size()) return std::nullopt;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == column) return i < rows[row].size() ? rows[row][i] : std::nullopt;
  }
  return std::nullopt;
}

Result<Conn> Conn::Open(const Target& target, Duration timeout) {
  std::string where = Describe(target.conninfo);
  // The connection string first, so that what follows overrides it.
  std::vector<const char*> keys = {"dbname"}, values = {target.conninfo.c_str()};
  if (!target.password.empty()) {
    keys.push_back("password");
    values.push_back(target.password.c_str());
  }
  keys.push_back("application_name");
  values.push_back(target.application_name.c_str());
  if (target.replication) {
    keys.push_back("replication");
    values.push_back("true");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectStartParams(keys.data(), values.data(), 1);
  if (c == nullptr) return ResourceExhausted("libpq could not allocate a connection");
  if (PQstatus(c) == CONNECTION_BAD) {
    std::string m = Trimmed(PQerrorMessage(c));
    PQfinish(c);
    return ConnectError(where, m);
  }
  auto deadline = Steady::now() + timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  for (;;) {
    if (st == PGRES_POLLING_OK) break;
    if (st == PGRES_POLLING_FAILED) {
      std::string m = Trimmed(PQerrorMessage(c));
      PQfinish(c);
      return ConnectError(where, m);
    }
    if (!WaitFor(PQsocket(c), st == PGRES_POLLING_WRITING, deadline)) {
      PQfinish(c);
      return DeadlineExceeded(where + ": no connection within " + FormatDuration(timeout));
    }
    st = PQconnectPoll(c);
  }
  if (PQsetnonblocking(c, 1) != 0) {
    std::string m = Trimmed(PQerrorMessage(c));
    PQfinish(c);
    return Internal(where + ": " + m);
  }
  return Conn(c, std::move(where));
}

Conn& Conn::operator=(Conn&& o) noexcept {
  if (this != &o) {
    Drop();
    c_ = o.c_;
    o.c_ = nullptr;
    where_ = std::move(o.where_);
    last_ = std::move(o.last_);
  }
  return *this;
}

Conn::~Conn() { Drop(); }

void Conn::Drop() {
  if (c_ != nullptr) PQfinish(c_);
  c_ = nullptr;
}

Result<Rows> Conn::Query(std::string_view sql, const std::vector<std::string>& params, Duration timeout) {
  last_ = {};
  if (c_ == nullptr) return Unavailable(where_ + ": the connection was dropped");
  std::string text(sql);
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  if (PQsendQueryParams(c_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr,
                        0) == 0) {
    std::string m = Trimmed(PQerrorMessage(c_));
    Drop();
    return Unavailable(where_ + ": " + m);
  }
  auto deadline = Steady::now() + timeout;
  auto timed_out = [&] {
    Drop();
    return DeadlineExceeded(where_ + ": no answer within " + FormatDuration(timeout));
  };
  for (;;) {  // send what libpq buffered
    int f = PQflush(c_);
    if (f == 0) break;
    if (f < 0) {
      std::string m = Trimmed(PQerrorMessage(c_));
      Drop();
      return Unavailable(where_ + ": " + m);
    }
    if (!WaitFor(PQsocket(c_), true, deadline)) return timed_out();
  }
  Rows out;
  std::optional<ServerError> failed;
  for (;;) {
    while (PQisBusy(c_) != 0) {
      if (!WaitFor(PQsocket(c_), false, deadline)) return timed_out();
      if (PQconsumeInput(c_) == 0) {
        std::string m = Trimmed(PQerrorMessage(c_));
        Drop();
        return Unavailable(where_ + ": " + m);
      }
    }
    PGresult* r = PQgetResult(c_);
    if (r == nullptr) break;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
      out = Rows{};
      int n = PQnfields(r), rows = PQntuples(r);
      for (int i = 0; i < n; ++i) out.columns.emplace_back(PQfname(r, i));
      out.rows.reserve(rows);
      for (int row = 0; row < rows; ++row) {
        auto& v = out.rows.emplace_back();
        v.reserve(n);
        for (int i = 0; i < n; ++i) {
          if (PQgetisnull(r, row, i)) {
            v.emplace_back(std::nullopt);
          } else {
            v.emplace_back(std::string(PQgetvalue(r, row, i), PQgetlength(r, row, i)));
          }
        }
      }
    } else if (st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY && !failed) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      failed = ServerError{state != nullptr ? state : "", Trimmed(PQresultErrorMessage(r))};
    }
    PQclear(r);
  }
  if (PQstatus(c_) == CONNECTION_BAD) {
    std::string m = failed ? failed->message : Trimmed(PQerrorMessage(c_));
    Drop();
    return Unavailable(where_ + ": " + m);
  }
  if (failed) {
    last_ = *failed;
    const std::string& s = failed->sqlstate;
    std::string m = where_ + ": " + failed->message;
    // Class 08 (connection), 57P (shutdown, crash), 53 (resources): try again later.
    if (s.starts_with("08") || s.starts_with("57P") || s.starts_with("53")) return Unavailable(m);
    if (s == "25006") return FailedPrecondition(m);  // read-only transaction
    if (s.starts_with("42501") || s.starts_with("28")) return PermissionDenied(m);
    if (s == "57014") return DeadlineExceeded(m);  // canceled by statement_timeout
    return Internal(m + (s.empty() ? "" : " (SQLSTATE " + s + ")"));
  }
  return out;
}

Status Conn::Exec(std::string_view sql, Duration timeout) { return StatusOf(Query(sql, {}, timeout)); }

Duration Remaining(Steady::time_point deadline, Duration floor) {
  auto d = std::chrono::duration_cast<Duration>(deadline - Steady::now());
  return d < floor ? floor : d;
}

std::optional<Lsn> ParseLsn(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= text.size()) return std::nullopt;
  uint32_t hi = 0, lo = 0;
  auto a = std::from_chars(text.data(), text.data() + slash, hi, 16);
  auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), lo, 16);
  if (a.ec != std::errc() || a.ptr != text.data() + slash || b.ec != std::errc() ||
      b.ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

std::string FormatLsn(Lsn lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

}  // namespace lifeboat::postgres
