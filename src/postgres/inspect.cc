#include "postgres/inspect.h"

#include <charconv>
#include <cstdlib>

namespace lifeboat::postgres {
namespace {

std::optional<double> Number(const std::optional<std::string>& v) {
  if (!v || v->empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (end == v->c_str()) return std::nullopt;
  return d;
}

std::optional<Lsn> LsnOf(const std::optional<std::string>& v) { return v ? ParseLsn(*v) : std::nullopt; }

constexpr const char* kServerSql = R"sql(
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version') AS version,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli::text FROM pg_stat_wal_receiver LIMIT 1)
            ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS timeline,
       current_setting('default_transaction_read_only') AS read_only,
       current_setting('synchronous_standby_names') AS sync_names,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() END AS flush_lsn,
       pg_last_wal_receive_lsn() AS receive_lsn,
       pg_last_wal_replay_lsn() AS replay_lsn,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) AS replay_age,
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS upstream_status,
       (SELECT sender_host FROM pg_stat_wal_receiver LIMIT 1) AS upstream_host
)sql";

constexpr const char* kReplicasSql = R"sql(
SELECT application_name, coalesce(host(client_addr), 'local') AS client_addr, state, sync_state,
       sent_lsn, write_lsn, flush_lsn, replay_lsn, extract(epoch FROM replay_lag) AS replay_lag
FROM pg_stat_replication ORDER BY application_name
)sql";

constexpr const char* kSlotsSql =
    "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name";

}  // namespace

const Replica* ServerState::FindReplica(std::string_view application_name) const {
  for (const auto& r : replicas) {
    if (r.application_name == application_name) return &r;
  }
  return nullptr;
}

Result<ServerState> Inspect(Conn& c, Duration timeout) {
  LB_ASSIGN_OR_RETURN(Rows s, c.Query(kServerSql, {}, timeout));
  if (s.size() != 1) return Internal(c.where() + ": the server's state came back with " + std::to_string(s.size()) + " rows");
  ServerState out;
  out.in_recovery = s.At(0, "in_recovery").value_or("") == "t";
  out.version = s.At(0, "version").value_or("");
  out.system_identifier = s.At(0, "system_identifier").value_or("");
  if (auto t = s.At(0, "timeline")) {
    // A primary's is the hexadecimal head of its WAL file name; a standby's decimal.
    out.timeline = static_cast<uint32_t>(std::strtoul(t->c_str(), nullptr, out.in_recovery ? 10 : 16));
  }
  out.fenced = s.At(0, "read_only").value_or("") == "on";
  out.synchronous_standby_names = s.At(0, "sync_names").value_or("");
  out.current_lsn = LsnOf(s.At(0, "current_lsn"));
  out.flush_lsn = LsnOf(s.At(0, "flush_lsn"));
  out.receive_lsn = LsnOf(s.At(0, "receive_lsn"));
  out.replay_lsn = LsnOf(s.At(0, "replay_lsn"));
  out.last_replay_age_seconds = Number(s.At(0, "replay_age"));
  out.upstream_status = s.At(0, "upstream_status").value_or("");
  out.upstream_host = s.At(0, "upstream_host").value_or("");
  LB_ASSIGN_OR_RETURN(Rows r, c.Query(kReplicasSql, {}, timeout));
  for (size_t i = 0; i < r.size(); ++i) {
    Replica x;
    x.application_name = r.At(i, "application_name").value_or("");
    x.client_addr = r.At(i, "client_addr").value_or("");
    x.state = r.At(i, "state").value_or("");
    x.sync_state = r.At(i, "sync_state").value_or("");
    x.sent = LsnOf(r.At(i, "sent_lsn"));
    x.write = LsnOf(r.At(i, "write_lsn"));
    x.flush = LsnOf(r.At(i, "flush_lsn"));
    x.replay = LsnOf(r.At(i, "replay_lsn"));
    x.replay_lag_seconds = Number(r.At(i, "replay_lag"));
    out.replicas.push_back(std::move(x));
  }
  LB_ASSIGN_OR_RETURN(Rows sl, c.Query(kSlotsSql, {}, timeout));
  for (size_t i = 0; i < sl.size(); ++i) out.slots.push_back(sl.At(i, "slot_name").value_or(""));
  return out;
}

Lag LagOf(const ServerState* primary, const ServerState& standby, std::string_view standby_name) {
  Lag lag;
  if (primary != nullptr && primary->flush_lsn && standby.replay_lsn) {
    lag.bytes = *primary->flush_lsn > *standby.replay_lsn ? *primary->flush_lsn - *standby.replay_lsn : 0;
  }
  const Replica* row = primary != nullptr ? primary->FindReplica(standby_name) : nullptr;
  if (lag.bytes && *lag.bytes == 0) {
    lag.seconds = 0;
  } else if (row != nullptr && row->replay_lag_seconds) {
    lag.seconds = *row->replay_lag_seconds;
  } else if (primary == nullptr && standby.receive_lsn && standby.replay_lsn &&
             *standby.receive_lsn <= *standby.replay_lsn) {
    lag.seconds = 0;  // everything received is replayed; what the primary has beyond it is unknown
  } else if (standby.last_replay_age_seconds) {
    // The age of the last replayed commit: an upper bound (an idle primary
    // makes it grow with nothing to catch up).
    lag.seconds = std::max(0.0, *standby.last_replay_age_seconds);
  }
  return lag;
}

std::string StandbyName(std::string_view region) {
  std::string out = "lifeboat_";
  for (char ch : region) {
    char c = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    out += ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
  }
  return out;
}

}  // namespace lifeboat::postgres
