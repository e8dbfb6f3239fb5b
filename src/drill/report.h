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

}  // namespace lifeboat::drill
