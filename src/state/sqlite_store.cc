#include "state/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>

namespace lifeboat::state {
namespace {

Error SqlError(sqlite3* db, std::string_view what) {
  int code = sqlite3_extended_errcode(db);
  std::string m = std::string(what) + ": " + sqlite3_errmsg(db);
  switch (code & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: return Unavailable(m);
    case SQLITE_FULL: return ResourceExhausted(m);
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return DataLoss(m);
    case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_CANTOPEN: return PermissionDenied(m);
    case SQLITE_IOERR: return DataLoss(m);
    default: return Internal(m);
  }
}

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(s_); }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(s_, col);
    int n = sqlite3_column_bytes(s_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }
  // Runs a statement that returns no rows.
  Status Run(std::string_view what) {
    if (!ok()) return SqlError(db_, what);
    int rc = Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqlError(db_, what);
    return Ok();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Error e = SqlError(db, std::string("sqlite: ") + sql);
    sqlite3_free(err);
    return e;
  }
  return Ok();
}

KeyValue ReadKv(Stmt& s) {
  KeyValue kv;
  kv.key = s.Blob(0);
  kv.value = s.Blob(1);
  kv.create_revision = s.Int(2);
  kv.mod_revision = s.Int(3);
  kv.version = s.Int(4);
  kv.lease = s.Int(5);
  return kv;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('revision', 0), ('next_lease', 1);
CREATE TABLE IF NOT EXISTS kv(
  key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS leases(id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
)sql";

}  // namespace

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
class SqliteStore::Tx {
 public:
  explicit Tx(sqlite3* db) : db_(db) { status_ = Exec(db, "BEGIN IMMEDIATE"); }
  ~Tx() {
    // A failed rollback leaves nothing to do: SQLite rolls back on close.
    if (status_.ok() && !done_) static_cast<void>(Exec(db_, "ROLLBACK"));
  }
  const Status& status() const { return status_; }
  Status Commit() {
    done_ = true;
    return Exec(db_, "COMMIT");
  }

 private:
  sqlite3* db_;
  Status status_;
  bool done_ = false;
};

// One watch. `mu` is held while `fn` runs, so that once the handle is gone
// (alive false under mu) `fn` is never called again.
struct SqliteStore::Watcher {
  std::string prefix;
  std::function<void(const Event&)> fn;
  std::mutex mu;
  bool alive = true;  // guarded by mu
};

namespace {
// Unregisters its watcher when destroyed.
class Handle final : public WatchHandle {
 public:
  explicit Handle(std::function<void()> stop) : stop_(std::move(stop)) {}
  ~Handle() override { stop_(); }

 private:
  std::function<void()> stop_;
};
}  // namespace

SqliteStore::SqliteStore(sqlite3* db, Clock& clock, std::string path)
    : db_(db), clock_(clock), path_(std::move(path)) {}

SqliteStore::~SqliteStore() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, Clock& clock) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Error e = db ? SqlError(db, "open state store " + path) : Internal("open state store " + path + ": out of memory");
    sqlite3_close_v2(db);
    return e;
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, clock, path));
  sqlite3_busy_timeout(db, 5000);
  // Checked before anything writes, so a damaged or foreign file is reported, not changed.
  {
    Stmt check(db, "PRAGMA quick_check");
    if (!check.ok() || check.Step() != SQLITE_ROW) return SqlError(db, "state store " + path);
    std::string verdict = check.Blob(0);
    if (verdict != "ok") return DataLoss("state store " + path + " is damaged: " + verdict);
  }
  int64_t version;
  {
    Stmt ver(db, "PRAGMA user_version");
    if (!ver.ok() || ver.Step() != SQLITE_ROW) return SqlError(db, "state store " + path);
    version = ver.Int(0);
  }
  if (version > kFormatVersion) {
    return FailedPrecondition("state store " + path + " has format " + std::to_string(version) +
                              ", newer than this lifeboat understands (" + std::to_string(kFormatVersion) +
                              "); run a newer lifeboat");
  }
  LB_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL"));
  LB_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL"));
  LB_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON"));
  LB_RETURN_IF_ERROR(Exec(db, kSchema));
  LB_RETURN_IF_ERROR(Exec(db, ("PRAGMA user_version=" + std::to_string(kFormatVersion)).c_str()));
  return store;
}

int64_t SqliteStore::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now().time_since_epoch()).count();
}

Result<std::optional<KeyValue>> SqliteStore::GetLocked(std::string_view key) {
  Stmt s(db_, "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key = ?");
  if (!s.ok()) return SqlError(db_, "get");
  s.Bind(1, key);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<KeyValue>(ReadKv(s));
  if (rc != SQLITE_DONE) return SqlError(db_, "get");
  return std::optional<KeyValue>();
}

