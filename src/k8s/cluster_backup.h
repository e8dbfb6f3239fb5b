// Backup of a cluster's objects into a lifeboat repository, and their
// restore into a cluster (or as manifests into a directory).
//
// A cluster backup is an ordinary snapshot (source "cluster:<region>"): one
// file per object, resources/<resource>[.<group>]/namespaces/<ns>/<name>.json
// (cluster-scoped: .../cluster/<name>.json), the object as the API server
// returned it at the version discovery prefers, and lifeboat-backup.json at
// the root (the kinds with group, version, scope and count; what could not
// be listed). Objects stream from paged LISTs into the repository: memory
// holds one page and a small record per object, never the objects.
// docs/kubernetes.md describes the rules.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "k8s/client.h"
#include "k8s/rules.h"
#include "k8s/volume_data.h"
#include "repo/repository.h"

namespace lifeboat::k8s {

enum class ClusterResources { kAuto, kInclude, kExclude };
// "true", "false", anything else (the plan and the CLI check it): auto.
inline ClusterResources ClusterResourcesOf(const std::string& s) {
  return s == "true" ? ClusterResources::kInclude : s == "false" ? ClusterResources::kExclude : ClusterResources::kAuto;
}

struct Selection {
  std::vector<std::string> namespaces;          // globs; empty: all
  std::vector<std::string> exclude_namespaces;  // globs
  std::vector<std::string> resources;           // "deployments", "deployments.apps", "deploy", "Deployment"; empty: all
  std::vector<std::string> exclude_resources;
  // Whether a kind the lists name matches `r` (by plural, qualified name,
  // kind or short name: the discovery's names).
  static bool Names(const std::vector<std::string>& list, const ApiResource& r);
  bool NamespaceIncluded(const std::string& ns) const;
};

struct ClusterBackupOptions {
  std::string cluster;  // the region whose cluster it is, for the source and messages
  Selection select;
  std::string selector;  // label selector, sent to the server
  ClusterResources cluster_resources = ClusterResources::kAuto;
  std::vector<std::string> tags;
  std::string schedule;
  int page_size = 500;
  // Set: the files of the PVCs running pods mount are backed up too, by the
  // node agents (k8s/volume_data.h), and linked from lifeboat-backup.json.
  std::optional<VolumeBackupOptions> volumes;
};

struct ClusterProgress {
  std::atomic<uint64_t> objects{0}, bytes{0}, kinds_done{0}, kinds_total{0};
  std::atomic<uint64_t> volumes_done{0};  // PVCs whose files were backed up (or failed)
};

struct ClusterBackupResult {
  repo::Snapshot snapshot;
  uint64_t objects = 0;
  std::vector<std::string> errors;  // kinds that could not be listed, with the server's reason
  std::vector<std::string> skipped_groups;  // discovery failures
  std::vector<VolumeLink> volumes;          // with options.volumes: one per PVC
};

Result<ClusterBackupResult> BackupCluster(repo::Repository& repo, Client& client, const ClusterBackupOptions& options,
                                          ClusterProgress* progress = nullptr);

enum class Existing { kSkip, kUpdate };

struct ClusterRestoreOptions {
  Selection select;
  RestoreMapping mapping;
  Existing existing = Existing::kSkip;
  bool dry_run = false;
  std::string to_dir;  // write manifests here instead of calling the API
  std::chrono::seconds crd_wait{60};
  // Objects of one kind are created by this many connections at once, each
  // with its share of the cluster's rate limit.
  int workers = 4;
  // The PVCs' files the backup links to, restored through the target's
  // node agents (k8s/volume_data.h). Unset, or with to_dir: not restored
  // (the report says so).
  std::optional<VolumeRestoreOptions> volumes;
};

// One item's outcome: created, updated, skipped, failed (or would-create,
// would-update, would-skip in a dry run; written with --to-dir). A PVC's
// files are an item of kind "volume-data": restored (would-restore) or
// failed.
struct ItemResult {
  std::string kind;  // qualified resource
  std::string ns, name;  // after mapping
  std::string result;
  std::string reason;
};

struct ClusterRestoreResult {
  std::vector<ItemResult> items;
  std::vector<std::string> order;  // kinds in the order they were restored
  std::vector<std::string> notes;  // cycles broken, kinds waited for
  uint64_t created = 0, updated = 0, skipped = 0, failed = 0, written = 0, restored = 0;
  bool Failed() const { return failed > 0; }
};

// `client` may be null with options.to_dir set. Never writes to the
// repository (a ReadOnly location stays untouched).
Result<ClusterRestoreResult> RestoreCluster(repo::Repository& repo, const repo::Snapshot& snapshot, Client* client,
                                            const ClusterRestoreOptions& options,
                                            const std::function<void(const ItemResult&)>& on_item = {});

// True when the snapshot is a cluster backup.
bool IsClusterBackup(const repo::Snapshot& s);

// A cluster backup's lifeboat-backup.json from its loaded root tree: the
// parsed document, discarded when it is not JSON, null when there is none.
Result<Json> ReadBackupMeta(repo::Repository& repo, const repo::Tree& root);

// The snapshots of PVC files a cluster backup links to (none for another
// backup): retention deletes them with it. The repository's index must be
// loaded (it is after a backup with it).
Result<std::vector<std::string>> LinkedVolumeSnapshots(repo::Repository& repo, const repo::Snapshot& s);

}  // namespace lifeboat::k8s
