// RestoreCluster: the backup's index (names only), the kinds in restore
// order, then each object streamed from the repository, prepared and
// created, or written as a manifest.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/fs.h"
#include "core/json_read.h"
#include "core/log.h"
#include "k8s/cluster_backup.h"
#include "repo/crypto.h"

namespace lifeboat::k8s {
namespace {



struct Item {
  std::string ns, name;
  std::vector<repo::Id> content;
};

struct KindInfo {
  std::string qualified, group, version, kind;
  bool namespaced = false, custom = false;
  std::vector<Item> items;
  std::string Path(const std::string& ns) const {
    std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    if (namespaced) p += "/namespaces/" + ns;
    return p + "/" + qualified.substr(0, qualified.find('.'));
  }
};

class Restorer {
 public:
  Restorer(repo::Repository& repo, const repo::Snapshot& snap, Client* client, const ClusterRestoreOptions& o,
           const std::function<void(const ItemResult&)>& on_item)
      : repo_(repo), snap_(snap), client_(client), o_(o), on_item_(on_item) {}

  Result<ClusterRestoreResult> Run() {
    if (client_ == nullptr && o_.to_dir.empty()) return InvalidArgument("restore: no cluster and no --to-dir");
    LB_RETURN_IF_ERROR(repo_.LoadIndex());
    LB_RETURN_IF_ERROR(ReadIndex());
    LB_RETURN_IF_ERROR(Plan());
    if (client_ != nullptr && o_.to_dir.empty() && o_.workers > 1) {
      for (int i = 0; i < o_.workers; ++i) {
        LB_ASSIGN_OR_RETURN(auto c, client_->Clone(1.0 / o_.workers));
        workers_.push_back(std::move(c));
      }
    }
    PrepareVolumes();
    for (const auto& q : res_.order) {
      KindInfo& k = kinds_[q];
      LB_RETURN_IF_ERROR(RestoreKind(k));
      if (q == kCrdKind && client_ != nullptr && !o_.dry_run && o_.to_dir.empty()) WaitForCrds(k);
    }
    RestoreVolumeData();
    return std::move(res_);
  }

 private:
  Result<repo::Tree> Sub(const repo::Tree& t, const std::string& name) {
    for (const auto& n : t.nodes) {
      if (n.name == name && n.type == repo::NodeType::kDir) return repo_.LoadTree(n.subtree);
    }
    return NotFound(name);
  }

  Result<std::string> ReadFile(const std::vector<repo::Id>& content) {
    std::string out;
    for (const auto& id : content) {
      LB_ASSIGN_OR_RETURN(std::string part, repo_.LoadBlob(id));
      out += part;
    }
    return out;
  }

