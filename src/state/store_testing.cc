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

}  // namespace lifeboat::state
