// The backup service: runs the plan's backup schedules (cron, UTC) for the
// volumes whose source is this region, then applies the schedule's retention
// (ttl, keep) to that schedule's backups of each volume and prunes the
// location when it deleted any. It also keeps a catalog of the newest backup
// of each of those volumes in any location, manual or scheduled (listed
// after runs, every 5 minutes and on request), which `lifeboat status` shows.
//
// A schedule with a cluster backs up this region's Kubernetes cluster
// (k8s::BackupCluster) when the cluster is this region's, whatever its role.
//
// "The source" is SourceOf (agent/capabilities.h): the region the volume's
// replication role names, or the plan's primary for a volume that is not
// replicated; so after a failover the new primary takes the backups over.
// Status section: "backups" (schedules, latest, catalog). Admin API:
// GET /v1/backups; POST /v1/backups/SCHEDULE/run (bearer token) runs a
// schedule now; POST /v1/backups/refresh (bearer token) lists the locations.
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

// nullptr when the plan has neither backup locations nor schedules.
Result<std::unique_ptr<Service>> MakeBackupService(ServiceContext& ctx);

}  // namespace lifeboat::agent
