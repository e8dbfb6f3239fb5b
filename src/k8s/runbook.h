// The plan's clusters as the runbook and the commands use them: a client of
// a region's cluster (kubeconfig or in-cluster), and the two runbook steps
// that act on the new primary's cluster, `scale` and `restore-resources`
// (plan keys clusters.REGION.scale and clusters.REGION.restore).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "k8s/client.h"
#include "k8s/volume_data.h"
#include "plan/plan.h"

namespace lifeboat::k8s {

// A client of the plan's cluster of `region`; InvalidArgument naming the
// clusters the plan has when it has none there.
Result<std::unique_ptr<Client>> ConnectCluster(const plan::Plan& plan, const std::string& region);

// The step `scale`: the workloads of clusters.REGION.scale set to their
// counts, waited for up to scale_timeout. The output names each one; an
// error when one is missing, cannot be patched or is not ready in time.
Result<std::string> ScaleStep(const plan::Plan& plan, const std::string& region, const std::function<bool()>& stop);

// The step `restore-resources`: the newest backup of the cluster of
// clusters.REGION.restore.from in its location, restored into REGION's
// cluster with the section's selection and mappings. Objects that exist are
// skipped (or updated), so that another attempt is safe. An error when
// there is no such backup or an object failed (the first few named).
// The backup's PVC files are restored too (through the node agents, with
// `token`).
Result<std::string> RestoreResourcesStep(const plan::Plan& plan, const std::string& region, const std::string& token);

// How PVC files go through the node agents of REGION's cluster: their
// namespace and the wait of clusters.REGION, the location, the token.
VolumeBackupOptions VolumeBackupFor(const plan::Plan& plan, const std::string& region, const std::string& location,
                                    const std::string& token);
VolumeRestoreOptions VolumeRestoreFor(const plan::Plan& plan, const std::string& region, const std::string& location,
                                      const std::string& token);

}  // namespace lifeboat::k8s
