// Persistent volumes' files in cluster backups (file-system backup, as
// Velero's --default-volumes-to-fs-backup), through the node agents
// (agent/node_agent.h, a DaemonSet in deploy/kubernetes/):
//
//   backup:  for each PVC a running pod of the selection mounts, the node
//            agent of the pod's node backs up the volume's directory into
//            the same location, as a snapshot of source pvc:CLUSTER/NS/NAME;
//            the cluster backup's lifeboat-backup.json lists the links.
//   restore: the PVCs are created without their old PV; the workloads that
//            mount them get an init container, lifeboat-restore-wait, that
//            waits for a marker file in each such volume. Once a pod is on a
//            node and its volume bound, that node's agent restores the files
//            into the new volume and writes the marker; the pod then starts.
//
// Node agents are found as pods labelled app.kubernetes.io/name=lifeboat,
// app.kubernetes.io/component=node-agent in one namespace (only there: the
// admin token goes to them), through their pod IP and the container port
// named node-api.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/result.h"
#include "k8s/client.h"

namespace lifeboat::k8s {

struct Selection;

struct NodeAgentAccess {
  std::string ns = "lifeboat";  // the node agents' namespace
  std::string token;            // the admin token they check
  std::chrono::milliseconds poll{500};
  std::chrono::seconds job_timeout{6 * 3600};  // one volume's backup or restore
};

struct NodeAgentRef {
  std::string node, pod, url, image;  // url: http://IP:PORT
};

// The running node agents of the cluster, by node name.
Result<std::map<std::string, NodeAgentRef>> FindNodeAgents(Client& client, const std::string& ns);

// One PVC's files in a cluster backup.
struct VolumeLink {
  std::string ns, pvc, pod, node, pv, storage_class;
  std::string snapshot;  // empty when the backup failed
  uint64_t files = 0, bytes = 0, file_errors = 0;
  std::string error;
  Json ToJson() const;
  static VolumeLink FromJson(const Json& j);
};

struct VolumeBackupOptions {
  std::string location;  // the plan location the node agents write to
  std::string cluster;   // the region, for the snapshots' source
  std::vector<std::string> tags;
  std::string schedule;
  NodeAgentAccess agents;
};

// Backs up the files of every PVC that a running pod in the selection (and
// matching `selector`) mounts: one link per PVC, a failed one with its
// reason. An error only when the pods cannot be listed.
Result<std::vector<VolumeLink>> BackupVolumes(Client& client, const Selection& select, const std::string& selector,
                                              const VolumeBackupOptions& o,
                                              const std::function<void(const VolumeLink&)>& on_link = {});

// Adds the lifeboat-restore-wait init container to a pod, or to the pod
// template of a workload (deployments, statefulsets, daemonsets,
// replicasets, jobs, cronjobs), when it mounts one of `pvcs` (names in
// `ns`; a StatefulSet's claim templates included). It waits for
// .lifeboat-restore/MARKER in each such volume. Returns whether it added it.
bool AddRestoreWait(Json& obj, const std::string& qualified, const std::set<std::string>& pvcs,
                    const std::string& image, const std::string& marker);

struct VolumeRestoreOptions {
  std::string location;  // where the links' snapshots are
  NodeAgentAccess agents;
  std::chrono::seconds wait{600};  // for a pod that mounts the new PVC to be scheduled
};

// Restores each link's files into the PVC NS/NAME (already mapped) through
// the node agent of the node its pod runs on, writing `marker` after. One
// result per link: "restored" with files and bytes, or "failed" and why.
struct VolumeRestoreResult {
  std::string ns, pvc, node, result, reason;
  uint64_t files = 0, bytes = 0;
};
std::vector<VolumeRestoreResult> RestoreVolumes(Client& client, const std::vector<VolumeLink>& links,
                                                const std::map<std::string, std::string>& namespace_map,
                                                const std::string& marker, const VolumeRestoreOptions& o,
                                                const std::function<bool()>& stop = {});

}  // namespace lifeboat::k8s
