#include "k8s/cluster_backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <unordered_set>

#include "core/clock.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "core/log.h"
#include "core/strings.h"
#include "repo/crypto.h"

namespace lifeboat::k8s {
namespace {

using repo::Id;
using repo::Node;
using repo::NodeType;
using repo::Tree;

constexpr const char* kMetaFile = "lifeboat-backup.json";


// Objects as files of a snapshot's tree: each object a blob, each directory
// a list of nodes, trees written bottom-up at the end.
class TreeWriter {
 public:
  explicit TreeWriter(repo::Repository& repo) : repo_(repo), uid_(::geteuid()), gid_(::getegid()) {}

  Status AddFile(const std::string& path, std::string_view data, bool secret_mode) {
    Id id = repo::BlobId(repo_.keys(), data);
    if (repo_.Claim(id)) {
      LB_RETURN_IF_ERROR(repo_.AddBlob(packer_, repo::BlobType::kData, id, data));
      new_bytes_ += data.size();
      ++new_blobs_;
    }
    auto slash = path.rfind('/');
    Node n;
    n.name = path.substr(slash + 1);
    n.type = NodeType::kFile;
    n.mode = secret_mode ? 0600 : 0644;
    n.uid = uid_;
    n.gid = gid_;
    n.mtime_sec = now_sec_;
    n.size = data.size();
    n.content.push_back(id);
    std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
    auto& files = dirs_[dir];
    if (!files.empty() && files.back().name == n.name) return AlreadyExists(path + " twice");
    files.push_back(std::move(n));
    bytes_ += data.size();
    return Ok();
  }

  // Writes the directories (deepest first) and returns the root's id.
  Result<Id> Finish() {
    // Every ancestor exists, even without files of its own.
    std::vector<std::string> all;
    for (const auto& [d, _] : dirs_) all.push_back(d);
    for (const auto& d : all) {
      std::string cur = d;
      while (!cur.empty()) {
        auto slash = cur.rfind('/');
        cur = slash == std::string::npos ? "" : cur.substr(0, slash);
        dirs_[cur];
      }
    }
    std::vector<std::string> order;
    for (const auto& [d, _] : dirs_) order.push_back(d);
    std::sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
      auto depth = [](const std::string& s) { return s.empty() ? 0 : 1 + std::count(s.begin(), s.end(), '/'); };
      return depth(a) > depth(b);
    });
    std::map<std::string, Id> ids;
    for (const auto& d : order) {
      Tree t;
      t.nodes = std::move(dirs_[d]);
      for (const auto& [child, id] : ids) {
        auto slash = child.rfind('/');
        std::string parent = slash == std::string::npos ? "" : child.substr(0, slash);
        if (parent != d || child.empty()) continue;
        Node n;
        n.name = child.substr(slash == std::string::npos ? 0 : slash + 1);
        n.type = NodeType::kDir;
        n.mode = 0700;
        n.uid = uid_;
        n.gid = gid_;
        n.mtime_sec = now_sec_;
        n.subtree = id;
        t.nodes.push_back(std::move(n));
      }
      std::sort(t.nodes.begin(), t.nodes.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
      LB_ASSIGN_OR_RETURN(Id id, repo_.SaveTree(packer_, t));
      // Children are no longer needed once their parent is written.
      for (auto it = ids.begin(); it != ids.end();) {
        auto slash = it->first.rfind('/');
        std::string parent = slash == std::string::npos ? "" : it->first.substr(0, slash);
        it = parent == d && !it->first.empty() ? ids.erase(it) : std::next(it);
      }
      ids[d] = id;
    }
    LB_RETURN_IF_ERROR(repo_.FlushPacker(packer_));
    LB_RETURN_IF_ERROR(repo_.FlushIndex());
    return ids.at("");
  }

  uint64_t bytes() const { return bytes_; }
  uint64_t new_bytes() const { return new_bytes_; }
  uint64_t new_blobs() const { return new_blobs_; }
  size_t dirs() const { return dirs_.size(); }

 private:
  repo::Repository& repo_;
  repo::Packer packer_;
  std::map<std::string, std::vector<Node>> dirs_;
  uint32_t uid_, gid_;
  int64_t now_sec_ = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  uint64_t bytes_ = 0, new_bytes_ = 0, new_blobs_ = 0;
};

struct KindRecord {
  ApiResource r;
  uint64_t count = 0;
  bool custom = false;
};

}  // namespace