Result<int64_t> SqliteStore::BumpRevisionLocked() {
  Stmt s(db_, "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value");
  if (!s.ok() || s.Step() != SQLITE_ROW) return SqlError(db_, "bump revision");
  return s.Int(0);
}

Status SqliteStore::DeleteKeysOfLeaseLocked(LeaseId lease, std::vector<Event>& events) {
  std::vector<std::string> keys;
  {
    Stmt s(db_, "SELECT key FROM kv WHERE lease = ? ORDER BY key");
    if (!s.ok()) return SqlError(db_, "lease keys");
    s.Bind(1, lease);
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) keys.push_back(s.Blob(0));
    if (rc != SQLITE_DONE) return SqlError(db_, "lease keys");
  }
  for (const auto& k : keys) LB_RETURN_IF_ERROR(DeleteKeyLocked(k, events));
  Stmt l(db_, "DELETE FROM leases WHERE id = ?");
  l.Bind(1, lease);
  return l.Run("delete lease");
}

Status SqliteStore::DeleteKeyLocked(std::string_view key, std::vector<Event>& events) {
  LB_ASSIGN_OR_RETURN(int64_t rev, BumpRevisionLocked());
  Stmt d(db_, "DELETE FROM kv WHERE key = ?");
  d.Bind(1, key);
  LB_RETURN_IF_ERROR(d.Run("delete"));
  Event e;
  e.type = Event::Type::kDelete;
  e.kv.key = std::string(key);
  e.kv.mod_revision = rev;
  events.push_back(std::move(e));
  return Ok();
}

Status SqliteStore::ExpireLocked(std::vector<Event>& events) {
  std::vector<LeaseId> expired;
  {
    Stmt s(db_, "SELECT id FROM leases WHERE expires_ms <= ?");
    if (!s.ok()) return SqlError(db_, "expired leases");
    s.Bind(1, NowMs());
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) expired.push_back(s.Int(0));
    if (rc != SQLITE_DONE) return SqlError(db_, "expired leases");
  }
  for (LeaseId id : expired) LB_RETURN_IF_ERROR(DeleteKeysOfLeaseLocked(id, events));
  return Ok();
}

bool SqliteStore::CheckExpect(const std::optional<KeyValue>& cur, Expect expect) const {
  switch (expect.kind) {
    case Expect::Kind::kAny: return true;
    case Expect::Kind::kAbsent: return !cur.has_value();
    case Expect::Kind::kRevision: return cur.has_value() && cur->mod_revision == expect.mod_revision;
  }
  return false;
}

void SqliteStore::Notify(const std::vector<Event>& events) {
  if (events.empty()) return;
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    std::lock_guard lock(watch_mu_);
    watchers = watchers_;
  }
  for (const auto& e : events) {
    for (const auto& w : watchers) {
      if (std::string_view(e.kv.key).substr(0, w->prefix.size()) != w->prefix) continue;
      std::lock_guard wl(w->mu);
      if (w->alive) w->fn(e);
    }
  }
}

Status SqliteStore::ExpireLeases() {
  std::vector<Event> events;
  {
    std::lock_guard lock(mu_);
    {  // Reads call this: open a write transaction only when a lease is due.
      Stmt due(db_, "SELECT 1 FROM leases WHERE expires_ms <= ? LIMIT 1");
      if (!due.ok()) return SqlError(db_, "expired leases");
      due.Bind(1, NowMs());
      int rc = due.Step();
      if (rc == SQLITE_DONE) return Ok();
      if (rc != SQLITE_ROW) return SqlError(db_, "expired leases");
    }
    Tx tx(db_);
    LB_RETURN_IF_ERROR(tx.status());
    LB_RETURN_IF_ERROR(ExpireLocked(events));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  Notify(events);
  return Ok();
}

Result<std::optional<KeyValue>> SqliteStore::Get(std::string_view key) {
  LB_RETURN_IF_ERROR(ExpireLeases());
  std::lock_guard lock(mu_);
  return GetLocked(key);
}

Result<std::vector<KeyValue>> SqliteStore::List(std::string_view prefix) {
  LB_RETURN_IF_ERROR(ExpireLeases());
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT key, value, create_rev, mod_rev, version, lease FROM kv "
         "WHERE substr(key, 1, ?) = ? ORDER BY key");
  if (!s.ok()) return SqlError(db_, "list");
  s.Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
  std::vector<KeyValue> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadKv(s));
  if (rc != SQLITE_DONE) return SqlError(db_, "list");
  return out;
}

