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

}  // namespace lifeboat::state
