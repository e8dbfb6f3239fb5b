// The one list of the agent's services, in start order (stopped in reverse).
// A service later in the list may use what an earlier one provides.
#include "agent/agent.h"
#include "agent/services/backup/backup_service.h"
#include "agent/services/database/database_service.h"
#include "agent/services/drills/drills_service.h"
#include "agent/services/failover/failover_service.h"
#include "agent/services/proxy/proxy_service.h"
#include "agent/services/replication/replication_service.h"
#include "agent/services/traffic/traffic_service.h"

namespace lifeboat::agent {

std::vector<ServiceFactory> DefaultServices() {
  return {
      MakeTrafficService,      // health checks, routing controls, DNS; provides TrafficSwitch, RoutingView
      MakeProxyService,        // the L4 proxy's listeners; uses RoutingView
      MakeReplicationService,  // volume roles, streams and receivers; provides VolumeRoles
      MakeBackupService,       // scheduled backups at each volume's source; uses VolumeRoles
      MakeDatabaseService,     // this region's PostgreSQL servers, brought to the epoch; provides DatabaseRoles
      MakeFailoverService,     // views, detection, runbooks, reconciling roles to the epoch; uses all of them
      MakeDrillsService,       // the drills recorded in the store: status, the drill alert's metric
  };
}

}  // namespace lifeboat::agent
