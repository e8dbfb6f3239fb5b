#include "k8s/rules.h"

#include <fnmatch.h>

#include <algorithm>

#include "core/json_read.h"

namespace lifeboat::k8s {
namespace {

const Json* At(const Json& j, std::initializer_list<const char*> path) {
  const Json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(k);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}


void PodSpecRefs(const Json* spec, std::set<std::string>& out) {
  if (spec == nullptr || !spec->is_object()) return;
  if (!StringAt(*spec, {"serviceAccountName"}).empty()) out.insert("serviceaccounts");
  if (const Json* ips = At(*spec, {"imagePullSecrets"}); ips != nullptr && ips->is_array() && !ips->empty()) {
    out.insert("secrets");
  }
  if (const Json* vols = At(*spec, {"volumes"}); vols != nullptr && vols->is_array()) {
    for (const auto& v : *vols) {
      if (At(v, {"configMap"}) != nullptr) out.insert("configmaps");
      if (At(v, {"secret"}) != nullptr) out.insert("secrets");
      if (At(v, {"persistentVolumeClaim"}) != nullptr) out.insert("persistentvolumeclaims");
      if (const Json* srcs = At(v, {"projected", "sources"}); srcs != nullptr && srcs->is_array()) {
        for (const auto& s : *srcs) {
          if (At(s, {"configMap"}) != nullptr) out.insert("configmaps");
          if (At(s, {"secret"}) != nullptr) out.insert("secrets");
        }
      }
    }
  }
  for (const char* list : {"containers", "initContainers"}) {
    const Json* cs = At(*spec, {list});
    if (cs == nullptr || !cs->is_array()) continue;
    for (const auto& c : *cs) {
      if (const Json* ef = At(c, {"envFrom"}); ef != nullptr && ef->is_array()) {
        for (const auto& e : *ef) {
          if (At(e, {"configMapRef"}) != nullptr) out.insert("configmaps");
          if (At(e, {"secretRef"}) != nullptr) out.insert("secrets");
        }
      }
      if (const Json* env = At(c, {"env"}); env != nullptr && env->is_array()) {
        for (const auto& e : *env) {
          if (At(e, {"valueFrom", "configMapKeyRef"}) != nullptr) out.insert("configmaps");
          if (At(e, {"valueFrom", "secretKeyRef"}) != nullptr) out.insert("secrets");
        }
      }
    }
  }
}

void EraseAt(Json& j, std::initializer_list<const char*> path) {
  Json* cur = &j;
  const char* last = nullptr;
  for (const char* k : path) {
    if (last != nullptr) {
      if (!cur->is_object() || !cur->contains(last)) return;
      cur = &(*cur)[last];
    }
    last = k;
  }
  if (cur->is_object() && last != nullptr) cur->erase(last);
}

void MapString(Json& j, const char* key, const std::map<std::string, std::string>& m) {
  if (!j.is_object()) return;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return;
  auto to = m.find(it->get<std::string>());
  if (to != m.end()) *it = to->second;
}

// "apps/v1" -> "apps"; "v1" -> "".
std::string GroupOf(const std::string& api_version) {
  auto slash = api_version.find('/');
  return slash == std::string::npos ? std::string() : api_version.substr(0, slash);
}

}  // namespace

std::string StringAt(const Json& j, std::initializer_list<const char*> path) {
  const Json* v = At(j, path);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

const std::vector<std::string>& NeverBackedUpList() {
  static const std::vector<std::string> kList = {
      "nodes",
      "events",
      "events.events.k8s.io",
      "leases.coordination.k8s.io",
      "endpoints",
      "endpointslices.discovery.k8s.io",
      "controllerrevisions.apps",
      "componentstatuses",
      "bindings",
      "tokenreviews.authentication.k8s.io",
      "selfsubjectreviews.authentication.k8s.io",
      "localsubjectaccessreviews.authorization.k8s.io",
      "selfsubjectaccessreviews.authorization.k8s.io",
      "selfsubjectrulesreviews.authorization.k8s.io",
      "subjectaccessreviews.authorization.k8s.io",
      "certificatesigningrequests.certificates.k8s.io",
      "nodes.metrics.k8s.io",
      "pods.metrics.k8s.io",
      "csinodes.storage.k8s.io",
      "volumeattachments.storage.k8s.io",
      "flowschemas.flowcontrol.apiserver.k8s.io",
      "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
  };
  return kList;
}

bool NeverBackedUp(const std::string& qualified) {
  const auto& l = NeverBackedUpList();
  return std::find(l.begin(), l.end(), qualified) != l.end();
}

std::string ObjectPath(const std::string& qualified, const std::string& ns, const std::string& name) {
  if (ns.empty()) return "resources/" + qualified + "/cluster/" + name + ".json";
  return "resources/" + qualified + "/namespaces/" + ns + "/" + name + ".json";
}

std::optional<ObjectRef> ParseObjectPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  auto name_of = [](const std::string& file) -> std::optional<std::string> {
    if (file.size() <= 5 || !file.ends_with(".json")) return std::nullopt;
    return file.substr(0, file.size() - 5);
  };
  if (parts.size() == 4 && parts[0] == "resources" && parts[2] == "cluster") {
    auto n = name_of(parts[3]);
    if (!n || parts[1].empty()) return std::nullopt;
    return ObjectRef{parts[1], "", *n};
  }
  if (parts.size() == 5 && parts[0] == "resources" && parts[2] == "namespaces" && !parts[3].empty()) {
    auto n = name_of(parts[4]);
    if (!n || parts[1].empty()) return std::nullopt;
    return ObjectRef{parts[1], parts[3], *n};
  }
  return std::nullopt;
}

int RestorePriority(const std::string& q) {
  static const std::vector<std::vector<std::string>> kTiers = {
      {"customresourcedefinitions.apiextensions.k8s.io"},
      {"namespaces"},
      {"storageclasses.storage.k8s.io"},
      {"persistentvolumes"},
      {"persistentvolumeclaims"},
      {"serviceaccounts"},
      {"clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io"},
      {"clusterrolebindings.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io"},
      {"secrets"},
      {"configmaps"},
      {"limitranges", "resourcequotas"},
      {"cronjobs.batch", "daemonsets.apps", "deployments.apps", "jobs.batch", "pods", "replicasets.apps",
       "statefulsets.apps"},
      {"services"},
  };
  for (size_t i = 0; i < kTiers.size(); ++i) {
    if (std::find(kTiers[i].begin(), kTiers[i].end(), q) != kTiers[i].end()) return static_cast<int>(i);
  }
  return static_cast<int>(kTiers.size());
}

std::vector<std::string> RestoreOrder(const std::set<std::string>& kinds,
                                      const std::set<std::pair<std::string, std::string>>& before,
                                      std::vector<std::string>* broken) {
  auto less = [](const std::string& a, const std::string& b) {
    int pa = RestorePriority(a), pb = RestorePriority(b);
    return pa != pb ? pa < pb : a < b;
  };
  std::map<std::string, std::set<std::string>> waits_for;  // kind -> kinds that must come first
  for (const auto& k : kinds) waits_for[k];
  for (const auto& [a, b] : before) {
    if (a != b && kinds.count(a) && kinds.count(b)) waits_for[b].insert(a);
  }
  std::vector<std::string> order;
  while (!waits_for.empty()) {
    std::optional<std::string> pick;
    for (const auto& [k, deps] : waits_for) {
      if (deps.empty() && (!pick || less(k, *pick))) pick = k;
    }
    if (!pick) {  // a cycle: the lowest priority goes first anyway
      for (const auto& [k, deps] : waits_for) {
        if (!pick || less(k, *pick)) pick = k;
      }
      if (broken != nullptr) {
        std::string deps;
        for (const auto& d : waits_for[*pick]) deps += (deps.empty() ? "" : ", ") + d;
        broken->push_back("cycle: " + *pick + " restored before " + deps + ", which it refers to (by priority)");
      }
    }
    order.push_back(*pick);
    waits_for.erase(*pick);
    for (auto& [k, deps] : waits_for) deps.erase(*pick);
  }
  return order;
}

std::set<std::string> ReferencedKinds(const std::string& q, const Json& obj) {
  std::set<std::string> out;
  if (q == "pods") PodSpecRefs(At(obj, {"spec"}), out);
  if (q == "deployments.apps" || q == "statefulsets.apps" || q == "daemonsets.apps" || q == "replicasets.apps" ||
      q == "jobs.batch") {
    PodSpecRefs(At(obj, {"spec", "template", "spec"}), out);
  }
  if (q == "cronjobs.batch") PodSpecRefs(At(obj, {"spec", "jobTemplate", "spec", "template", "spec"}), out);
  if (q == "statefulsets.apps") {
    if (const Json* t = At(obj, {"spec", "volumeClaimTemplates"}); t != nullptr && t->is_array()) {
      for (const auto& c : *t) {
        if (!StringAt(c, {"spec", "storageClassName"}).empty()) out.insert("storageclasses.storage.k8s.io");
      }
    }
  }
  if (q == "persistentvolumeclaims") {
    if (!StringAt(obj, {"spec", "storageClassName"}).empty()) out.insert("storageclasses.storage.k8s.io");
    if (!StringAt(obj, {"spec", "volumeName"}).empty()) out.insert("persistentvolumes");
  }
  if (q == "persistentvolumes" && !StringAt(obj, {"spec", "storageClassName"}).empty()) {
    out.insert("storageclasses.storage.k8s.io");
  }
  if (q == "rolebindings.rbac.authorization.k8s.io" || q == "clusterrolebindings.rbac.authorization.k8s.io") {
    std::string kind = StringAt(obj, {"roleRef", "kind"});
    if (kind == "Role") out.insert("roles.rbac.authorization.k8s.io");
    if (kind == "ClusterRole") out.insert("clusterroles.rbac.authorization.k8s.io");
    if (const Json* subs = At(obj, {"subjects"}); subs != nullptr && subs->is_array()) {
      for (const auto& s : *subs) {
        if (StringAt(s, {"kind"}) == "ServiceAccount") out.insert("serviceaccounts");
      }
    }
  }
  if (q == "ingresses.networking.k8s.io") {
    if (const Json* tls = At(obj, {"spec", "tls"}); tls != nullptr && tls->is_array() && !tls->empty()) {
      out.insert("secrets");
    }
    if (At(obj, {"spec", "defaultBackend", "service"}) != nullptr || At(obj, {"spec", "rules"}) != nullptr) {
      out.insert("services");
    }
  }
  return out;
}

std::string SkipReason(const std::string& q, const Json& obj, const InRestore& in_restore) {
  if (q == "secrets" && StringAt(obj, {"type"}) == "kubernetes.io/service-account-token") {
    return "a service account token: the new cluster makes its own";
  }
  if (q != "pods" && q != "replicasets.apps" && q != "jobs.batch") return "";
  const Json* owners = At(obj, {"metadata", "ownerReferences"});
  if (owners == nullptr || !owners->is_array()) return "";
  std::string ns = StringAt(obj, {"metadata", "namespace"});
  for (const auto& o : *owners) {
    if (!o.is_object() || !json::Bool(o, "controller")) continue;
    std::string av = StringAt(o, {"apiVersion"}), kind = StringAt(o, {"kind"}), name = StringAt(o, {"name"});
    if (in_restore && in_restore(av, kind, ns, name)) {
      std::string group = GroupOf(av);
      return "made by its controller " + kind + (group.empty() ? "" : "." + group) + " " + name +
             ", which is restored";
    }
  }
  return "";
}

Json PrepareForRestore(Json obj, const std::string& q, const RestoreMapping& mapping, bool pv_restored,
                       const InRestore& in_restore) {
  if (!obj.is_object()) return obj;
  std::string ns = StringAt(obj, {"metadata", "namespace"});
  Json& meta = obj["metadata"];
  if (meta.is_object()) {
    for (const char* k : {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                          "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      meta.erase(k);
    }
    if (auto it = meta.find("ownerReferences"); it != meta.end() && it->is_array()) {
      Json kept = Json::array();
      for (const auto& o : *it) {
        bool restored = in_restore && o.is_object() &&
                        in_restore(StringAt(o, {"apiVersion"}), StringAt(o, {"kind"}), ns, StringAt(o, {"name"}));
        if (!restored) kept.push_back(o);
      }
      if (kept.empty()) {
        meta.erase("ownerReferences");
      } else {
        *it = kept;
      }
    }
    if (!ns.empty()) MapString(meta, "namespace", mapping.namespaces);
    if (q == "namespaces") MapString(meta, "name", mapping.namespaces);
    if (auto ann = meta.find("annotations"); ann != meta.end() && ann->is_object()) {
      MapString(*ann, "volume.beta.kubernetes.io/storage-class", mapping.storage_classes);
      if (q == "persistentvolumeclaims" && !pv_restored) {
        ann->erase("pv.kubernetes.io/bind-completed");
        ann->erase("pv.kubernetes.io/bound-by-controller");
      }
      if (ann->empty()) meta.erase("annotations");
    }
  }
  obj.erase("status");
  if (q == "pods") EraseAt(obj, {"spec", "nodeName"});
  if (q == "services") {
    Json* spec = obj.contains("spec") ? &obj["spec"] : nullptr;
    if (spec != nullptr && spec->is_object() && StringAt(*spec, {"clusterIP"}) != "None") {
      spec->erase("clusterIP");
      spec->erase("clusterIPs");
    }
  }
  if (q == "persistentvolumeclaims" || q == "persistentvolumes") {
    if (obj.contains("spec")) MapString(obj["spec"], "storageClassName", mapping.storage_classes);
  }
  if (q == "persistentvolumeclaims" && !pv_restored) EraseAt(obj, {"spec", "volumeName"});
  if (q == "persistentvolumes") {
    EraseAt(obj, {"spec", "claimRef", "uid"});
    EraseAt(obj, {"spec", "claimRef", "resourceVersion"});
    if (obj.contains("spec") && obj["spec"].is_object() && obj["spec"].contains("claimRef")) {
      MapString(obj["spec"]["claimRef"], "namespace", mapping.namespaces);
    }
  }
  if (q == "statefulsets.apps") {
    Json* spec = obj.contains("spec") ? &obj["spec"] : nullptr;
    if (spec != nullptr && spec->is_object() && spec->contains("volumeClaimTemplates") &&
        (*spec)["volumeClaimTemplates"].is_array()) {
      for (auto& t : (*spec)["volumeClaimTemplates"]) {
        if (t.is_object() && t.contains("spec")) MapString(t["spec"], "storageClassName", mapping.storage_classes);
        if (t.is_object()) t.erase("status");
      }
    }
  }
  if (q == "rolebindings.rbac.authorization.k8s.io" || q == "clusterrolebindings.rbac.authorization.k8s.io") {
    if (obj.contains("subjects") && obj["subjects"].is_array()) {
      for (auto& s : obj["subjects"]) MapString(s, "namespace", mapping.namespaces);
    }
  }
  return obj;
}

bool GlobMatch(const std::string& glob, const std::string& s) { return ::fnmatch(glob.c_str(), s.c_str(), 0) == 0; }

}  // namespace lifeboat::k8s
