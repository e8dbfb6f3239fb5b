// lifeboat backup create --cluster ; lifeboat restore ID --cluster | --to-dir
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "agent/auth.h"
#include "cli/backup_common.h"
#include "cli/common.h"
#include "core/units.h"
#include "k8s/cluster_backup.h"
#include "k8s/runbook.h"

namespace lifeboat::cli {
namespace {

using namespace std::chrono_literals;

// A progress line on stderr while the work runs, when stderr is a terminal.
class Ticker {
 public:
  explicit Ticker(std::function<std::string()> line) : line_(std::move(line)) {
    if (!::isatty(2)) return;
    thread_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(200ms);
        std::fprintf(stderr, "\r%s\033[K", line_().c_str());
      }
      std::fprintf(stderr, "\r\033[K");
    });
  }
  ~Ticker() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::function<std::string()> line_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Result<std::map<std::string, std::string>> ParseMap(const std::vector<std::string>& pairs, const char* flag) {
  std::map<std::string, std::string> out;
  for (const auto& p : pairs) {
    auto colon = p.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == p.size() || p.find(':', colon + 1) != std::string::npos) {
      return InvalidArgument(std::string(flag) + " " + p + ": write OLD:NEW");
    }
    if (!out.emplace(p.substr(0, colon), p.substr(colon + 1)).second) {
      return InvalidArgument(std::string(flag) + ": " + p.substr(0, colon) + " is mapped twice");
    }
  }
  return out;
}

k8s::Selection SelectionOf(const BackupCliOptions& o) {
  return {o.namespaces, o.exclude_namespaces, o.resources, o.exclude_resources};
}

}  // namespace

int ClusterBackupCreate(const BackupCliOptions& o) {
  int code = kExitOk;
  auto t = LoadTarget(o, code);
  if (!t) return code;
  if (t->location->access == plan::Access::kReadOnly) {
    return Fail("location '" + t->location->name + "' is ReadOnly: backups go to a ReadWrite location", kExitInvalid);
  }
  auto client = k8s::ConnectCluster(t->plan, o.cluster);
  if (!client.ok()) return Fail(client.error());
  auto repo = OpenRepo(*t, o, code);
  if (!repo) return code;
  k8s::ClusterBackupOptions bo;
  bo.cluster = o.cluster;
  bo.select = SelectionOf(o);
  bo.selector = o.selector;
  bo.cluster_resources = k8s::ClusterResourcesOf(o.cluster_resources);
  bo.tags = o.tags;
  if (o.volume_data) {
    auto token = agent::LoadToken(t->plan);
    if (!token.ok()) return Fail(token.error());
    if (token->empty()) return Fail("--volume-data: the node agents need the admin token (LIFEBOAT_TOKEN)", kExitInvalid);
    bo.volumes = k8s::VolumeBackupFor(t->plan, o.cluster, t->location->name, *token);
    bo.volumes->tags = o.tags;
  }
  k8s::ClusterProgress progress;
  auto start = std::chrono::steady_clock::now();
  Result<k8s::ClusterBackupResult> res = [&] {
    Ticker ticker([&] {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return "backup of cluster " + o.cluster + ": kinds " + std::to_string(progress.kinds_done.load()) + "/" +
             std::to_string(progress.kinds_total.load()) + "  objects " + std::to_string(progress.objects.load()) +
             "  " + HumanBytes(progress.bytes.load()) + "  " +
             std::to_string(static_cast<uint64_t>(secs > 0 ? static_cast<double>(progress.objects.load()) / secs : 0)) +
             " objects/s" +
             (o.volume_data && progress.kinds_done == progress.kinds_total
                  ? "  volumes " + std::to_string(progress.volumes_done.load())
                  : "");
    });
    return k8s::BackupCluster(*repo, **client, bo, &progress);
  }();
  if (!res.ok()) return Fail(res.error().Wrap("backup of cluster " + o.cluster));
  for (const auto& e : res->errors) std::cerr << "lifeboat: warning: not backed up: " << e << "\n";
  for (const auto& g : res->skipped_groups) std::cerr << "lifeboat: warning: API group not discovered: " << g << "\n";
  const auto& stats = (*client)->stats();
  if (Structured(o.output)) {
    Json j = StatsJson(res->snapshot);
    j["objects"] = res->objects;
    j["not_backed_up"] = res->errors;
    j["groups_not_discovered"] = res->skipped_groups;
    Json volumes = Json::array();
    for (const auto& l : res->volumes) volumes.push_back(Json::parse(l.ToJson().dump()));
    j["volumes"] = volumes;
    j["api"] = {{"requests", stats.requests}, {"retries", stats.retries}, {"throttled", stats.throttled}};
    PrintDocument(j, o.output);
  } else {
    std::cout << Describe(res->snapshot);
    std::cout << "objects    " << res->objects << " (" << stats.requests << " API requests, " << stats.retries
              << " retried)\n";
    for (const auto& l : res->volumes) {
      std::cout << "volume     " << l.ns << "/" << l.pvc << " on " << (l.node.empty() ? "?" : l.node) << ": "
                << (l.snapshot.empty() ? "failed: " + l.error
                                       : "backup " + l.snapshot.substr(0, 8) + ", " + std::to_string(l.files) +
                                             " files, " + HumanBytes(l.bytes))
                << "\n";
    }
  }
  return res->errors.empty() ? kExitOk : kExitFailure;
}

