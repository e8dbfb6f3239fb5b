// The state store: the small amount of state that must survive a restart and
// be agreed between regions (routing controls, the failover epoch, who runs a
// failover, drill history). Modelled on etcd v3, which is one of its two
// implementations (etcd_store.h; the other is the embedded SQLite file that
// every agent on one machine shares, sqlite_store.h): every change gets a
// store-wide revision, writes can be conditional on keys' revisions
// (compare-and-swap, also across several keys in one transaction), keys can
// be bound to a lease that expires unless kept alive, and changes can be
// watched by prefix from any revision still in the history.
//
// Every call has a deadline (the store's `timeout`): past it the call fails
// with DeadlineExceeded or Unavailable and the caller decides. Changes made by
// other processes and other regions are seen exactly like one's own.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/units.h"

namespace lifeboat::state {

using LeaseId = int64_t;  // 0: no lease

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;  // revision of the put that created it
  int64_t mod_revision = 0;     // revision of its last change
  int64_t version = 0;          // puts since it was created
  LeaseId lease = 0;
};

struct Event {
  enum class Type {
    kPut,
    kDelete,
    // The history the watch asked for is gone (compacted): no event follows.
    // kv.mod_revision is the oldest revision still available. Re-read with
    // List() and watch again from its revision + 1.
    kCompacted,
  };
  Type type = Type::kPut;
  KeyValue kv;  // for a delete: the key and the revision of the delete
};

// A precondition checked atomically with a write.
struct Expect {
  enum class Kind { kAny, kAbsent, kRevision };
  Kind kind = Kind::kAny;
  int64_t mod_revision = 0;

  static Expect Any() { return {}; }
  static Expect Absent() { return {Kind::kAbsent, 0}; }
  // The key exists and was last changed at `rev`.
  static Expect Revision(int64_t rev) { return {Kind::kRevision, rev}; }
};

// One condition of a transaction: `key` as `expect` says.
struct Compare {
  std::string key;
  Expect expect;
};

// One write of a transaction.
struct Op {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key, value;
  LeaseId lease = 0;

  static Op Put(std::string key, std::string value, LeaseId lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), lease};
  }
  static Op Delete(std::string key) { return {Kind::kDelete, std::move(key), {}, 0}; }
};

// Keys read together, and the store's revision at the moment they were read:
// watching from `revision + 1` misses nothing and repeats nothing.
struct Range {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// Stops its watch when destroyed: once the destructor returns, the callback
// is never called again (it waits for a call in progress).
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

// Implementations are safe to use from several threads.
class Store {
 public:
  virtual ~Store() = default;

  // "embedded /var/lib/lifeboat/shop/state.db", "etcd https://10.0.0.1:2379,...".
  virtual std::string Describe() const = 0;

  virtual Result<std::optional<KeyValue>> Get(std::string_view key) = 0;
  // Every key starting with `prefix`, in key order.
  virtual Result<Range> List(std::string_view prefix) = 0;
  // Writes `value`; Aborted when `expect` does not hold (re-read and retry).
  // NotFound when `lease` has expired. Returns the revision of the write.
  virtual Result<int64_t> Put(std::string_view key, std::string_view value, Expect expect = Expect::Any(),
                              LeaseId lease = 0) = 0;
  // Deletes the key; false when it was absent. Aborted when `expect` does not hold.
  virtual Result<bool> Delete(std::string_view key, Expect expect = Expect::Any()) = 0;
  // Applies every op, atomically, when every compare holds; Aborted naming a
  // key whose compare failed otherwise (nothing is written). Returns the
  // store's revision after the transaction.
  virtual Result<int64_t> Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) = 0;

  // A lease that expires `ttl` after its grant or last keep-alive; its keys
  // are deleted when it expires or is revoked. etcd counts TTLs in whole
  // seconds: a TTL is rounded up to one.
  virtual Result<LeaseId> Grant(Duration ttl) = 0;
  // NotFound when the lease has expired (its keys are gone: start over).
  virtual Status KeepAlive(LeaseId lease) = 0;
  virtual Status Revoke(LeaseId lease) = 0;

  // Calls `fn` for every change under `prefix` at a revision >= `from_revision`
  // (0: every change after Watch returns), in revision order, on a thread of
  // the store's (never the caller's nor the writer's), until the handle is
  // destroyed. When that history is gone, `fn` gets one kCompacted event and
  // nothing else. `fn` must not destroy its own handle.
  virtual std::unique_ptr<WatchHandle> Watch(std::string_view prefix, int64_t from_revision,
                                             std::function<void(const Event&)> fn) = 0;

  // The store-wide revision of the last change.
  virtual Result<int64_t> Revision() = 0;
  // Forgets the history of changes before `revision` (watches from there get
  // kCompacted). Stores also compact by themselves.
  virtual Status Compact(int64_t revision) = 0;
};

// The options every store takes.
struct StoreOptions {
  Duration timeout = std::chrono::seconds(5);  // the deadline of every call
};

}  // namespace lifeboat::state
