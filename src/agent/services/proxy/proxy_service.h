// The proxy service, in a primary or standby agent whose plan has a proxy
// section (and in `lifeboat proxy serve`): runs the L4 proxy's listeners
// (proxy/proxy.h) and feeds them every routing state the traffic service
// publishes (RoutingView), the same one its DNS answers go by.
// Status section: "proxy" (each listener: where it sends new connections,
// each target's state, connections and bytes). Metrics: lifeboat_proxy_*.
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

Result<std::unique_ptr<Service>> MakeProxyService(ServiceContext& ctx);

}  // namespace lifeboat::agent
