// Drills kept in a state store (drills/{id}, state/keys.h): what
// `lifeboat drill run` records at its end, what `lifeboat drill report`
// lists, and what every agent's drills service shows and exports.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "state/keys.h"

namespace lifeboat::drill {

// How many drills a store keeps: recording one more drops the oldest.
inline constexpr size_t kKeptDrills = 50;

// "20261203T130501Z-region-outage": the drill's start (UTC, to the second)
// and its scenario, so that the store's key order is the drills' time order.
std::string DrillId(Clock::TimePoint started, std::string_view scenario);

// Writes `record` and deletes the oldest beyond kKeptDrills.
Status RecordDrill(state::Store& store, const state::DrillRecord& record);

// Every drill in `store`, oldest first; a record that does not decode is
// DataLoss naming its key.
Result<std::vector<state::DrillRecord>> ListDrills(state::Store& store);

}  // namespace lifeboat::drill
