// For tests only: opening each kind of state store the same way, so that one
// contract suite (store_contract_test.cc) runs against all of them.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "core/units.h"
#include "state/store.h"

namespace lifeboat::state {

// "embedded", "etcd".
std::vector<std::string> TestStoreKinds();

// A fresh store of `kind` for the test `name`: the embedded one in `dir`;
// for etcd, the cluster named by LIFEBOAT_TEST_ETCD (comma-separated
// endpoints) under a key prefix of its own; nullptr (the test skips) when
// LIFEBOAT_TEST_ETCD is not set.
Result<std::unique_ptr<Store>> OpenTestStore(const std::string& kind, const std::string& dir, const std::string& name);

// A store in front of another that can be cut off: while cut, every call
// fails Unavailable, as a store behind a partition does (watches already
// running go on: a partition test cuts calls, not streams).
class CuttableStore final : public Store {
 public:
  explicit CuttableStore(Store& inner) : inner_(inner) {}
  void Cut(bool cut) { cut_ = cut; }

  std::string Describe() const override { return "cuttable " + inner_.Describe(); }
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

 private:
  Store& inner_;
  std::atomic<bool> cut_{false};
};

// A deterministic in-memory store on a clock of the caller's (the
// simulation test): leases expire when `now()` passes their deadline, checked
// at every call. Single revision counter, CAS and transactions as the real
// stores. No watches: Watch returns a handle that never calls (simulated
// agents poll).
class SimStore final : public Store {
 public:
  explicit SimStore(std::function<Duration()> now) : now_(std::move(now)) {}

  std::string Describe() const override { return "simulated"; }
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

 private:
  struct Lease {
    Duration ttl, deadline;
  };
  void ExpireLocked();
  bool HoldsLocked(const Compare& c) const;
  void PutLocked(const std::string& key, std::string_view value, LeaseId lease);

  std::function<Duration()> now_;
  std::mutex mu_;
  std::map<std::string, KeyValue, std::less<>> kvs_;
  std::map<LeaseId, Lease> leases_;
  int64_t revision_ = 0;
  LeaseId next_lease_ = 1;
};

// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
bool WaitUntil(const std::function<bool()>& cond, Duration timeout);

}  // namespace lifeboat::state
