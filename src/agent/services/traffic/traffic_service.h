// The traffic service, when the plan has a dns section and this region
// serves (a witness does not): health checks of every endpoint, routing
// controls in the state store, and the authoritative DNS server, tied
// together: every change of health or of a routing control builds and
// publishes a new answer snapshot.
// Provides: TrafficSwitch. Status section: "traffic" (health,
// routing_controls, dns). Admin API: GET /v1/routing-controls,
// PUT /v1/routing-controls/REGION (bearer token).
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

Result<std::unique_ptr<Service>> MakeTrafficService(ServiceContext& ctx);

}  // namespace lifeboat::agent
