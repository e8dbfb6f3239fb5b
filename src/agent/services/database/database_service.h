// The database service, in every agent whose region has a server of one of
// the plan's databases: watches that server (role, lag behind the primary's
// server, sync standbys), brings it to the failover epoch (promotes it when
// the epoch makes this region primary, fences it when the epoch moves to
// another), keeps a sync database's synchronous standbys (degrading to
// asynchronous with an alert when the plan says so), and fences its primary
// while the agent's failover service holds writes (self-fence).
// Provides DatabaseRoles. Status section: "databases". Metrics:
// lifeboat_db_up, lifeboat_db_primary, lifeboat_db_fenced,
// lifeboat_db_lag_bytes, lifeboat_db_lag_seconds, lifeboat_db_sync_degraded
// (each {database}), lifeboat_db_actions_total{database,action,result}.
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

Result<std::unique_ptr<Service>> MakeDatabaseService(ServiceContext& ctx);

}  // namespace lifeboat::agent