  // The kinds and the names of their objects (not the objects).
  Status ReadIndex() {
    LB_ASSIGN_OR_RETURN(repo::Tree root, repo_.LoadTree(snap_.TreeId()));
    LB_ASSIGN_OR_RETURN(Json meta, ReadBackupMeta(repo_, root));
    if (!meta.is_object() || !meta.contains("kinds") || !meta["kinds"].is_array()) {
      return InvalidArgument("backup " + snap_.id.substr(0, 8) + " is not a cluster backup (no lifeboat-backup.json)");
    }
    for (const auto& v : json::Arr(meta, "volumes")) {
      VolumeLink l = VolumeLink::FromJson(v);
      if (!l.snapshot.empty() && o_.select.NamespaceIncluded(l.ns)) links_.push_back(std::move(l));
    }
    for (const auto& k : meta["kinds"]) {
      KindInfo info;
      info.group = json::Str(k, "group");
      info.version = json::Str(k, "version");
      info.kind = json::Str(k, "kind");
      info.namespaced = json::Bool(k, "namespaced");
      info.custom = json::Bool(k, "custom");
      std::string resource = json::Str(k, "resource");
      info.qualified = info.group.empty() ? resource : resource + "." + info.group;
      kind_of_[info.kind + "/" + info.group] = info.qualified;
      kinds_[info.qualified] = std::move(info);
    }
    auto resources = Sub(root, "resources");
    if (!resources.ok()) return Ok();  // an empty backup
    for (const auto& kd : resources->nodes) {
      auto it = kinds_.find(kd.name);
      if (it == kinds_.end() || kd.type != repo::NodeType::kDir) continue;
      KindInfo& k = it->second;
      if (!Wanted(k)) continue;
      LB_ASSIGN_OR_RETURN(repo::Tree t, repo_.LoadTree(kd.subtree));
      for (const auto& scope : t.nodes) {
        if (scope.type != repo::NodeType::kDir) continue;
        LB_ASSIGN_OR_RETURN(repo::Tree st, repo_.LoadTree(scope.subtree));
        if (scope.name == "cluster") {
          AddItems(k, "", st);
        } else if (scope.name == "namespaces") {
          for (const auto& nsd : st.nodes) {
            if (nsd.type != repo::NodeType::kDir || !o_.select.NamespaceIncluded(nsd.name)) continue;
            LB_ASSIGN_OR_RETURN(repo::Tree objs, repo_.LoadTree(nsd.subtree));
            AddItems(k, nsd.name, objs);
          }
        }
      }
    }
    return Ok();
  }

  void AddItems(KindInfo& k, const std::string& ns, const repo::Tree& t) {
    for (const auto& f : t.nodes) {
      if (f.type != repo::NodeType::kFile || !f.name.ends_with(".json") || f.name.size() <= 5) continue;
      std::string name = f.name.substr(0, f.name.size() - 5);
      if (k.qualified == "namespaces" && !o_.select.NamespaceIncluded(name)) continue;
      names_.insert(k.qualified + "/" + ns + "/" + name);
      k.items.push_back({ns, name, f.content});
    }
  }

  bool Wanted(const KindInfo& k) {
    ApiResource r;
    r.group = k.group;
    r.resource = k.qualified.substr(0, k.qualified.find('.'));
    r.kind = k.kind;
    if (!o_.select.resources.empty() && !Selection::Names(o_.select.resources, r)) return false;
    return !Selection::Names(o_.select.exclude_resources, r);
  }

  bool InRestore(const std::string& api_version, const std::string& kind, const std::string& ns,
                 const std::string& name) const {
    auto slash = api_version.find('/');
    std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
    auto it = kind_of_.find(kind + "/" + group);
    if (it == kind_of_.end()) return false;
    auto k = kinds_.find(it->second);
    if (k == kinds_.end()) return false;
    return names_.count(it->second + "/" + (k->second.namespaced ? ns : "") + "/" + name) > 0;
  }

  // The kinds in order: references between kinds found in the objects
  // that refer to others by name (workloads, PVCs, bindings, ingresses),
  // custom resources after CRDs, priorities for the rest.
  Status Plan() {
    std::set<std::string> present;
    std::set<std::pair<std::string, std::string>> before;
    static const std::set<std::string> kReferring = {
        "pods",          "deployments.apps",  "statefulsets.apps",
        "daemonsets.apps", "replicasets.apps", "jobs.batch",
        "cronjobs.batch", "persistentvolumeclaims", "persistentvolumes",
        "rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
        "ingresses.networking.k8s.io"};
    for (auto& [q, k] : kinds_) {
      if (k.items.empty()) continue;
      present.insert(q);
      if (k.custom) before.insert({kCrdKind, q});
      if (k.namespaced) before.insert({"namespaces", q});
      if (!kReferring.count(q)) continue;
      for (const auto& item : k.items) {
        LB_ASSIGN_OR_RETURN(std::string text, ReadFile(item.content));
        Json obj = Json::parse(text, nullptr, false);
        for (const auto& ref : ReferencedKinds(q, obj)) before.insert({ref, q});
      }
    }
    res_.order = RestoreOrder(present, before, &res_.notes);
    return Ok();
  }

