#include "state/open.h"

#include <filesystem>

#include "state/etcd_store.h"
#include "state/sqlite_store.h"

namespace lifeboat::state {

std::string EmbeddedStorePath(const plan::Plan& plan, const std::string& data_dir) {
  if (!plan.state.path.empty()) return plan.state.path;
  std::filesystem::path dir = std::filesystem::absolute(data_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // a trailing '/'
  return (dir.parent_path() / (plan.name + "-state.db")).string();
}

Result<std::unique_ptr<Store>> OpenPlanStore(const plan::Plan& plan, const std::string& data_dir) {
  const plan::StateConfig& c = plan.state;
  if (c.store == plan::StoreKind::kEtcd) {
    EtcdOptions o;
    o.endpoints = c.endpoints;
    o.prefix = c.prefix;
    o.ca_file = c.ca_file;
    o.cert_file = c.cert_file;
    o.key_file = c.key_file;
    o.timeout = c.timeout;
    auto s = EtcdStore::Open(std::move(o));
    if (!s.ok()) return s.error().Wrap("state store (plan section state)");
    return std::unique_ptr<Store>(std::move(*s));
  }
  StoreOptions o;
  o.timeout = c.timeout;
  LB_ASSIGN_OR_RETURN(auto s, SqliteStore::Open(EmbeddedStorePath(plan, data_dir), Clock::Real(), o));
  return std::unique_ptr<Store>(std::move(s));
}

}  // namespace lifeboat::state
