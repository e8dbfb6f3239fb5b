// The state store: the small amount of state that must survive a restart and,
// in production, be agreed between regions (routing controls, the failover
// epoch, drill history). Modelled on etcd so that an etcd implementation can
// sit behind the same interface: every change gets a store-wide revision,
// writes can be conditional on a key's revision (compare-and-swap), keys can
// be bound to a lease that expires unless kept alive, and changes can be
// watched by prefix.
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
  enum class Type { kPut, kDelete };
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

// Stops its watch when destroyed.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

// Implementations are safe to use from several threads.
class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::optional<KeyValue>> Get(std::string_view key) = 0;
  // Every key starting with `prefix`, in key order.
  virtual Result<std::vector<KeyValue>> List(std::string_view prefix) = 0;
  // Writes `value`; Aborted when `expect` does not hold (re-read and retry).
  // Returns the revision of the write.
  virtual Result<int64_t> Put(std::string_view key, std::string_view value, Expect expect = Expect::Any(),
                              LeaseId lease = 0) = 0;
  // Deletes the key; false when it was absent. Aborted when `expect` does not hold.
  virtual Result<bool> Delete(std::string_view key, Expect expect = Expect::Any()) = 0;

  // A lease that expires `ttl` after its grant or last keep-alive; its keys
  // are deleted when it expires or is revoked.
  virtual Result<LeaseId> Grant(Duration ttl) = 0;
  // NotFound when the lease has expired (its keys are gone: start over).
  virtual Status KeepAlive(LeaseId lease) = 0;
  virtual Status Revoke(LeaseId lease) = 0;

  // Calls `fn` for every change under `prefix` made after Watch returns, in
  // revision order, on the thread that made the change, until the handle is
  // destroyed (after which it is never called). `fn` must not call back into
  // the store nor destroy its own handle.
  virtual std::unique_ptr<WatchHandle> Watch(std::string_view prefix, std::function<void(const Event&)> fn) = 0;

  // The store-wide revision of the last change.
  virtual Result<int64_t> Revision() = 0;
};

}  // namespace lifeboat::state
