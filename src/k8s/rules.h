// What a cluster backup leaves out, where each object goes in a backup, and
// how a restore prepares an object and orders the kinds: pure functions,
// tested on their own (k8s_test.cc). docs/kubernetes.md lists the rules.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "k8s/client.h"

namespace lifeboat::k8s {

inline constexpr const char* kCrdKind = "customresourcedefinitions.apiextensions.k8s.io";

// The string at `path` in `j` (objects only), or "" when there is none.
std::string StringAt(const Json& j, std::initializer_list<const char*> path);

// Runtime objects, never backed up: nodes, events, leases, endpoints and
// endpoint slices, controller revisions, component statuses, and the
// review/request kinds that cannot be listed. By qualified resource name.
bool NeverBackedUp(const std::string& qualified);
const std::vector<std::string>& NeverBackedUpList();

// A backup's file for an object: resources/<resource>[.<group>]/namespaces/<ns>/<name>.json,
// or resources/<resource>[.<group>]/cluster/<name>.json when cluster-scoped.
std::string ObjectPath(const std::string& qualified, const std::string& ns, const std::string& name);
struct ObjectRef {
  std::string qualified, ns, name;  // ns empty: cluster-scoped
};
// The inverse; nullopt for any other path.
std::optional<ObjectRef> ParseObjectPath(const std::string& path);

// Velero's default restore priorities (lower first); kinds not listed come
// after, alphabetically.
int RestorePriority(const std::string& qualified);

// Kinds in restore order: `before` holds (a, b) when a must come before b
// (b refers to a). Kahn's algorithm, the lowest priority first among the
// ready ones; a cycle is broken by the priorities, and each break is said
// in `broken` ("cycle: x before y despite a reference").
std::vector<std::string> RestoreOrder(const std::set<std::string>& kinds,
                                      const std::set<std::pair<std::string, std::string>>& before,
                                      std::vector<std::string>* broken = nullptr);

// The kinds `obj` refers to by name (qualified): a pod template's config
// maps, secrets, PVCs and service account; a stateful set's or a PVC's
// storage class; a binding's role and subjects' service accounts; an
// ingress's services and TLS secrets. (A custom resource's CRD is known
// from its kind alone; the restore adds that.)
std::set<std::string> ReferencedKinds(const std::string& qualified, const Json& obj);

struct RestoreMapping {
  std::map<std::string, std::string> namespaces;      // old -> new
  std::map<std::string, std::string> storage_classes; // old -> new
};

// Whether the object named by an owner reference (its apiVersion, kind,
// and namespace and name) is restored too.
using InRestore = std::function<bool(const std::string& api_version, const std::string& kind, const std::string& ns,
                                     const std::string& name)>;

// Why an object is not restored at all, or "": a pod, replica set or job
// whose controller is restored too and makes it again; a service account
// token Secret (the new cluster makes its own).
std::string SkipReason(const std::string& qualified, const Json& obj, const InRestore& in_restore);

// The object as it is sent to the new cluster: namespace and storage
// classes mapped; cluster-assigned fields removed (uid, resourceVersion,
// generation, creationTimestamp, managedFields, selfLink, deletionTimestamp,
// status, a pod's nodeName, a Service's clusterIP(s) unless headless, a
// PVC's volumeName and bind annotations when its PV is not restored); owner
// references to objects restored too are dropped (their uids change).
Json PrepareForRestore(Json obj, const std::string& qualified, const RestoreMapping& mapping, bool pv_restored,
                       const InRestore& in_restore);

// Glob match (fnmatch, no special meaning for '/').
bool GlobMatch(const std::string& glob, const std::string& s);

}  // namespace lifeboat::k8s