int ClusterRestore(const BackupCliOptions& o, const Found& found) {
  const auto& snap = found.snapshot;
  if (!k8s::IsClusterBackup(snap)) {
    return Fail("backup " + snap.id.substr(0, 8) + " is of " + snap.source +
                    ", not of a cluster: restore its files with --to DIR",
                kExitInvalid);
  }
  if (!o.include.empty()) return Fail("--include goes with --to; use --namespace and --resource here", kExitInvalid);
  k8s::ClusterRestoreOptions ro;
  ro.select = SelectionOf(o);
  auto ns_map = ParseMap(o.namespace_map, "--namespace-map");
  if (!ns_map.ok()) return Fail(ns_map.error().message(), kExitInvalid);
  auto sc_map = ParseMap(o.storage_class_map, "--storage-class-map");
  if (!sc_map.ok()) return Fail(sc_map.error().message(), kExitInvalid);
  ro.mapping = {std::move(*ns_map), std::move(*sc_map)};
  ro.existing = o.existing == "update" ? k8s::Existing::kUpdate : k8s::Existing::kSkip;
  ro.dry_run = o.dry_run;
  ro.to_dir = o.to_dir;
  std::unique_ptr<k8s::Client> client;
  if (!o.cluster.empty()) {
    if (!o.to_dir.empty()) return Fail("give --cluster or --to-dir, not both", kExitInvalid);
    auto c = k8s::ConnectCluster(found.opened.target.plan, o.cluster);
    if (!c.ok()) return Fail(c.error());
    client = std::move(*c);
    auto token = agent::LoadToken(found.opened.target.plan);
    if (!token.ok()) return Fail(token.error());
    ro.volumes = k8s::VolumeRestoreFor(found.opened.target.plan, o.cluster, found.opened.target.location->name, *token);
  }
  std::atomic<uint64_t> done{0};
  auto start = std::chrono::steady_clock::now();
  Result<k8s::ClusterRestoreResult> res = [&] {
    Ticker ticker([&] {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return "restore of " + snap.id.substr(0, 8) + ": " + std::to_string(done.load()) + " objects, " +
             std::to_string(static_cast<uint64_t>(secs > 0 ? static_cast<double>(done.load()) / secs : 0)) +
             " objects/s";
    });
    return k8s::RestoreCluster(*found.opened.repo, snap, client.get(), ro, [&](const k8s::ItemResult&) { ++done; });
  }();
  if (!res.ok()) return Fail(res.error().Wrap("restore of " + snap.id.substr(0, 8)));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string into = !o.to_dir.empty() ? "manifests in " + o.to_dir : "cluster " + o.cluster;
  auto item_json = [](const k8s::ItemResult& i) {
    return Json{{"kind", i.kind}, {"namespace", i.ns}, {"name", i.name}, {"result", i.result}, {"reason", i.reason}};
  };
  Json summary{{"backup", snap.id},
               {"into", into},
               {"dry_run", o.dry_run},
               {"order", res->order},
               {"notes", res->notes},
               {"created", res->created},
               {"updated", res->updated},
               {"skipped", res->skipped},
               {"written", res->written},
               {"failed", res->failed},
               {"volumes_restored", res->restored},
               {"duration_seconds", secs}};
  if (o.output == "json") {
    // Item by item: a restore of 100,000 objects should not need its report twice in memory.
    std::string head = summary.dump(2);
    head.pop_back();  // the closing brace
    while (!head.empty() && head.back() == '\n') head.pop_back();
    std::cout << head << ",\n  \"items\": [";
    for (size_t n = 0; n < res->items.size(); ++n) {
      std::cout << (n == 0 ? "\n    " : ",\n    ") << item_json(res->items[n]).dump();
    }
    std::cout << (res->items.empty() ? "]\n}\n" : "\n  ]\n}\n");
  } else if (Structured(o.output)) {
    Json items = Json::array();
    for (const auto& i : res->items) items.push_back(item_json(i));
    summary["items"] = items;
    PrintDocument(summary, o.output);
  } else {
    Table table({"KIND", "NAMESPACE", "NAME", "RESULT", "REASON"});
    for (const auto& i : res->items) table.Add({i.kind, i.ns.empty() ? "-" : i.ns, i.name, i.result, i.reason});
    std::cout << table.Render();
    for (const auto& n : res->notes) std::cout << "note: " << n << "\n";
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.2fs", secs);
    std::cout << (o.dry_run ? "dry run, nothing changed: " : "") << "restore of " << snap.id.substr(0, 8) << " into "
              << into << ": " << res->created << " created, " << res->updated << " updated, " << res->skipped
              << " skipped, " << res->written << " written, " << res->failed << " failed";
    if (res->restored) std::cout << ", files of " << res->restored << " PVC(s) restored";
    std::cout << " in " << dur << "\n";
  }
  return res->Failed() ? kExitFailure : kExitOk;
}

}  // namespace lifeboat::cli
