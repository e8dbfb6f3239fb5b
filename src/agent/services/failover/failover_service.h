// The failover service: the agent's part of the failover engine.
//
// Every agent (the witness too) runs it. Each tick it
//   - renews its lease and publishes its view of the primary under it
//     (state::keys::ViewOf; orchestrate::Detector decides what it sees);
//   - reconciles this region's copies of the volumes to the primary record:
//     promotes them when this region became primary, fences a source whose
//     epoch is superseded, re-points a target at the new primary;
//   - with `failover.mode: automatic`, when a quorum of views sees the
//     primary down and this region is the chosen target, begins a run and
//     drives it (orchestrate::Runbook) on its worker; any serving agent
//     resumes a run whose driver died;
//   - when this region is primary and the store has been unreachable for a
//     whole lease, fences itself: stops sending every volume and runs the
//     plan's self-fence hook, until the store answers again.
// Manual failover: POST /v1/failover {"to": REGION, "planned": BOOL, "force": BOOL, "by": WHO}; a planned one
// switches the old primary off, waits until its volumes are in sync at the
// target, and only then moves the epoch; the old primary then follows.
#pragma once

#include <memory>

#include "agent/service.h"

namespace lifeboat::agent {

// nullptr when the plan has fewer than two regions or no primary.
Result<std::unique_ptr<Service>> MakeFailoverService(ServiceContext& ctx);

}  // namespace lifeboat::agent
