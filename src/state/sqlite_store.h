// The embedded state store: one SQLite file in the agent's data dir, in WAL
// mode with full sync, so a committed change survives a crash or power loss.
// One process owns the file at a time (the agent locks its data dir). The
// schema is in docs/format/state-sqlite.md.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "state/store.h"

struct sqlite3;

namespace lifeboat::state {

class SqliteStore final : public Store {
 public:
  // Opens or creates the store at `path`. FailedPrecondition for a file from
  // a newer lifeboat; DataLoss when SQLite finds the file damaged.
  // `clock` must outlive the store.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path, Clock& clock = Clock::Real());
  ~SqliteStore() override;

  Result<std::optional<KeyValue>> Get(std::string_view key) override;
  Result<std::vector<KeyValue>> List(std::string_view prefix) override;
  Result<int64_t> Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) override;
  Result<bool> Delete(std::string_view key, Expect expect) override;
  Result<LeaseId> Grant(Duration ttl) override;
  Status KeepAlive(LeaseId lease) override;
  Status Revoke(LeaseId lease) override;
  std::unique_ptr<WatchHandle> Watch(std::string_view prefix, std::function<void(const Event&)> fn) override;
  Result<int64_t> Revision() override;

  // Deletes the keys of expired leases now (also done before every call).
  Status ExpireLeases();

  static constexpr int kFormatVersion = 1;

 private:
  class Tx;
  struct Watcher;
  SqliteStore(sqlite3* db, Clock& clock, std::string path);

  // Runs `apply(current value of key, events)` in a write transaction, after
  // expiring leases and checking `expect` against the key; commits, then
  // notifies watchers of `events`.
  template <typename T, typename Apply>
  Result<T> Mutate(std::string_view key, Expect expect, Apply apply);

  // All below run with mu_ held, inside a transaction.
  Result<std::optional<KeyValue>> GetLocked(std::string_view key);
  Result<int64_t> BumpRevisionLocked();
  Status ExpireLocked(std::vector<Event>& events);
  Status DeleteKeysOfLeaseLocked(LeaseId lease, std::vector<Event>& events);
  // Deletes `key` (which exists) with a new revision and records the event.
  Status DeleteKeyLocked(std::string_view key, std::vector<Event>& events);
  bool CheckExpect(const std::optional<KeyValue>& cur, Expect expect) const;
  void Notify(const std::vector<Event>& events);
  int64_t NowMs() const;

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
  Clock& clock_;
  std::string path_;

  std::mutex watch_mu_;
  std::vector<std::shared_ptr<Watcher>> watchers_;  // guarded by watch_mu_
};

}  // namespace lifeboat::state