bool Selection::Names(const std::vector<std::string>& list, const ApiResource& r) {
  for (const auto& n : list) {
    std::string l = ToLower(n);
    if (l == r.resource || l == r.Qualified() || l == ToLower(r.kind) ||
        (!r.group.empty() && l == ToLower(r.kind) + "." + r.group)) {
      return true;
    }
    if (std::find(r.short_names.begin(), r.short_names.end(), l) != r.short_names.end()) return true;
  }
  return false;
}

bool Selection::NamespaceIncluded(const std::string& ns) const {
  bool in = namespaces.empty();
  for (const auto& g : namespaces) in = in || GlobMatch(g, ns);
  for (const auto& g : exclude_namespaces) in = in && !GlobMatch(g, ns);
  return in;
}

bool IsClusterBackup(const repo::Snapshot& s) { return s.source.starts_with("cluster:"); }

Result<Json> ReadBackupMeta(repo::Repository& repo, const repo::Tree& root) {
  for (const auto& n : root.nodes) {
    if (n.name != kMetaFile || n.type != NodeType::kFile) continue;
    std::string text;
    for (const auto& id : n.content) {
      LB_ASSIGN_OR_RETURN(std::string part, repo.LoadBlob(id));
      text += part;
    }
    return Json::parse(text, nullptr, false);
  }
  return Json();
}

Result<std::vector<std::string>> LinkedVolumeSnapshots(repo::Repository& repo, const repo::Snapshot& s) {
  std::vector<std::string> out;
  if (!IsClusterBackup(s)) return out;
  LB_ASSIGN_OR_RETURN(repo::Tree root, repo.LoadTree(s.TreeId()));
  LB_ASSIGN_OR_RETURN(Json meta, ReadBackupMeta(repo, root));
  for (const auto& v : json::Arr(meta, "volumes")) {
    std::string id = json::Str(v, "snapshot");
    if (!id.empty()) out.push_back(id);
  }
  return out;
}

