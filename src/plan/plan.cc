#include "plan/plan.h"

#include <algorithm>

#include "core/strings.h"

namespace lifeboat::plan {

const char* Name(StoreKind k) { return k == StoreKind::kEtcd ? "etcd" : "embedded"; }

const char* Name(Pattern p) {
  switch (p) {
    case Pattern::kBackupRestore: return "backup-restore";
    case Pattern::kPilotLight: return "pilot-light";
    case Pattern::kWarmStandby: return "warm-standby";
    case Pattern::kActiveActive: return "active-active";
  }
  return "?";
}
std::vector<std::string> DefaultSteps(Pattern pattern, const std::vector<Hook>& hooks, const std::string& self_fence,
                                      const std::vector<Cluster>& clusters) {
  auto has = [&](const std::string& name) {
    return name != self_fence && std::any_of(hooks.begin(), hooks.end(), [&](const Hook& h) { return h.name == name; });
  };
  std::vector<std::string> steps = {"fence"};
  if (pattern == Pattern::kBackupRestore) {
    steps.push_back("restore");
  } else if (pattern != Pattern::kActiveActive) {
    steps.push_back("promote");
  }
  if (std::any_of(clusters.begin(), clusters.end(), [](const Cluster& c) { return c.restore.has_value(); })) {
    steps.push_back("restore-resources");
  }
  if (std::any_of(clusters.begin(), clusters.end(), [](const Cluster& c) { return !c.scale.empty(); })) {
    steps.push_back("scale");
  }
  if (has(kScaleUpHook)) steps.push_back(kScaleUpHook);
  steps.push_back("switch-traffic");
  for (const auto& h : hooks) {
    if (h.name != kScaleUpHook && h.name != self_fence) steps.push_back(h.name);
  }
  steps.push_back("verify");
  return steps;
}

const char* Name(Role r) {
  switch (r) {
    case Role::kPrimary: return "primary";
    case Role::kStandby: return "standby";
    case Role::kWitness: return "witness";
  }
  return "?";
}
const char* Name(CheckType t) {
  switch (t) {
    case CheckType::kHttp: return "http";
    case CheckType::kHttps: return "https";
    case CheckType::kTcp: return "tcp";
    case CheckType::kPostgres: return "postgres";
    case CheckType::kCalculated: return "calculated";
  }
  return "?";
}
const char* Name(RecordPolicy p) {
  switch (p) {
    case RecordPolicy::kSimple: return "simple";
    case RecordPolicy::kFailover: return "failover";
    case RecordPolicy::kWeighted: return "weighted";
    case RecordPolicy::kMultivalue: return "multivalue";
  }
  return "?";
}
const char* Name(ListenerProtocol p) { return p == ListenerProtocol::kUdp ? "udp" : "tcp"; }
const char* Name(ProxyPolicy p) {
  switch (p) {
    case ProxyPolicy::kFailover: return "failover";
    case ProxyPolicy::kWeighted: return "weighted";
    case ProxyPolicy::kNearest: return "nearest";
  }
  return "?";
}
const char* Name(LocationType t) { return t == LocationType::kS3 ? "s3" : "filesystem"; }
const char* Name(Access a) { return a == Access::kReadOnly ? "ReadOnly" : "ReadWrite"; }
const char* Name(S3Addressing a) {
  return a == S3Addressing::kPath ? "path" : a == S3Addressing::kVirtual ? "virtual" : "auto";
}
const char* Name(FailoverMode m) { return m == FailoverMode::kAutomatic ? "automatic" : "manual"; }
const char* Name(ReplicationMode m) { return m == ReplicationMode::kOff ? "off" : "continuous"; }
const char* Name(DbMode m) { return m == DbMode::kSync ? "sync" : "async"; }
const char* Name(StandbyDown s) { return s == StandbyDown::kBlock ? "block" : "degrade"; }

namespace {
template <typename T>
const T* FindByName(const std::vector<T>& items, const std::string& name) {
  for (const auto& i : items) {
    if (i.name == name) return &i;
  }
  return nullptr;
}
}  // namespace

const Region* Plan::FindRegion(const std::string& n) const { return FindByName(regions, n); }
const Check* Plan::FindCheck(const std::string& n) const { return FindByName(checks, n); }
const Endpoint* Plan::FindEndpoint(const std::string& n) const { return FindByName(endpoints, n); }

Duration Plan::LongestTtlTo(const std::string& region) const {
  Duration longest{0};
  if (!dns) return longest;
  auto in_region = [&](const std::string& endpoint) {
    const Endpoint* e = FindEndpoint(endpoint);
    return e != nullptr && e->region == region;
  };
  for (const auto& r : dns->records) {
    bool reaches = in_region(r.primary) || in_region(r.secondary);
    for (const auto& t : r.targets) reaches = reaches || in_region(t.endpoint);
    if (reaches) longest = std::max(longest, r.ttl);
  }
  return longest;
}
Result<const Region*> Plan::RequireRegion(const std::string& n) const {
  if (const Region* r = FindRegion(n)) return r;
  std::vector<std::string> names;
  std::vector<std::string_view> views;
  for (const auto& r : regions) names.push_back(r.name);
  for (const auto& name : names) views.push_back(name);
  std::string close = ClosestMatch(n, views);
  return InvalidArgument("region '" + n + "' is not in plan " + source + " (regions: " + Join(names, ", ") + ")" +
                         (close.empty() ? "" : "; did you mean '" + close + "'?"));
}

const Volume* Plan::FindVolume(const std::string& n) const { return FindByName(volumes, n); }
const Database* Plan::FindDatabase(const std::string& n) const { return FindByName(databases, n); }
const Cluster* Plan::FindCluster(const std::string& region) const {
  for (const auto& c : clusters) {
    if (c.region == region) return &c;
  }
  return nullptr;
}

const Location* Plan::FindLocation(const std::string& n) const { return FindByName(backup.locations, n); }
const Region* Plan::Primary() const {
  for (const auto& r : regions) {
    if (r.role == Role::kPrimary) return &r;
  }
  return nullptr;
}

}  // namespace lifeboat::plan
