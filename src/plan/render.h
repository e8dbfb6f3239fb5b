// The normalized plan (every default filled in) as JSON or YAML, for
// `lifeboat plan show` and for the agent's /v1/status.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "plan/plan.h"

namespace lifeboat::plan {

nlohmann::ordered_json ToJson(const Plan& plan);
// Block-style YAML that LoadPlanText reads back to the same plan.
std::string ToYaml(const Plan& plan);

}  // namespace lifeboat::plan
