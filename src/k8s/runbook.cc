#include "k8s/runbook.h"

#include <algorithm>

#include "backup/location.h"
#include "core/clock.h"
#include "core/units.h"
#include "k8s/cluster_backup.h"
#include "k8s/workloads.h"

namespace lifeboat::k8s {

Result<std::unique_ptr<Client>> ConnectCluster(const plan::Plan& plan, const std::string& region) {
  const plan::Cluster* c = plan.FindCluster(region);
  if (c == nullptr) {
    std::string names;
    for (const auto& cl : plan.clusters) names += (names.empty() ? "" : ", ") + cl.region;
    return InvalidArgument("the plan has no cluster for region '" + region + "'" +
                           (names.empty() ? std::string(" (it has no clusters section)") : " (it has " + names + ")"));
  }
  Result<Access> access = c->kubeconfig == "in-cluster" ? InClusterAccess() : LoadKubeconfig(c->kubeconfig, c->context);
  if (!access.ok()) return access.error();
  ClientOptions options;
  options.qps = c->qps;
  options.burst = c->burst;
  return Client::Create(std::move(*access), options);
}

Result<std::string> ScaleStep(const plan::Plan& plan, const std::string& region, const std::function<bool()>& stop) {
  const plan::Cluster* c = plan.FindCluster(region);
  if (c == nullptr || c->scale.empty()) return "nothing to scale in " + region + " (no clusters." + region + ".scale)";
  LB_ASSIGN_OR_RETURN(auto client, ConnectCluster(plan, region));
  LB_ASSIGN_OR_RETURN(ScaleResult r, ScaleWorkloads(*client, c->scale, c->scale_timeout, stop));
  if (!r.AllReady()) {
    return DeadlineExceeded("not rolled out within " + FormatDuration(c->scale_timeout) + " in " + region + ": " +
                            r.Summary());
  }
  return "scaled in " + region + ": " + r.Summary();
}

VolumeBackupOptions VolumeBackupFor(const plan::Plan& plan, const std::string& region, const std::string& location,
                                    const std::string& token) {
  VolumeBackupOptions o;
  o.location = location;
  o.cluster = region;
  o.agents.token = token;
  if (const plan::Cluster* c = plan.FindCluster(region)) o.agents.ns = c->node_agent_namespace;
  return o;
}

VolumeRestoreOptions VolumeRestoreFor(const plan::Plan& plan, const std::string& region, const std::string& location,
                                      const std::string& token) {
  VolumeRestoreOptions o;
  o.location = location;
  o.agents.token = token;
  if (const plan::Cluster* c = plan.FindCluster(region)) {
    o.agents.ns = c->node_agent_namespace;
    o.wait = std::chrono::duration_cast<std::chrono::seconds>(c->volume_wait);
  }
  return o;
}

Result<std::string> RestoreResourcesStep(const plan::Plan& plan, const std::string& region, const std::string& token) {
  const plan::Cluster* c = plan.FindCluster(region);
  if (c == nullptr || !c->restore) {
    return "nothing to restore into " + region + "'s cluster (no clusters." + region + ".restore)";
  }
  const plan::ClusterRestorePlan& rp = *c->restore;
  const plan::Location* loc = plan.FindLocation(rp.location);
  if (loc == nullptr) return InvalidArgument("the plan has no backup location '" + rp.location + "'");
  LB_ASSIGN_OR_RETURN(auto repo, backup::OpenLocation(*loc));
  LB_ASSIGN_OR_RETURN(auto snapshots, repo->ListSnapshots());
  const std::string source = "cluster:" + rp.from;
  const repo::Snapshot* newest = nullptr;
  for (const auto& s : snapshots) {
    if (s.source == source && (newest == nullptr || s.time_ns > newest->time_ns)) newest = &s;
  }
  if (newest == nullptr) {
    return NotFound("location " + rp.location + " holds no backup of the cluster of " + rp.from +
                    " (lifeboat backup create --cluster " + rp.from + ")");
  }
  LB_ASSIGN_OR_RETURN(auto client, ConnectCluster(plan, region));
  ClusterRestoreOptions o;
  o.select.namespaces = rp.namespaces;
  o.select.exclude_namespaces = rp.exclude_namespaces;
  o.mapping = {rp.namespace_map, rp.storage_class_map};
  o.existing = rp.update_existing ? Existing::kUpdate : Existing::kSkip;
  o.volumes = VolumeRestoreFor(plan, region, rp.location, token);
  LB_ASSIGN_OR_RETURN(ClusterRestoreResult r, RestoreCluster(*repo, *newest, client.get(), o));
  std::string summary = "backup " + newest->id.substr(0, 8) + " of " + rp.from + "'s cluster (" +
                        FormatUtc(Clock::TimePoint(std::chrono::duration_cast<Clock::TimePoint::duration>(
                            std::chrono::nanoseconds(newest->time_ns)))) + ") into " + region +
                        ": " + std::to_string(r.created) + " created, " + std::to_string(r.updated) + " updated, " +
                        std::to_string(r.skipped) + " skipped, " + std::to_string(r.failed) + " failed" +
                        (r.restored ? ", files of " + std::to_string(r.restored) + " PVC(s) restored" : "");
  if (r.Failed()) {
    std::string failures;
    int shown = 0;
    for (const auto& i : r.items) {
      if (i.result != "failed" || shown == 5) continue;
      ++shown;
      failures += "; " + i.kind + " " + (i.ns.empty() ? "" : i.ns + "/") + i.name + ": " + i.reason;
    }
    return Internal(summary + failures + (r.failed > 5 ? "; ..." : ""));
  }
  return summary;
}

}  // namespace lifeboat::k8s