template <typename T, typename Apply>
Result<T> SqliteStore::Mutate(std::string_view key, Expect expect, Apply apply) {
  std::vector<Event> events;
  std::optional<Result<T>> result;
  {
    std::lock_guard lock(mu_);
    Tx tx(db_);
    LB_RETURN_IF_ERROR(tx.status());
    LB_RETURN_IF_ERROR(ExpireLocked(events));
    LB_ASSIGN_OR_RETURN(auto cur, GetLocked(key));
    if (!CheckExpect(cur, expect)) {
      return Aborted("state store: key '" + std::string(key) + "' changed since it was read (now at revision " +
                     std::to_string(cur ? cur->mod_revision : 0) + ")");
    }
    result.emplace(apply(cur, events));
    if (!result->ok()) return *std::move(result);
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  Notify(events);
  return *std::move(result);
}

Result<int64_t> SqliteStore::Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) {
  if (key.empty()) return InvalidArgument("state store: empty key");
  return Mutate<int64_t>(key, expect, [&](const std::optional<KeyValue>& cur, std::vector<Event>& events) -> Result<int64_t> {
    if (lease != 0) {
      Stmt l(db_, "SELECT 1 FROM leases WHERE id = ? LIMIT 1");
      l.Bind(1, lease);
      if (l.Step() != SQLITE_ROW) return NotFound("state store: lease " + std::to_string(lease) + " has expired");
    }
    LB_ASSIGN_OR_RETURN(int64_t rev, BumpRevisionLocked());
    KeyValue kv;
    kv.key = std::string(key);
    kv.value = std::string(value);
    kv.create_revision = cur ? cur->create_revision : rev;
    kv.mod_revision = rev;
    kv.version = cur ? cur->version + 1 : 1;
    kv.lease = lease;
    Stmt s(db_, "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, version, lease) VALUES (?,?,?,?,?,?)");
    s.Bind(1, kv.key).Bind(2, kv.value).Bind(3, kv.create_revision).Bind(4, kv.mod_revision).Bind(5, kv.version);
    s.Bind(6, kv.lease);
    LB_RETURN_IF_ERROR(s.Run("put"));
    events.push_back({Event::Type::kPut, std::move(kv)});
    return rev;
  });
}

Result<bool> SqliteStore::Delete(std::string_view key, Expect expect) {
  return Mutate<bool>(key, expect, [&](const std::optional<KeyValue>& cur, std::vector<Event>& events) -> Result<bool> {
    if (!cur) return false;
    LB_RETURN_IF_ERROR(DeleteKeyLocked(key, events));
    return true;
  });
}

Result<LeaseId> SqliteStore::Grant(Duration ttl) {
  auto ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
  if (ttl_ms <= 0) return InvalidArgument("state store: a lease needs a TTL above zero");
  std::lock_guard lock(mu_);
  Tx tx(db_);
  LB_RETURN_IF_ERROR(tx.status());
  LeaseId id;
  {  // finalized before COMMIT, which fails while a statement is pending
    Stmt n(db_, "UPDATE meta SET value = value + 1 WHERE name = 'next_lease' RETURNING value - 1");
    if (!n.ok() || n.Step() != SQLITE_ROW) return SqlError(db_, "grant lease");
    id = n.Int(0);
  }
  Stmt s(db_, "INSERT INTO leases(id, ttl_ms, expires_ms) VALUES (?,?,?)");
  s.Bind(1, id).Bind(2, ttl_ms).Bind(3, NowMs() + ttl_ms);
  LB_RETURN_IF_ERROR(s.Run("grant lease"));
  LB_RETURN_IF_ERROR(tx.Commit());
  return id;
}

Status SqliteStore::KeepAlive(LeaseId lease) {
  LB_RETURN_IF_ERROR(ExpireLeases());
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE leases SET expires_ms = ? + ttl_ms WHERE id = ?");
  s.Bind(1, NowMs()).Bind(2, lease);
  LB_RETURN_IF_ERROR(s.Run("keep lease alive"));
  if (sqlite3_changes(db_) == 0) return NotFound("state store: lease " + std::to_string(lease) + " has expired");
  return Ok();
}

Status SqliteStore::Revoke(LeaseId lease) {
  std::vector<Event> events;
  {
    std::lock_guard lock(mu_);
    Tx tx(db_);
    LB_RETURN_IF_ERROR(tx.status());
    LB_RETURN_IF_ERROR(DeleteKeysOfLeaseLocked(lease, events));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  Notify(events);
  return Ok();
}

std::unique_ptr<WatchHandle> SqliteStore::Watch(std::string_view prefix, std::function<void(const Event&)> fn) {
  auto w = std::make_shared<Watcher>();
  w->prefix = std::string(prefix);
  w->fn = std::move(fn);
  {
    std::lock_guard lock(watch_mu_);
    watchers_.push_back(w);
  }
  return std::make_unique<Handle>([this, w] {
    {
      std::lock_guard lock(watch_mu_);
      watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
    }
    std::lock_guard wl(w->mu);
    w->alive = false;
  });
}

Result<int64_t> SqliteStore::Revision() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value FROM meta WHERE name = 'revision'");
  if (!s.ok() || s.Step() != SQLITE_ROW) return SqlError(db_, "revision");
  return s.Int(0);
}

}  // namespace lifeboat::state
