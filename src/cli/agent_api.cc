#include "cli/agent_api.h"

namespace lifeboat::cli {

using namespace std::chrono_literals;

std::string ErrorOf(const net::FetchResult& res) {
  auto j = nlohmann::json::parse(res.body, nullptr, false);
  return j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : res.body;
}

Result<AgentJson> GetAgentJson(const plan::Region& r, const std::string& path, std::chrono::milliseconds timeout) {
  LB_ASSIGN_OR_RETURN(auto res, net::Fetch("GET", net::BaseUrl(r.agent) + path, timeout));
  if (res.status != 200) {
    return Unavailable(r.name + "'s agent answered HTTP " + std::to_string(res.status) + ": " + ErrorOf(res));
  }
  auto j = AgentJson::parse(res.body, nullptr, false);
  if (j.is_discarded()) return Unavailable(r.name + "'s agent sent no JSON for " + path);
  return j;
}

Result<net::FetchResult> PostAgentJson(const plan::Region& r, const std::string& path, const AgentJson& body,
                                       const std::string& token) {
  return net::Fetch("POST", net::BaseUrl(r.agent) + path, 5s, body.dump(),
                    {"Authorization: Bearer " + token, "Content-Type: application/json"});
}

Result<AcceptedFailover> RequestFailover(const plan::Plan& plan, const FailoverRequest& req, const Say& say) {
  AgentJson body = {{"to", req.to}, {"planned", req.planned}, {"force", req.force}, {"by", req.by}};
  // The target's agent first (it takes the data over), then the others';
  // any agent can drive a run.
  std::vector<const plan::Region*> agents;
  if (const auto* r = plan.FindRegion(req.to)) agents.push_back(r);
  for (const auto& r : plan.regions) {
    if (r.name != req.to) agents.push_back(&r);
  }
  for (const auto* r : agents) {
    auto res = PostAgentJson(*r, "/v1/failover", body, req.token);
    if (!res.ok()) {
      say(r->name + "'s agent (" + r->agent.ToString() + ") is not reachable: " + res.error().message());
      continue;
    }
    if (res->status != 202) {
      return FailedPrecondition(r->name + "'s agent refused (HTTP " + std::to_string(res->status) +
                                "): " + ErrorOf(*res));
    }
    auto j = AgentJson::parse(res->body, nullptr, false);
    AcceptedFailover a;
    a.agent = r;
    if (j.is_object()) {
      a.epoch = j.value("epoch", uint64_t{0});
      a.from = j.value("from", std::string("?"));
    }
    return a;
  }
  return Unavailable("no agent of the plan answered; nothing was changed");
}

Result<std::vector<std::string>> FollowPrimary(const plan::Region& back, const std::string& primary, uint64_t epoch,
                                               const std::string& token, const Say& say) {
  auto volumes = GetAgentJson(back, "/v1/replication");
  if (!volumes.ok()) return Unavailable(back.name + "'s agent must run to fail back: " + volumes.error().message());
  std::vector<std::string> names;
  for (const auto& v : (*volumes).value("volumes", AgentJson::array())) {
    std::string name = v.value("volume", "");
    names.push_back(name);
    if (v.value("role", "") == "target" && v.value("source", "") == primary) continue;
    auto res = PostAgentJson(back, "/v1/replication/" + name + "/reverse", {{"source", primary}, {"epoch", epoch}},
                             token);
    if (!res.ok()) return res.error().Wrap(back.name + "'s agent");
    if (res->status != 202) {
      return FailedPrecondition(back.name + "'s agent refused to follow " + primary + " for " + name + ": " +
                                ErrorOf(*res));
    }
    say(name + ": " + back.name + " now follows " + primary);
  }
  return names;
}

AgentJson TargetIn(const AgentJson& volume_status, const std::string& target) {
  for (const auto& t : volume_status.value("targets", AgentJson::array())) {
    if (t.value("target", "") == target) return t;
  }
  return AgentJson();
}

AgentJson StreamTo(const plan::Region& source, const std::string& volume, const std::string& target) {
  auto v = GetAgentJson(source, "/v1/replication/" + volume, 1s);
  return v.ok() ? TargetIn(*v, target) : AgentJson();
}

bool StreamCaughtUp(const AgentJson& stream) {
  if (!stream.is_object()) return false;
  std::string state = stream.value("state", "");
  return stream.value("in_sync", false) || state == "streaming" || state == "verifying";
}

}  // namespace lifeboat::cli
