// The agents' failover and replication API as commands call it: a failover
// request handed to the first agent that answers, the copies of a region
// made to follow the primary (the first half of a failback), and the state
// of a volume's stream. Used by `failover`, `failback`, `drill` and `demo`.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "net/http.h"
#include "plan/plan.h"

namespace lifeboat::cli {

using AgentJson = nlohmann::ordered_json;
using Say = std::function<void(const std::string&)>;

// The "error" of an agent's JSON answer, else its body.
std::string ErrorOf(const net::FetchResult& res);

// GET `path` of `r`'s agent as JSON; Unavailable for a non-200 answer.
Result<AgentJson> GetAgentJson(const plan::Region& r, const std::string& path,
                               std::chrono::milliseconds timeout = std::chrono::seconds(3));
// POST `body` to `path` of `r`'s agent with the admin token.
Result<net::FetchResult> PostAgentJson(const plan::Region& r, const std::string& path, const AgentJson& body,
                                       const std::string& token);

struct FailoverRequest {
  std::string to, by, token;
  bool planned = false, force = false;
};
struct AcceptedFailover {
  const plan::Region* agent = nullptr;  // the agent that drives the run
  uint64_t epoch = 0;                   // the run's epoch
  std::string from;
};
// Asks the agents, the target's first, until one accepts (HTTP 202). An
// agent that refuses ends the request with its reason (FailedPrecondition);
// unreachable agents are skipped and named through `say`.
Result<AcceptedFailover> RequestFailover(const plan::Plan& plan, const FailoverRequest& req, const Say& say);

// Makes every copy at `back` follow `primary` (whose epoch is `epoch`); a
// copy already following it is left alone. Returns the volumes' names;
// `say` gets a line for each copy that changed.
Result<std::vector<std::string>> FollowPrimary(const plan::Region& back, const std::string& primary, uint64_t epoch,
                                               const std::string& token, const Say& say);

// `target`'s stream in a volume's status (/v1/replication/VOLUME), or null
// when there is none yet.
AgentJson TargetIn(const AgentJson& volume_status, const std::string& target);
// `target`'s stream of `volume` as `source`'s agent reports it, or null.
AgentJson StreamTo(const plan::Region& source, const std::string& volume, const std::string& target);

// Whether a stream has made its full pass: it streams changes now, verifies,
// or is in sync.
bool StreamCaughtUp(const AgentJson& stream);

}  // namespace lifeboat::cli
