// What the backup commands share (backup_cmd.cc) with the cluster backup
// and restore commands (cluster_cmd.cc): their flags, the plan's location
// and its open repository, a backup found by id, and how one is described.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "repo/repository.h"

namespace lifeboat::cli {

using Json = nlohmann::ordered_json;  // keys print in the order written

struct BackupCliOptions {
  std::string plan_file, location, password_file, output = "table";
  // repo
  bool no_encryption = false, read_data = false;
  // backup create
  std::string volume, region, path;
  std::vector<std::string> tags;
  // describe / delete / restore
  std::string id, to;
  std::vector<std::string> include;
  // clusters: backup create --cluster, restore --cluster / --to-dir
  std::string cluster, selector, cluster_resources = "auto", existing = "skip", to_dir;
  std::vector<std::string> namespaces, exclude_namespaces, resources, exclude_resources;
  std::vector<std::string> namespace_map, storage_class_map;
  bool dry_run = false, volume_data = false;
};

// The plan and one of its locations: named, or the only one.
struct Target {
  plan::Plan plan;
  const plan::Location* location = nullptr;
};

std::optional<Target> LoadTarget(const BackupCliOptions& o, int& exit_code);
std::unique_ptr<repo::Repository> OpenRepo(const Target& t, const BackupCliOptions& o, int& exit_code);

// The location's repository, open.
struct Opened {
  Target target;
  std::unique_ptr<repo::Repository> repo;
};
std::optional<Opened> OpenTarget(const BackupCliOptions& o, int& exit_code);

// The repository and the backup `o.id` names (a unique prefix is enough).
struct Found {
  Opened opened;
  repo::Snapshot snapshot;
};
std::optional<Found> FindBackup(const BackupCliOptions& o, int& exit_code);

Json StatsJson(const repo::Snapshot& s);
std::string Describe(const repo::Snapshot& s);

// cluster_cmd.cc: `backup create --cluster`, and `restore` of a cluster backup.
int ClusterBackupCreate(const BackupCliOptions& o);
int ClusterRestore(const BackupCliOptions& o, const Found& found);

}  // namespace lifeboat::cli
