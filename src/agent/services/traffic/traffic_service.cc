#include "agent/traffic_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cstdlib>

#include "agent/agent.h"
#include "agent/auth.h"
#include "core/fs.h"

namespace lifeboat::agent {

using Json = nlohmann::ordered_json;

TrafficService::TrafficService(Agent& agent) : agent_(agent) {}

TrafficService::~TrafficService() { Stop(); }

Result<std::unique_ptr<TrafficService>> TrafficService::Create(Agent& agent) {
  const plan::Plan& plan = agent.plan();
  std::unique_ptr<TrafficService> t(new TrafficService(agent));
  LB_ASSIGN_OR_RETURN(t->token_, LoadToken(plan));
  t->controls_ = std::make_unique<traffic::RoutingControls>(agent.store(), plan, agent.metrics());
  LB_RETURN_IF_ERROR(t->controls_->Load());
  t->health_ = std::make_unique<health::Monitor>(agent.io(), plan, agent.metrics());
  dns::DnsServerOptions o;
  o.listen = agent.options().dns_listen.empty() ? plan.dns->listen : agent.options().dns_listen;
  t->dns_ = std::make_unique<dns::DnsServer>(o, agent.metrics());
  TrafficService* self = t.get();
  // Health changes arrive on the event loop; control changes on the admin
  // API's handler, which runs there too.
  t->health_->OnChange([self] { self->Rebuild(); });
  t->controls_->OnChange([self] { self->Rebuild(); });
  t->Rebuild();
  agent.AddRoute("/v1/routing-controls", [self](const net::HttpRequest& r) { return self->HandleControls(r); });
  agent.AddStatusSection("health", [self] { return self->health_->StatusJson(); });
  agent.AddStatusSection("routing_controls", [self] { return self->controls_->Json(); });
  agent.AddStatusSection("dns", [self] {
    Json j;
    j["zone"] = self->agent_.plan().dns->zone;
    auto listen = Json::array();
    for (const auto& a : self->dns_->bound()) listen.push_back(a.ToString());
    j["listen"] = listen;
    auto snap = self->dns_->snapshot();
    j["generation"] = snap ? snap->generation() : 0;
    auto records = Json::object();
    if (snap) {
      for (const auto& [name, outcome] : snap->policy_outcomes()) records[name] = dns::OutcomeName(outcome);
    }
    j["policy_records"] = records;
    return j;
  });
  return t;
}

void TrafficService::Rebuild() {
  const plan::Plan& plan = agent_.plan();
  auto up = [this, &plan](const std::string& endpoint) {
    const plan::Endpoint* ep = plan.FindEndpoint(endpoint);
    return ep && health_->Healthy(endpoint) && controls_->IsOn(ep->region);
  };
  // The plan was validated; a failure here is a bug. The old answers stay.
  if (auto s = dns_->Republish(plan, up); !s.ok()) {
    spdlog::error("dns: cannot build answers, keeping the old ones: {}", s.error().message());
  }
}

Status TrafficService::Start() {
  LB_RETURN_IF_ERROR(dns_->Start());
  std::string where;
  for (const auto& a : dns_->bound()) where += (where.empty() ? "" : ", ") + a.ToString();
  spdlog::info("dns: serving {} on {} (UDP and TCP)", agent_.plan().dns->zone, where);
  if (token_.empty()) {
    spdlog::warn("routing controls: no token (LIFEBOAT_TOKEN or routing_controls.token_file); changes are refused");
  }
  health_->Start();
  return Ok();
}

void TrafficService::Stop() {
  if (health_) health_->Stop();
  if (dns_) dns_->Stop();
}

net::HttpResponse TrafficService::HandleControls(const net::HttpRequest& req) {
  const std::string prefix = "/v1/routing-controls";
  std::string region = req.path.size() > prefix.size() + 1 ? req.path.substr(prefix.size() + 1) : "";
  if (req.method == "GET" && region.empty()) return net::HttpResponse::Json(200, controls_->Json().dump(2) + "\n");
  if ((req.method != "PUT" && req.method != "POST") || region.empty()) {
    auto r = JsonError(405, "use GET " + prefix + " or PUT " + prefix + "/REGION");
    r.headers.emplace_back("Allow", "GET, PUT");
    return r;
  }
  if (auto denied = CheckToken(req, token_, "routing-control changes")) return *denied;
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("on") || !body["on"].is_boolean()) {
    return JsonError(400, "send a JSON body such as {\"on\": false, \"force\": false, \"by\": \"alice\"}");
  }
  bool force = body.value("force", false);
  std::string who = body.value("by", std::string()) + " from " + req.remote;
  auto r = controls_->Set(region, body["on"].get<bool>(), force, who);
  if (!r.ok()) {
    return JsonError(r.error());
  }
  return net::HttpResponse::Json(200, Json{{"region", region}, {"on", r->on}, {"by", r->by}, {"at", r->at}}.dump() + "\n");
}

}  // namespace lifeboat::agent
