// A drill's report as one self-contained HTML page (inline CSS and SVG, no
// script, nothing fetched): the verdict at the top, the figures beside the
// objectives, and a timeline of the client's writes (acknowledged by the
// old primary, by the new one, failed, and the acknowledged ones that were
// lost), the fault, the failover run and each of its steps, the recovery,
// and the RTO objective drawn as a line from the first failure.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "drill/measure.h"

namespace lifeboat::drill {

// `report` is the drill's JSON report (drill.json); `attempts` the client's.
// Every text from the report is escaped.
std::string RenderHtml(const nlohmann::ordered_json& report, const std::vector<Attempt>& attempts);

// The client's attempts in the compact form a drill's record in the state
// store keeps (about 30 bytes each): {"t0": UTC, "targets": [...],
// "errors": [...], "rows": [[seq, start_us, end_us, target, acked, error]]},
// times in microseconds after t0, target and error as indexes (-1: none).
nlohmann::ordered_json CompactAttempts(const std::vector<Attempt>& attempts);
// The attempts back. The record comes from a store: a row that does not fit
// the form is skipped, an index out of range reads as none.
std::vector<Attempt> ExpandAttempts(const nlohmann::ordered_json& compact);

}  // namespace lifeboat::drill
