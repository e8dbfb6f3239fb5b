// The epoch's rules for a region's copy of a volume, as pure functions: the
// replication service and the failover service apply them, and the
// simulation test checks them under every fault it can schedule.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "state/keys.h"

namespace lifeboat::orchestrate {

// Whether a copy with `role` accepts a replication session from `sender` at
// `epoch`: only a target (neither a source nor fenced), only from the region
// it follows, only at its epoch or later. The error says which rule refused.
Status AdmitSender(const state::VolumeRole& role, std::string_view sender, uint64_t epoch);

enum class VolumeAction { kNone, kPromote, kFence, kFollow };
const char* Name(VolumeAction a);

// What `here`'s copy must do to match the primary record `primary`:
//   - this region is primary and its copy is a target or fenced, of an older
//     epoch: promote at the primary's epoch;
//   - its copy is an active source of an older epoch: follow the new
//     primary when `last_run` was a planned failover away from here to it
//     at this epoch (the copy was in sync when the epoch moved), else fence
//     (the copy may hold writes the new primary never got, or lack some);
//   - its copy is a target of another region, of an older epoch, and the
//     new primary holds a copy (`primary_has_copy`): follow the new primary.
VolumeAction Reconcile(const state::VolumeRole& role, const state::PrimaryRecord& primary,
                       const std::optional<state::FailoverRun>& last_run, const std::string& here,
                       bool primary_has_copy);

}  // namespace lifeboat::orchestrate
