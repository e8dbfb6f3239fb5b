// The status page every agent serves at GET /status: one HTML page, no
// script and nothing fetched, that refreshes itself every 2 seconds. It is
// rendered from the agent's own /v1/status document, which carries the
// shared state every region sees: the primary and its epoch, a running or
// failed failover with its steps, each region's view (does it see the
// primary, how every checked endpoint probes from there, how far behind each
// copy it sends is), and the newest backup of each volume.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/clock.h"

namespace lifeboat::agent {

// `status` is Agent::StatusJson(); `now` dates the page. Every text from
// the document is escaped.
std::string RenderStatusPage(const nlohmann::ordered_json& status, Clock::TimePoint now);

}  // namespace lifeboat::agent