  void Record(ItemResult r) {
    std::lock_guard lock(record_mu_);
    if (r.result == "created" || r.result == "would-create") ++res_.created;
    else if (r.result == "updated" || r.result == "would-update") ++res_.updated;
    else if (r.result == "skipped" || r.result == "would-skip") ++res_.skipped;
    else if (r.result == "written") ++res_.written;
    else if (r.result == "restored" || r.result == "would-restore") ++res_.restored;
    else ++res_.failed;
    if (on_item_) on_item_(r);
    res_.items.push_back(std::move(r));
  }

  // Whether the target serves the kind at the backup's version (asked once per group/version).
  Result<bool> Served(const KindInfo& k) {
    std::string gv = k.group.empty() ? k.version : k.group + "/" + k.version;
    auto cached = served_.find(gv);
    if (cached == served_.end() || (!cached->second.count(k.qualified) && k.custom)) {
      std::string path = k.group.empty() ? "/api/" + k.version : "/apis/" + gv;
      LB_ASSIGN_OR_RETURN(Response r, client_->Call("GET", path));
      std::set<std::string> names;
      if (r.status == 200) {
        Json list = Json::parse(r.body, nullptr, false);
        if (list.is_object() && list.contains("resources") && list["resources"].is_array()) {
          for (const auto& e : list["resources"]) {
            std::string n = json::Str(e, "name");
            names.insert(k.group.empty() ? n : n + "." + k.group);
          }
        }
      } else if (r.status != 404) {
        return ApiError(r, "GET " + path);
      }
      cached = served_.insert_or_assign(gv, std::move(names)).first;
    }
    return cached->second.count(k.qualified) > 0;
  }

  std::string Mapped(const std::string& ns) const {
    auto it = o_.mapping.namespaces.find(ns);
    return it == o_.mapping.namespaces.end() ? ns : it->second;
  }

  // A namespace the restored objects go into exists, or is made.
  void EnsureNamespace(const std::string& ns) {
    if (ns.empty() || !ensured_.insert(ns).second) return;
    Json obj = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}};
    KindInfo k;
    k.qualified = "namespaces";
    k.version = "v1";
    k.kind = "Namespace";
    ItemResult r{"namespaces", "", ns, "", ""};
    if (!o_.to_dir.empty()) {
      Status st = WriteManifest(k, "", ns, obj);
      if (st.ok()) return;  // said once, by the objects themselves
      r.result = "failed";
      r.reason = st.error().message();
      Record(r);
      return;
    }
    auto got = client_->Call("GET", "/api/v1/namespaces/" + ns);
    if (got.ok() && got->status == 200) return;
    if (o_.dry_run) {
      r.result = "would-create";
      r.reason = "the namespace the restored objects go into";
      Record(r);
      return;
    }
    auto made = client_->Call("POST", "/api/v1/namespaces", obj.dump());
    if (made.ok() && (made->status == 201 || made->status == 200 || made->status == 409)) {
      if (made->status != 409) {
        r.result = "created";
        r.reason = "the namespace the restored objects go into";
        Record(r);
      }
      return;
    }
    r.result = "failed";
    r.reason = made.ok() ? ApiError(*made, "create namespace").message() : made.error().message();
    Record(r);
  }

  Status WriteManifest(const KindInfo& k, const std::string& ns, const std::string& name, const Json& obj) {
    auto pos = std::find(res_.order.begin(), res_.order.end(), k.qualified);
    size_t rank = pos == res_.order.end() ? 0 : static_cast<size_t>(pos - res_.order.begin()) + 1;
    if (k.qualified == "namespaces") rank = 0;  // ahead of all, for namespaces made on the way
    char prefix[8];
    std::snprintf(prefix, sizeof prefix, "%03zu-", rank);
    std::filesystem::path dir = std::filesystem::path(o_.to_dir) / (prefix + k.qualified);
    if (!ns.empty()) dir /= ns;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ErrnoError(ec.value(), "create " + dir.string());
    return WriteFileAtomic((dir / (name + ".json")).string(), obj.dump(2) + "\n", k.qualified == "secrets" ? 0600 : 0644);
  }

