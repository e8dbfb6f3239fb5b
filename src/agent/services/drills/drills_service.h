// The drills service, in every agent: follows the drills recorded in the
// state store (drills/{id}, written by `lifeboat drill run`) and shows the
// newest in status and on the status page; exports each scenario's last
// verdict for the drill alert (LifeboatDrillFailed).
// Status section: "drills" (recent: newest first). Metrics:
// lifeboat_drill_last_passed{scenario}, lifeboat_drill_last_timestamp_seconds{scenario}.
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

Result<std::unique_ptr<Service>> MakeDrillsService(ServiceContext& ctx);

}  // namespace lifeboat::agent
