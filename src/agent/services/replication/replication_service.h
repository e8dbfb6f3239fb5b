// The replication service: for each volume with continuous replication and a
// path in this region, either sends (this region is the volume's source: one
// replicate::Stream per other region) or receives (a replicate::Receiver on
// the volume's port at this region's agent host). The role, the source it
// follows and an epoch live in the state store (state::keys::VolumeRoleOf).
// Promote and reverse run on the service's worker, never on the event loop
// (stopping sessions and watching a whole volume take seconds); their
// progress is in the volume's "change" in status.
// Provides: VolumeRoles. Status section: "replication". Admin API:
// GET /v1/replication, GET /v1/replication/VOLUME, GET|POST .../verify,
// POST .../promote, POST .../reverse (POSTs need the bearer token).
#pragma once

#include "agent/service.h"

namespace lifeboat::agent {

Result<std::unique_ptr<Service>> MakeReplicationService(ServiceContext& ctx);

}  // namespace lifeboat::agent
