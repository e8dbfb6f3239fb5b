// Scaling Deployments and StatefulSets and waiting until they are ready:
// the runbook step `scale` (capacity in a pilot-light or warm-standby
// region before its traffic arrives).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/units.h"
#include "k8s/client.h"
#include "plan/plan.h"

namespace lifeboat::k8s {

// Whether a Deployment or StatefulSet, as read from the API, has finished
// rolling out `want` replicas, by the rules of `kubectl rollout status`:
// the controller has seen the current generation; for a Deployment every
// replica is updated, no old one is left and all are available; for a
// StatefulSet `want` are ready and no more exist. When not, `why` says what
// the status shows ("2 of 3 ready").
bool RolledOut(const Json& object, int want, std::string* why = nullptr);

struct ScaledWorkload {
  plan::ScaleTarget target;
  int from = 0;        // spec.replicas before
  bool ready = false;  // rolled out within the time
  std::string why;     // when not ready: what its status showed last
};

struct ScaleResult {
  std::vector<ScaledWorkload> workloads;
  bool AllReady() const;
  // "deployment shop/web 0->3 ready; statefulset shop/db 0->1 not ready (0 of 1 ready)"
  std::string Summary() const;
};

// Sets each workload's spec.replicas (a merge patch; one already at its
// count is left as it is), then polls every `poll` until all have rolled out,
// `timeout` has passed or `stop` returns true. An error means a workload
// could not be read or patched (missing: NotFound naming it); a timeout is
// a result with workloads not ready.
Result<ScaleResult> ScaleWorkloads(Client& client, const std::vector<plan::ScaleTarget>& targets, Duration timeout,
                                   const std::function<bool()>& stop = {},
                                   Duration poll = std::chrono::milliseconds(500));

// The API path of a workload: /apis/apps/v1/namespaces/NS/deployments/NAME.
std::string WorkloadPath(const plan::ScaleTarget& t);

}  // namespace lifeboat::k8s