  Status RestoreKind(const KindInfo& k) {
    bool served = true;
    if (client_ != nullptr && o_.to_dir.empty()) {
      auto s = Served(k);
      if (!s.ok()) return s.error();
      served = *s;
    }
    // The namespaces the objects go into, first and one by one.
    if (k.namespaced && (served || !o_.to_dir.empty())) {
      std::set<std::string> namespaces;
      for (const auto& item : k.items) namespaces.insert(Mapped(item.ns));
      for (const auto& ns : namespaces) EnsureNamespace(ns);
    }
    // Then the objects, by several connections when there are many.
    std::atomic<size_t> next{0};
    auto work = [&](Client* c) {
      for (size_t i; (i = next++) < k.items.size();) RestoreItem(k, k.items[i], served, c);
    };
    bool parallel = !workers_.empty() && k.items.size() >= 2 * workers_.size() && k.qualified != "namespaces";
    if (!parallel) {
      work(client_);
      return Ok();
    }
    std::vector<std::thread> threads;
    for (auto& w : workers_) threads.emplace_back(work, w.get());
    for (auto& t : threads) t.join();
    return Ok();
  }

  void RestoreItem(const KindInfo& k, const Item& item, bool served, Client* client) {
    std::string ns = Mapped(item.ns);
    std::string name = k.qualified == "namespaces" ? Mapped(item.name) : item.name;
    ItemResult r{k.qualified, ns, name, "", ""};
    auto text = ReadFile(item.content);
    if (!text.ok()) {
      r.result = "failed";
      r.reason = "cannot read it from the backup: " + text.error().message();
      return Record(std::move(r));
    }
    Json obj = Json::parse(*text, nullptr, false);
    if (!obj.is_object()) {
      r.result = "failed";
      r.reason = "the backup's copy is not a JSON object";
      return Record(std::move(r));
    }
    auto in_restore = [this](const std::string& av, const std::string& kind, const std::string& ons,
                             const std::string& oname) { return InRestore(av, kind, ons, oname); };
    if (std::string why = SkipReason(k.qualified, obj, in_restore); !why.empty()) {
      r.result = o_.dry_run ? "would-skip" : "skipped";
      r.reason = why;
      return Record(std::move(r));
    }
    bool pv_restored = false;
    if (k.qualified == "persistentvolumeclaims") {
      std::string pv = StringAt(obj, {"spec", "volumeName"});
      pv_restored = !pv.empty() && names_.count("persistentvolumes//" + pv) > 0 && !linked_pvs_.count(pv);
    }
    if (k.qualified == "persistentvolumes" && linked_pvs_.count(name)) {
      r.result = o_.dry_run ? "would-skip" : "skipped";
      r.reason = "its claim's files are restored into a new volume";
      return Record(std::move(r));
    }
    obj = PrepareForRestore(std::move(obj), k.qualified, o_.mapping, pv_restored, in_restore);
    {
      static const std::set<std::string> kNone;
      auto w = wait_pvcs_.find(ns);
      AddRestoreWait(obj, k.qualified, w == wait_pvcs_.end() ? kNone : w->second, wait_image_, marker_);
    }
    if (!o_.to_dir.empty()) {
      Status st = WriteManifest(k, k.namespaced ? ns : "", name, obj);
      r.result = st.ok() ? "written" : "failed";
      if (!st.ok()) r.reason = st.error().message();
      return Record(std::move(r));
    }
    if (!served) {
      r.result = "failed";
      r.reason = "the cluster does not serve " + k.qualified + " at " +
                 (k.group.empty() ? k.version : k.group + "/" + k.version);
      return Record(std::move(r));
    }
    Apply(*client, k, ns, name, obj, r);
    if (k.qualified == "namespaces") ensured_.insert(name);  // namespaces are restored one by one
    Record(std::move(r));
  }

