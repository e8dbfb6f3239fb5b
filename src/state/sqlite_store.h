// The embedded state store: one SQLite file that every agent on one machine
// may share (the demo's regions, a test's agents), in WAL mode with full
// sync, so a committed change survives a crash or power loss. Writers in
// several processes take turns (BEGIN IMMEDIATE, waiting up to the store's
// timeout); every change is also appended to a history table, which a watch
// thread in each process reads, so a watch sees the changes of every process
// alike. The schema is in docs/format/state-sqlite.md.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "state/store.h"

struct sqlite3;

namespace lifeboat::state {

class SqliteStore final : public Store {
 public:
  // Opens or creates the store at `path` (":memory:" for one private to this
  // object). FailedPrecondition for a file from a newer lifeboat; DataLoss
  // when SQLite finds the file damaged. `clock` must outlive the store.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path, Clock& clock = Clock::Real(),
                                                   StoreOptions options = {});
  ~SqliteStore() override;

  std::string Describe() const override { return "embedded " + path_; }
  Result<std::optional<KeyValue>> Get(std::string_view key) override;
  Result<Range> List(std::string_view prefix) override;
  Result<int64_t> Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) override;
  Result<bool> Delete(std::string_view key, Expect expect) override;
  Result<int64_t> Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override;
  Result<LeaseId> Grant(Duration ttl) override;
  Status KeepAlive(LeaseId lease) override;
  Status Revoke(LeaseId lease) override;
  std::unique_ptr<WatchHandle> Watch(std::string_view prefix, int64_t from_revision,
                                     std::function<void(const Event&)> fn) override;
  Result<int64_t> Revision() override;
  Status Compact(int64_t revision) override;

  // Deletes the keys of expired leases now (also done before every call and
  // by the watch thread every poll).
  Status ExpireLeases();

  static constexpr int kFormatVersion = 2;
  // Changes kept in the history for watches to resume from.
  static constexpr int64_t kHistory = 10000;
  // How often the watch thread looks for other processes' changes.
  static constexpr std::chrono::milliseconds kPoll{50};

 private:
  class Tx;
  struct Watcher;
  SqliteStore(sqlite3* db, Clock& clock, std::string path);

  // Runs `apply(events)` in a write transaction after expiring leases and
  // checking `compares`; records the events in the history, commits, then
  // wakes the watch thread.
  template <typename T, typename Apply>
  Result<T> Mutate(const std::vector<Compare>& compares, Apply apply);

  // All below run with mu_ held, inside a transaction.
  Result<std::optional<KeyValue>> GetLocked(std::string_view key);
  Result<int64_t> RevisionLocked();
  Result<int64_t> BumpRevisionLocked();
  Result<int64_t> MetaLocked(const char* name);
  Status ExpireLocked(std::vector<Event>& events);
  Status DeleteKeysOfLeaseLocked(LeaseId lease, std::vector<Event>& events);
  // Deletes `key` (which exists) with a new revision and records the event.
  Status DeleteKeyLocked(std::string_view key, std::vector<Event>& events);
  Status PutLocked(const std::string& key, const std::string& value, LeaseId lease, std::vector<Event>& events);
  Status RecordLocked(const std::vector<Event>& events);
  int64_t NowMs() const;

  void WatchLoop();
  // Delivers what the history holds for `w` beyond its position.
  void Deliver(Watcher& w);
  void Wake();

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
  Clock& clock_;
  std::string path_;

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  std::vector<std::shared_ptr<Watcher>> watchers_;  // guarded by watch_mu_
  bool woken_ = false;                              // guarded by watch_mu_
  bool stopping_ = false;                           // guarded by watch_mu_
  std::thread watch_thread_;                        // started by the first Watch
};

}  // namespace lifeboat::state
