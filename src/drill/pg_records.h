// The sample application's records in a region's PostgreSQL server, for
// drills of a plan whose data lives in a database (`lifeboat app serve
// --database NAME`): one row a record in the table
//
//   lifeboat_drill_records (n bigint PRIMARY KEY, body bytea NOT NULL)
//
// made on the first write. A write is acknowledged when its transaction
// commits (in sync mode: once the standby has flushed it), so a record the
// drill's client saw acknowledged and the new primary lacks is a committed
// transaction lost. A standby (or a fenced primary) refuses writes: the
// application answers 503 and the client counts a failure.
#pragma once

#include <memory>

#include "drill/app.h"
#include "postgres/conn.h"

namespace lifeboat::drill {

// Records in the server `target` names. One connection, opened on first use
// and again after it broke; every statement within `timeout` (a server that
// stops answering costs a request that long, never a hung application).
std::shared_ptr<Records> PostgresRecords(postgres::Target target, Duration timeout = std::chrono::seconds(2));

}  // namespace lifeboat::drill
