#include "state/store_testing.h"

#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "state/etcd_store.h"
#include "state/sqlite_store.h"

namespace lifeboat::state {

std::vector<std::string> TestStoreKinds() { return {"embedded", "etcd"}; }

Result<std::unique_ptr<Store>> OpenTestStore(const std::string& kind, const std::string& dir, const std::string& name) {
  if (kind == "embedded") {
    LB_ASSIGN_OR_RETURN(auto s, SqliteStore::Open(dir + "/state.db"));
    return std::unique_ptr<Store>(std::move(s));
  }
  const char* endpoints = std::getenv("LIFEBOAT_TEST_ETCD");
  if (endpoints == nullptr || *endpoints == '\0') {
    return std::unique_ptr<Store>();
  }
  EtcdOptions o;
  for (std::string_view rest = endpoints; !rest.empty();) {
    size_t comma = rest.find(',');
    o.endpoints.emplace_back(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  o.prefix = "/lifeboat-test/" + std::to_string(::getpid()) + "/" + name + "/";
  LB_ASSIGN_OR_RETURN(auto s, EtcdStore::Open(std::move(o)));
  return std::unique_ptr<Store>(std::move(s));
}

bool WaitUntil(const std::function<bool()>& cond, Duration timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

namespace {
Error CutError() { return Unavailable("the state store is cut off (test partition)"); }
}  // namespace

Result<std::optional<KeyValue>> CuttableStore::Get(std::string_view key) {
  if (cut_) return CutError();
  return inner_.Get(key);
}
Result<Range> CuttableStore::List(std::string_view prefix) {
  if (cut_) return CutError();
  return inner_.List(prefix);
}
Result<int64_t> CuttableStore::Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) {
  if (cut_) return CutError();
  return inner_.Put(key, value, expect, lease);
}
Result<bool> CuttableStore::Delete(std::string_view key, Expect expect) {
  if (cut_) return CutError();
  return inner_.Delete(key, expect);
}
Result<int64_t> CuttableStore::Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  if (cut_) return CutError();
  return inner_.Txn(compares, ops);
}
Result<LeaseId> CuttableStore::Grant(Duration ttl) {
  if (cut_) return CutError();
  return inner_.Grant(ttl);
}
Status CuttableStore::KeepAlive(LeaseId lease) {
  if (cut_) return CutError();
  return inner_.KeepAlive(lease);
}
Status CuttableStore::Revoke(LeaseId lease) {
  if (cut_) return CutError();
  return inner_.Revoke(lease);
}
std::unique_ptr<WatchHandle> CuttableStore::Watch(std::string_view prefix, int64_t from_revision,
                                                  std::function<void(const Event&)> fn) {
  return inner_.Watch(prefix, from_revision, std::move(fn));
}
Result<int64_t> CuttableStore::Revision() {
  if (cut_) return CutError();
  return inner_.Revision();
}
Status CuttableStore::Compact(int64_t revision) {
  if (cut_) return CutError();
  return inner_.Compact(revision);
}

void SimStore::ExpireLocked() {
  Duration now = now_();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    bool deleted = false;
    for (auto kv = kvs_.begin(); kv != kvs_.end();) {
      if (kv->second.lease == it->first) {
        kv = kvs_.erase(kv);
        deleted = true;
      } else {
        ++kv;
      }
    }
    if (deleted) ++revision_;
    it = leases_.erase(it);
  }
}

bool SimStore::HoldsLocked(const Compare& c) const {
  auto it = kvs_.find(c.key);
  switch (c.expect.kind) {
    case Expect::Kind::kAny: return true;
    case Expect::Kind::kAbsent: return it == kvs_.end();
    case Expect::Kind::kRevision: return it != kvs_.end() && it->second.mod_revision == c.expect.mod_revision;
  }
  return false;
}

void SimStore::PutLocked(const std::string& key, std::string_view value, LeaseId lease) {
  KeyValue& kv = kvs_[key];
  if (kv.key.empty()) {
    kv.key = key;
    kv.create_revision = revision_;
    kv.version = 0;
  }
  kv.value = std::string(value);
  kv.mod_revision = revision_;
  kv.version++;
  kv.lease = lease;
}

Result<std::optional<KeyValue>> SimStore::Get(std::string_view key) {
  std::lock_guard lock(mu_);
  ExpireLocked();
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(it->second);
}

Result<Range> SimStore::List(std::string_view prefix) {
  std::lock_guard lock(mu_);
  ExpireLocked();
  Range out;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && it->first.starts_with(prefix); ++it) {
    out.kvs.push_back(it->second);
  }
  out.revision = revision_;
  return out;
}

Result<int64_t> SimStore::Put(std::string_view key, std::string_view value, Expect expect, LeaseId lease) {
  return Txn({{std::string(key), expect}}, {Op::Put(std::string(key), std::string(value), lease)});
}

Result<bool> SimStore::Delete(std::string_view key, Expect expect) {
  {
    std::lock_guard lock(mu_);
    ExpireLocked();
    if (!kvs_.count(key)) {
      if (!HoldsLocked({std::string(key), expect})) return Aborted("key " + std::string(key) + " does not match");
      return false;
    }
  }
  LB_RETURN_IF_ERROR(StatusOf(Txn({{std::string(key), expect}}, {Op::Delete(std::string(key))})));
  return true;
}

Result<int64_t> SimStore::Txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  std::lock_guard lock(mu_);
  ExpireLocked();
  for (const auto& c : compares) {
    if (!HoldsLocked(c)) return Aborted("key " + c.key + " does not match");
  }
  for (const auto& op : ops) {
    if (op.kind == Op::Kind::kPut && op.lease != 0 && !leases_.count(op.lease)) {
      return NotFound("lease " + std::to_string(op.lease) + " has expired");
    }
  }
  ++revision_;
  for (const auto& op : ops) {
    if (op.kind == Op::Kind::kPut) {
      PutLocked(op.key, op.value, op.lease);
    } else {
      kvs_.erase(op.key);
    }
  }
  return revision_;
}

Result<LeaseId> SimStore::Grant(Duration ttl) {
  std::lock_guard lock(mu_);
  ExpireLocked();
  LeaseId id = next_lease_++;
  leases_[id] = {ttl, now_() + ttl};
  return id;
}

Status SimStore::KeepAlive(LeaseId lease) {
  std::lock_guard lock(mu_);
  ExpireLocked();
  auto it = leases_.find(lease);
  if (it == leases_.end()) return NotFound("lease " + std::to_string(lease) + " has expired");
  it->second.deadline = now_() + it->second.ttl;
  return Ok();
}

Status SimStore::Revoke(LeaseId lease) {
  std::lock_guard lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) return Ok();
  it->second.deadline = Duration::min();
  ExpireLocked();
  return Ok();
}

namespace {
class NoWatch final : public WatchHandle {};
}  // namespace

std::unique_ptr<WatchHandle> SimStore::Watch(std::string_view, int64_t, std::function<void(const Event&)>) {
  return std::make_unique<NoWatch>();
}

Result<int64_t> SimStore::Revision() {
  std::lock_guard lock(mu_);
  ExpireLocked();
  return revision_;
}

Status SimStore::Compact(int64_t) { return Ok(); }

}  // namespace lifeboat::state