  void Apply(Client& client, const KindInfo& k, const std::string& ns, const std::string& name, Json& obj,
             ItemResult& r) {
    std::string collection = k.Path(ns);
    std::string path = collection + "/" + name;
    if (o_.dry_run) {
      auto got = client.Call("GET", path);
      if (!got.ok()) {
        r.result = "failed";
        r.reason = got.error().message();
      } else if (got->status == 404) {
        r.result = "would-create";
      } else if (got->status == 200) {
        r.result = o_.existing == Existing::kUpdate ? "would-update" : "would-skip";
        if (o_.existing == Existing::kSkip) r.reason = "exists";
      } else {
        r.result = "failed";
        r.reason = ApiError(*got, "GET").message();
      }
      return;
    }
    auto made = client.Call("POST", collection, obj.dump());
    if (!made.ok()) {
      r.result = "failed";
      r.reason = made.error().message();
      return;
    }
    if (made->status == 201 || made->status == 200 || made->status == 202) {
      r.result = "created";
      return;
    }
    if (made->status == 409 && ApiReason(*made) == "AlreadyExists") {
      if (o_.existing == Existing::kSkip) {
        r.result = "skipped";
        r.reason = "exists";
        // The create was answered 5xx first, then retried: the object may be
        // the one that first attempt made, not one that was there before.
        if (!made->retried_after.empty()) {
          r.reason += " (the create was retried after " + made->retried_after + ": it may have made it)";
        }
        return;
      }
      // Update: on the current version, keeping what the cluster assigned.
      for (int attempt = 0; attempt < 3; ++attempt) {
        auto cur = client.GetJson(path);
        if (!cur.ok()) {
          r.result = "failed";
          r.reason = cur.error().message();
          return;
        }
        obj["metadata"]["resourceVersion"] = StringAt(*cur, {"metadata", "resourceVersion"});
        if (k.qualified == "services" && cur->contains("spec") && obj.contains("spec") && obj["spec"].is_object()) {
          for (const char* f : {"clusterIP", "clusterIPs"}) {
            if ((*cur)["spec"].contains(f)) obj["spec"][f] = (*cur)["spec"][f];
          }
        }
        auto put = client.Call("PUT", path, obj.dump());
        if (!put.ok()) {
          r.result = "failed";
          r.reason = put.error().message();
          return;
        }
        if (put->status == 200 || put->status == 201) {
          r.result = "updated";
          return;
        }
        if (put->status != 409) {
          r.result = "failed";
          r.reason = ApiError(*put, "update").message();
          return;
        }
      }
      r.result = "failed";
      r.reason = "update: the object kept changing (3 conflicts)";
      return;
    }
    r.result = "failed";
    r.reason = ApiError(*made, "create").message();
  }

