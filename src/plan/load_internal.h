// Internal to plan/: the section loaders that load.cc calls in dependency
// order (regions before everything that names a region, and so on).
#pragma once

#include <unordered_set>

#include "plan/plan.h"
#include "plan/reader.h"

namespace lifeboat::plan {

// Reports a name that is not [A-Za-z0-9_.-]{1,63} (names end up in metric
// labels, file names and DNS).
bool CheckName(Context& ctx, const Map::Entry& e, const std::string& what);
// The names of one kind of thing (regions, endpoints, ...), in plan order
// for messages and hashed for lookups.
struct NameSet {
  std::vector<std::string> ordered;
  std::unordered_set<std::string> set;
  bool contains(const std::string& n) const { return set.count(n) != 0; }
};

// Reports `name` at `at` when it is not in `known`, suggesting the closest.
bool CheckRef(Context& ctx, const YAML::Mark& at, const std::string& path, const std::string& name,
              const NameSet& known, const std::string& what);

void LoadDns(const Map& top, Plan& plan);
void LoadProxy(const Map& top, Plan& plan);
void LoadVolumes(const Map& top, Plan& plan);
void LoadDatabases(const Map& top, Plan& plan);
void LoadBackup(const Map& top, Plan& plan);
void LoadClusters(const Map& top, Plan& plan);

template <typename T>
NameSet NamesOf(const std::vector<T>& items) {
  NameSet out;
  for (const auto& i : items) {
    out.ordered.push_back(i.name);
    out.set.insert(i.name);
  }
  return out;
}

}  // namespace lifeboat::plan
