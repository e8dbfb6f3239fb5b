#include "state/sqlite_store.h"

#include <sqlite3.h>


#include <algorithm>
#include <cstring>
#include <thread>

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
  Stmt& BindText(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
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
CREATE TABLE IF NOT EXISTS events(
  rev INTEGER PRIMARY KEY, type INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
  create_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) SELECT 'compact_rev', value FROM meta WHERE name = 'revision';
)sql";

bool Holds(const std::optional<KeyValue>& cur, Expect expect) {
  switch (expect.kind) {
    case Expect::Kind::kAny: return true;
    case Expect::Kind::kAbsent: return !cur.has_value();
    case Expect::Kind::kRevision: return cur.has_value() && cur->mod_revision == expect.mod_revision;
  }
  return false;
}

}  // namespace

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
// A read transaction (`write` false) sees one snapshot of the file.
class SqliteStore::Tx {
 public:
  explicit Tx(sqlite3* db, bool write = true) : db_(db) { status_ = Exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN"); }
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
  int64_t next = 0;  // the next revision to deliver; only the watch thread touches it
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

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, Clock& clock, StoreOptions options) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Error e = db ? SqlError(db, "open state store " + path) : Internal("open state store " + path + ": out of memory");
    sqlite3_close_v2(db);
    return e;
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, clock, path));
  // Writers of other processes are waited for up to the deadline of a call.
  sqlite3_busy_timeout(db, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout).count()));
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
  // Switching a new file to WAL takes an exclusive lock, and SQLite refuses
  // it at once (the busy handler is not called) while another process opens
  // the same new file: the agents of a machine starting together. Asked
  // again until the deadline.
  for (auto deadline = std::chrono::steady_clock::now() + options.timeout;;) {
    Status wal = Exec(db, "PRAGMA journal_mode=WAL");
    if (wal.ok()) break;
    int code = sqlite3_errcode(db);
    if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline) {
      return std::move(wal).error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  LB_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL"));
  LB_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON"));
  {  // Schema and version in one transaction: two processes may open a new file at once.
    Tx tx(db);
    LB_RETURN_IF_ERROR(tx.status());
    LB_RETURN_IF_ERROR(Exec(db, kSchema));
    LB_RETURN_IF_ERROR(Exec(db, ("PRAGMA user_version=" + std::to_string(kFormatVersion)).c_str()));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
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

Result<int64_t> SqliteStore::MetaLocked(const char* name) {
  Stmt s(db_, "SELECT value FROM meta WHERE name = ?");
  if (!s.ok()) return SqlError(db_, name);
  s.BindText(1, name);
  if (s.Step() != SQLITE_ROW) return SqlError(db_, name);
  return s.Int(0);
}

Result<int64_t> SqliteStore::RevisionLocked() { return MetaLocked("revision"); }

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

Status SqliteStore::PutLocked(const std::string& key, const std::string& value, LeaseId lease,
                              std::vector<Event>& events) {
  if (key.empty()) return InvalidArgument("state store: empty key");
  if (lease != 0) {
    Stmt l(db_, "SELECT 1 FROM leases WHERE id = ? LIMIT 1");
    l.Bind(1, lease);
    if (l.Step() != SQLITE_ROW) return NotFound("state store: lease " + std::to_string(lease) + " has expired");
  }
  LB_ASSIGN_OR_RETURN(auto cur, GetLocked(key));
  LB_ASSIGN_OR_RETURN(int64_t rev, BumpRevisionLocked());
  KeyValue kv;
  kv.key = key;
  kv.value = value;
  kv.create_revision = cur ? cur->create_revision : rev;
  kv.mod_revision = rev;
  kv.version = cur ? cur->version + 1 : 1;
  kv.lease = lease;
  Stmt s(db_, "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, version, lease) VALUES (?,?,?,?,?,?)");
  s.Bind(1, kv.key).Bind(2, kv.value).Bind(3, kv.create_revision).Bind(4, kv.mod_revision).Bind(5, kv.version);
  s.Bind(6, kv.lease);
  LB_RETURN_IF_ERROR(s.Run("put"));
  events.push_back({Event::Type::kPut, std::move(kv)});
  return Ok();
}

Status SqliteStore::RecordLocked(const std::vector<Event>& events) {
  for (const auto& e : events) {
    Stmt s(db_, "INSERT INTO events(rev, type, key, value, create_rev, version, lease) VALUES (?,?,?,?,?,?,?)");
    s.Bind(1, e.kv.mod_revision).Bind(2, static_cast<int64_t>(e.type)).Bind(3, e.kv.key).Bind(4, e.kv.value);
    s.Bind(5, e.kv.create_revision).Bind(6, e.kv.version).Bind(7, e.kv.lease);
    LB_RETURN_IF_ERROR(s.Run("record history"));
  }
  if (events.empty()) return Ok();
  // The history keeps the last kHistory changes; older ones are compacted.
  int64_t last = events.back().kv.mod_revision;
  if (last % 1000 != 0 || last <= kHistory) return Ok();
  Stmt d(db_, "DELETE FROM events WHERE rev <= ?");
  d.Bind(1, last - kHistory);
  LB_RETURN_IF_ERROR(d.Run("compact history"));
  Stmt m(db_, "UPDATE meta SET value = max(value, ?) WHERE name = 'compact_rev'");
  m.Bind(1, last - kHistory);
  return m.Run("compact history");
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

void SqliteStore::Wake() {
  {
    std::lock_guard lock(watch_mu_);
    woken_ = true;
  }
  watch_cv_.notify_all();
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
    LB_RETURN_IF_ERROR(RecordLocked(events));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  if (!events.empty()) Wake();
  return Ok();
}

Result<std::optional<KeyValue>> SqliteStore::Get(std::string_view key) {
  LB_RETURN_IF_ERROR(ExpireLeases());
  std::lock_guard lock(mu_);
  return GetLocked(key);
}

Result<Range> SqliteStore::List(std::string_view prefix) {
  LB_RETURN_IF_ERROR(ExpireLeases());
  std::lock_guard lock(mu_);
  Tx tx(db_, false);  // one snapshot for the keys and the revision
  LB_RETURN_IF_ERROR(tx.status());
  Range out;
  LB_ASSIGN_OR_RETURN(out.revision, RevisionLocked());
  Stmt s(db_,
         "SELECT key, value, create_rev, mod_rev, version, lease FROM kv "
         "WHERE substr(key, 1, ?) = ? ORDER BY key");
  if (!s.ok()) return SqlError(db_, "list");
  s.Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.kvs.push_back(ReadKv(s));
  if (rc != SQLITE_DONE) return SqlError(db_, "list");
  return out;
}

template <typename T, typename Apply>
Result<T> SqliteStore::Mutate(const std::vector<Compare>& compares, Apply apply) {
  std::vector<Event> events;
  std::optional<Result<T>> result;
  {
    std::lock_guard lock(mu_);
    Tx tx(db_);
    LB_RETURN_IF_ERROR(tx.status());
    LB_RETURN_IF_ERROR(ExpireLocked(events));
    for (const auto& c : compares) {
      LB_ASSIGN_OR_RETURN(auto cur, GetLocked(c.key));
      if (!Holds(cur, c.expect)) {
        // Expired leases' deletions still happen.
        if (!events.empty() && RecordLocked(events).ok() && tx.Commit().ok()) Wake();
        return Aborted("state store: key '" + c.key + "' changed since it was read (now at revision " +
                       std::to_string(cur ? cur->mod_revision : 0) + ")");
      }
    }
    result.emplace(apply(events));
    if (!result->ok()) return *std::move(result);
    LB_RETURN_IF_ERROR(RecordLocked(events));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  Wake();
  return *std::move(result);
}

Result<int64_t> SqliteStore::Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) {
  std::string k(key);
  return Mutate<int64_t>({{k, expect}}, [&](std::vector<Event>& events) -> Result<int64_t> {
    LB_RETURN_IF_ERROR(PutLocked(k, std::string(value), lease, events));
    return events.back().kv.mod_revision;
  });
}

Result<bool> SqliteStore::Delete(std::string_view key, Expect expect) {
  std::string k(key);
  return Mutate<bool>({{k, expect}}, [&](std::vector<Event>& events) -> Result<bool> {
    LB_ASSIGN_OR_RETURN(auto cur, GetLocked(k));
    if (!cur) return false;
    LB_RETURN_IF_ERROR(DeleteKeyLocked(k, events));
    return true;
  });
}

Result<int64_t> SqliteStore::Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  return Mutate<int64_t>(compares, [&](std::vector<Event>& events) -> Result<int64_t> {
    for (const auto& op : ops) {
      if (op.kind == Op::Kind::kPut) {
        LB_RETURN_IF_ERROR(PutLocked(op.key, op.value, op.lease, events));
      } else {
        LB_ASSIGN_OR_RETURN(auto cur, GetLocked(op.key));
        if (cur) LB_RETURN_IF_ERROR(DeleteKeyLocked(op.key, events));
      }
    }
    return RevisionLocked();
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
    LB_RETURN_IF_ERROR(RecordLocked(events));
    LB_RETURN_IF_ERROR(tx.Commit());
  }
  Wake();
  return Ok();
}

std::unique_ptr<WatchHandle> SqliteStore::Watch(std::string_view prefix, int64_t from_revision,
                                                std::function<void(const Event&)> fn) {
  auto w = std::make_shared<Watcher>();
  w->prefix = std::string(prefix);
  w->fn = std::move(fn);
  w->next = from_revision;
  if (from_revision <= 0) {
    auto rev = Revision();
    // Unreadable now: the watch starts at the oldest history kept and the
    // caller gets kCompacted, which makes it re-read.
    w->next = rev.ok() ? *rev + 1 : 1;
  }
  {
    std::lock_guard lock(watch_mu_);
    watchers_.push_back(w);
    woken_ = true;
    if (!watch_thread_.joinable()) watch_thread_ = std::thread([this] { WatchLoop(); });
  }
  watch_cv_.notify_all();
  return std::make_unique<Handle>([this, w] {
    {
      std::lock_guard lock(watch_mu_);
      watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
    }
    std::lock_guard wl(w->mu);
    w->alive = false;
  });
}

void SqliteStore::WatchLoop() {
  for (;;) {
    std::vector<std::shared_ptr<Watcher>> watchers;
    {
      std::unique_lock lock(watch_mu_);
      watch_cv_.wait_for(lock, kPoll, [&] { return woken_ || stopping_; });
      if (stopping_) return;
      woken_ = false;
      watchers = watchers_;
    }
    (void)ExpireLeases();  // leases run out also when nobody calls
    for (const auto& w : watchers) Deliver(*w);
  }
}

void SqliteStore::Deliver(Watcher& w) {
  constexpr int64_t kBatch = 500;
  for (;;) {
    std::vector<Event> batch;
    int64_t revision = 0, compacted = 0;
    {
      std::lock_guard lock(mu_);
      Tx tx(db_, false);
      if (!tx.status().ok()) return;  // busy: the next poll tries again
      auto rev = RevisionLocked();
      auto cr = MetaLocked("compact_rev");
      if (!rev.ok() || !cr.ok()) return;
      revision = *rev;
      compacted = *cr;
      if (w.next <= compacted) {
        Event e;
        e.type = Event::Type::kCompacted;
        e.kv.mod_revision = compacted + 1;
        batch.push_back(std::move(e));
      } else {
        Stmt s(db_,
               "SELECT rev, type, key, value, create_rev, version, lease FROM events "
               "WHERE rev >= ? AND substr(key, 1, ?) = ? ORDER BY rev LIMIT ?");
        if (!s.ok()) return;
        s.Bind(1, w.next).Bind(2, static_cast<int64_t>(w.prefix.size())).Bind(3, w.prefix).Bind(4, kBatch);
        int rc;
        while ((rc = s.Step()) == SQLITE_ROW) {
          Event e;
          e.kv.mod_revision = s.Int(0);
          e.type = s.Int(1) == static_cast<int64_t>(Event::Type::kDelete) ? Event::Type::kDelete : Event::Type::kPut;
          e.kv.key = s.Blob(2);
          e.kv.value = s.Blob(3);
          e.kv.create_revision = s.Int(4);
          e.kv.version = s.Int(5);
          e.kv.lease = s.Int(6);
          batch.push_back(std::move(e));
        }
        if (rc != SQLITE_DONE) return;
      }
    }
    std::lock_guard wl(w.mu);
    if (!w.alive) return;
    for (const auto& e : batch) {
      w.fn(e);
      if (e.type == Event::Type::kCompacted) {
        w.alive = false;  // nothing follows a kCompacted
        return;
      }
      w.next = e.kv.mod_revision + 1;
    }
    if (static_cast<int64_t>(batch.size()) < kBatch) {
      w.next = std::max(w.next, revision + 1);
      return;
    }
  }
}

Result<int64_t> SqliteStore::Revision() {
  std::lock_guard lock(mu_);
  return RevisionLocked();
}

Status SqliteStore::Compact(int64_t revision) {
  std::lock_guard lock(mu_);
  Tx tx(db_);
  LB_RETURN_IF_ERROR(tx.status());
  LB_ASSIGN_OR_RETURN(int64_t current, RevisionLocked());
  if (revision > current) {
    return InvalidArgument("state store: cannot compact at revision " + std::to_string(revision) +
                           ", beyond the current " + std::to_string(current));
  }
  Stmt d(db_, "DELETE FROM events WHERE rev < ?");
  d.Bind(1, revision);
  LB_RETURN_IF_ERROR(d.Run("compact history"));
  Stmt m(db_, "UPDATE meta SET value = max(value, ?) WHERE name = 'compact_rev'");
  m.Bind(1, revision - 1);
  LB_RETURN_IF_ERROR(m.Run("compact history"));
  return tx.Commit();
}

}  // namespace lifeboat::state