  // Custom resources can be created once their CRDs say Established.
  void WaitForCrds(const KindInfo& crds) {
    auto deadline = std::chrono::steady_clock::now() + o_.crd_wait;
    for (const auto& item : crds.items) {
      while (true) {
        auto got = client_->GetJson("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + item.name);
        bool established = false;
        if (got.ok() && got->contains("status") && (*got)["status"].contains("conditions") &&
            (*got)["status"]["conditions"].is_array()) {
          for (const auto& c : (*got)["status"]["conditions"]) {
            if (json::Str(c, "type") == "Established" && json::Str(c, "status") == "True") established = true;
          }
        }
        if (established || !got.ok()) break;
        if (std::chrono::steady_clock::now() >= deadline) {
          res_.notes.push_back("CRD " + item.name + " was not Established within " +
                               std::to_string(o_.crd_wait.count()) + "s; its custom resources may fail");
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    res_.notes.push_back("waited for " + std::to_string(crds.items.size()) + " CRD(s) to be Established");
  }

  // The PVCs whose files the backup holds: decides whether they are
  // restored, and makes the workloads that mount them wait for them.
  void PrepareVolumes() {
    if (links_.empty()) return;
    for (const auto& l : links_) linked_pvs_.insert(l.pv);
    std::string why;
    if (!o_.to_dir.empty()) {
      why = "manifests for kubectl apply cannot carry them";
    } else if (!o_.volumes) {
      why = "not asked for";
    } else if (!o_.dry_run) {
      auto agents = FindNodeAgents(*client_, o_.volumes->agents.ns);
      if (!agents.ok()) {
        why = agents.error().message();
      } else if (agents->empty()) {
        why = "no node agent runs in namespace " + o_.volumes->agents.ns + " of the cluster";
      } else {
        wait_image_ = agents->begin()->second.image;
      }
    }
    if (!why.empty()) {
      res_.notes.push_back("the files of " + std::to_string(links_.size()) + " PVC(s) were not restored: " + why);
      volume_failure_ = why;
      linked_pvs_.clear();
      return;
    }
    uint8_t raw[8];
    repo::RandomBytes(raw);
    marker_ = repo::HexOf(raw);
    if (!o_.dry_run) {
      for (const auto& l : links_) wait_pvcs_[Mapped(l.ns)].insert(l.pvc);
    }
  }

  void RestoreVolumeData() {
    if (links_.empty()) return;
    if (!volume_failure_.empty() || o_.dry_run) {
      for (const auto& l : links_) {
        ItemResult r{"volume-data", Mapped(l.ns), l.pvc, o_.dry_run && volume_failure_.empty() ? "would-restore" : "failed",
                     volume_failure_.empty() ? "snapshot " + l.snapshot.substr(0, 8) + ", " +
                                                   std::to_string(l.files) + " files, " + std::to_string(l.bytes) +
                                                   " bytes"
                                             : "not restored: " + volume_failure_};
        if (!o_.to_dir.empty()) r.result = "skipped";  // --to-dir restores no data at all
        Record(std::move(r));
      }
      return;
    }
    for (auto& v : RestoreVolumes(*client_, links_, o_.mapping.namespaces, marker_, *o_.volumes)) {
      Record({"volume-data", v.ns, v.pvc, v.result, v.reason});
    }
  }

  repo::Repository& repo_;
  const repo::Snapshot& snap_;
  Client* client_;
  const ClusterRestoreOptions& o_;
  const std::function<void(const ItemResult&)>& on_item_;
  std::map<std::string, KindInfo> kinds_;
  std::unordered_map<std::string, std::string> kind_of_;  // "Kind/group" -> qualified
  std::unordered_set<std::string> names_;                 // "qualified/ns/name" of every object restored
  std::map<std::string, std::set<std::string>> served_;   // group/version -> qualified kinds served
  std::set<std::string> ensured_;
  std::vector<std::unique_ptr<Client>> workers_;  // connections for the objects of large kinds
  std::mutex record_mu_;                          // guards res_ while workers record
  ClusterRestoreResult res_;
  std::vector<VolumeLink> links_;                            // PVCs with files in the backup
  std::set<std::string> linked_pvs_;                         // their old PVs: not restored
  std::map<std::string, std::set<std::string>> wait_pvcs_;   // mapped namespace -> PVCs pods wait for
  std::string wait_image_, marker_, volume_failure_;
};

}  // namespace

Result<ClusterRestoreResult> RestoreCluster(repo::Repository& repo, const repo::Snapshot& snapshot, Client* client,
                                            const ClusterRestoreOptions& options,
                                            const std::function<void(const ItemResult&)>& on_item) {
  return Restorer(repo, snapshot, client, options, on_item).Run();
}

}  // namespace lifeboat::k8s