Result<ClusterBackupResult> BackupCluster(repo::Repository& repo, Client& client, const ClusterBackupOptions& o,
                                          ClusterProgress* progress) {
  ClusterProgress local;
  ClusterProgress& pr = progress != nullptr ? *progress : local;
  if (repo.read_only()) return PermissionDenied("the location is ReadOnly: backups are written to a ReadWrite location");
  auto start = std::chrono::steady_clock::now();
  int64_t start_ns = NowUnixNs();
  std::string source = "cluster:" + o.cluster;
  ClusterBackupResult res;

  // The cluster first: an unreachable one or refused credentials fail before anything is written.
  LB_ASSIGN_OR_RETURN(auto kinds, Discover(client, &res.skipped_groups));
  LB_ASSIGN_OR_RETURN(auto lock, repo.AcquireLock(false, "backup " + source));
  LB_RETURN_IF_ERROR(repo.LoadIndex());
  LB_RETURN_IF_ERROR(repo.AdoptUnindexedPacks());

  // Custom kinds: the plural and group of every CRD.
  std::map<std::string, std::string> crd_of;  // qualified custom kind -> CRD name
  const ApiResource* crd_kind = nullptr;
  for (const auto& k : kinds) {
    if (k.Qualified() == kCrdKind) crd_kind = &k;
  }
  if (crd_kind != nullptr) {
    Status st = ListAll(client, *crd_kind, "", "", o.page_size, [&](Json& crd) -> Status {
      std::string plural = StringAt(crd, {"spec", "names", "plural"}), group = StringAt(crd, {"spec", "group"});
      crd_of[plural + "." + group] = StringAt(crd, {"metadata", "name"});
      return Ok();
    });
    if (!st.ok()) res.errors.push_back("listing CRDs: " + st.error().message());
  }

  bool all_namespaces = o.select.namespaces.empty() && o.select.exclude_namespaces.empty();
  std::vector<std::string> namespaces;  // the included ones, when not all
  const ApiResource* ns_kind = nullptr;
  for (const auto& k : kinds) {
    if (k.Qualified() == "namespaces") ns_kind = &k;
  }
  if (!all_namespaces && ns_kind != nullptr) {
    LB_RETURN_IF_ERROR(ListAll(client, *ns_kind, "", "", o.page_size, [&](Json& n) -> Status {
      std::string name = StringAt(n, {"metadata", "name"});
      if (o.select.NamespaceIncluded(name)) namespaces.push_back(name);
      return Ok();
    }));
  }

  TreeWriter w(repo);
  std::vector<KindRecord> records;
  std::set<std::string> pvs, storage_classes, crds;  // cluster-scoped objects the namespaced ones need
  std::set<std::string> seen_namespaces;
  auto selected = [&](const ApiResource& r) {
    if (!r.Can("list") || !r.Can("get") || NeverBackedUp(r.Qualified())) return false;
    if (!o.select.resources.empty() && !Selection::Names(o.select.resources, r)) return false;
    return !Selection::Names(o.select.exclude_resources, r);
  };
  auto store = [&](KindRecord& rec, Json& obj) -> Status {
    std::string ns = rec.r.namespaced ? StringAt(obj, {"metadata", "namespace"}) : "";
    std::string name = StringAt(obj, {"metadata", "name"});
    if (name.empty() || name.find('/') != std::string::npos || ns.find('/') != std::string::npos) {
      res.errors.push_back(rec.r.Qualified() + ": an object with a name that is not a file name: '" + name + "'");
      return Ok();
    }
    if (rec.r.namespaced && !o.select.NamespaceIncluded(ns)) return Ok();
    std::string q = rec.r.Qualified();
    if (q == "persistentvolumeclaims") {
      if (auto v = StringAt(obj, {"spec", "volumeName"}); !v.empty()) pvs.insert(v);
      if (auto c = StringAt(obj, {"spec", "storageClassName"}); !c.empty()) storage_classes.insert(c);
    }
    if (rec.custom) crds.insert(crd_of[q]);
    if (rec.r.namespaced) seen_namespaces.insert(ns);
    std::string text = obj.dump() + "\n";
    LB_RETURN_IF_ERROR(w.AddFile(ObjectPath(q, ns, name), text, q == "secrets"));
    ++rec.count;
    ++res.objects;
    ++pr.objects;
    pr.bytes += text.size();
    return Ok();
  };
  auto list_kind = [&](KindRecord& rec, const std::string& ns, const std::string& selector,
                       const std::function<bool(const Json&)>& keep = {}) {
    Status st = ListAll(client, rec.r, ns, selector, o.page_size, [&](Json& obj) -> Status {
      if (keep && !keep(obj)) return Ok();
      return store(rec, obj);
    });
    if (!st.ok()) {
      res.errors.push_back(rec.r.Qualified() + (ns.empty() ? "" : " in " + ns) + ": " + st.error().message());
    }
  };

  // Namespaced kinds, then cluster-scoped ones (which may depend on what the namespaced ones named).
  for (const auto& k : kinds) {
    if (k.namespaced && selected(k)) records.push_back({k, 0, crd_of.count(k.Qualified()) > 0});
  }
  size_t namespaced_count = records.size();
  bool all_cluster = o.cluster_resources == ClusterResources::kInclude ||
                     (o.cluster_resources == ClusterResources::kAuto && all_namespaces);
  for (const auto& k : kinds) {
    if (k.namespaced) continue;
    bool related = k.Qualified() == "namespaces" || k.Qualified() == kCrdKind || k.Qualified() == "persistentvolumes" ||
                   k.Qualified() == "storageclasses.storage.k8s.io";
    related = related && !Selection::Names(o.select.exclude_resources, k);  // an exclusion is obeyed
    if ((all_cluster && selected(k)) || (o.cluster_resources != ClusterResources::kExclude && related)) {
      records.push_back({k, 0, crd_of.count(k.Qualified()) > 0});
    }
  }
  pr.kinds_total = records.size();
  for (size_t i = 0; i < records.size(); ++i) {
    KindRecord& rec = records[i];
    if (i < namespaced_count) {
      if (all_namespaces) {
        list_kind(rec, "", o.selector);
      } else {
        for (const auto& ns : namespaces) list_kind(rec, ns, o.selector);
      }
    } else {
      // Cluster-scoped: everything of the kind (matching the selector) when
      // cluster resources are included, and in any case (unless excluded)
      // what the namespaced objects need: their namespaces, the CRDs of
      // custom resources, bound PVs and their storage classes.
      std::string q = rec.r.Qualified();
      std::unordered_set<std::string> stored;
      auto name_of = [](const Json& obj) { return StringAt(obj, {"metadata", "name"}); };
      if (all_cluster && selected(rec.r)) {
        list_kind(rec, "", o.selector, [&](const Json& obj) {
          std::string name = name_of(obj);
          if (q == "namespaces" && !o.select.NamespaceIncluded(name)) return false;
          stored.insert(name);
          return true;
        });
      }
      const std::set<std::string>* wanted = q == "namespaces"          ? &seen_namespaces
                                            : q == kCrdKind               ? &crds
                                            : q == "persistentvolumes" ? &pvs
                                            : q == "storageclasses.storage.k8s.io" ? &storage_classes
                                                                                   : nullptr;
      bool listed_all = all_cluster && selected(rec.r) && o.selector.empty();
      if (wanted != nullptr && o.cluster_resources != ClusterResources::kExclude && !listed_all) {
        if (q == "namespaces") seen_namespaces.insert(namespaces.begin(), namespaces.end());
        list_kind(rec, "", "", [&](const Json& obj) {
          std::string name = name_of(obj);
          return wanted->count(name) > 0 && stored.insert(name).second;
        });
      }
    }
    ++pr.kinds_done;
  }

  Json volumes = Json::array();
  if (o.volumes) {
    auto links = BackupVolumes(client, o.select, o.selector, *o.volumes, [&](const VolumeLink&) { ++pr.volumes_done; });
    if (!links.ok()) {
      res.errors.push_back("volume data: " + links.error().message());
    } else {
      for (const auto& l : *links) {
        std::string what = "volume data of PVC " + l.ns + "/" + l.pvc + ": ";
        if (!l.error.empty()) res.errors.push_back(what + l.error);
        if (l.file_errors) res.errors.push_back(what + std::to_string(l.file_errors) + " files could not be read");
        volumes.push_back(l.ToJson());
      }
      res.volumes = std::move(*links);
    }
  }

  Json meta = {{"kind", "ClusterBackup"},
               {"format", 1},
               {"cluster", o.cluster},
               {"server", client.access().server},
               {"context", client.access().context},
               {"time", repo::TimeText(start_ns)},
               {"selector", o.selector},
               {"namespaces", o.select.namespaces},
               {"exclude_namespaces", o.select.exclude_namespaces},
               {"resources", o.select.resources},
               {"exclude_resources", o.select.exclude_resources},
               {"objects", res.objects},
               {"errors", res.errors},
               {"skipped_groups", res.skipped_groups}};
  Json ks = Json::array();
  for (const auto& rec : records) {
    if (rec.count == 0) continue;
    ks.push_back({{"resource", rec.r.resource},
                  {"group", rec.r.group},
                  {"version", rec.r.version},
                  {"kind", rec.r.kind},
                  {"namespaced", rec.r.namespaced},
                  {"custom", rec.custom},
                  {"count", rec.count}});
  }
  meta["kinds"] = ks;
  meta["volumes"] = volumes;
  LB_RETURN_IF_ERROR(w.AddFile(kMetaFile, meta.dump(2) + "\n", false));
  LB_ASSIGN_OR_RETURN(Id root, w.Finish());

  repo::Snapshot& snap = res.snapshot;
  snap.time_ns = start_ns;
  snap.host = Hostname();
  snap.source = source;
  snap.path = client.access().server;
  snap.tags = o.tags;
  snap.schedule = o.schedule;
  snap.tree = repo::HexOf(root);
  snap.root_mode = 0700;
  snap.root_uid = ::geteuid();
  snap.root_gid = ::getegid();
  snap.root_mtime_sec = start_ns / 1'000'000'000;
  snap.stats.files = res.objects + 1;
  snap.stats.dirs = w.dirs();
  snap.stats.bytes = w.bytes();
  snap.stats.files_new = res.objects;
  snap.stats.new_blobs = w.new_blobs();
  snap.stats.new_bytes = w.new_bytes();
  snap.stats.stored_bytes = repo.stored_bytes();
  snap.stats.errors = res.errors.size();
  snap.stats.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<repo::Snapshot> before;
  if (auto all = repo.ListSnapshots(); all.ok()) {
    for (const auto& s : *all) {
      if (s.source == source) snap.parent = s.id;
    }
  }
  LB_ASSIGN_OR_RETURN(snap.id, repo.SaveSnapshot(snap));
  return res;
}

}  // namespace lifeboat::k8s
