// Running an agent from a command: lifeboat agent, and lifeboat proxy serve
// (an agent with only the traffic and proxy services).
#pragma once

#include <vector>

#include "agent/agent.h"

namespace lifeboat::cli {

// Creates the agent and serves until a signal; the command's exit code
// (errors printed as every command prints them).
int RunAgent(plan::Plan plan, const agent::AgentOptions& options,
             std::vector<agent::ServiceFactory> services = agent::DefaultServices());

}  // namespace lifeboat::cli
