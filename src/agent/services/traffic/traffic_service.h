// The agent's traffic service, when the plan has a dns section: health
// checks of every endpoint, routing controls in the state store, and the
// authoritative DNS server, tied together: every change of health or of a
// routing control builds and publishes a new answer snapshot.
// Admin API: GET /v1/routing-controls, PUT /v1/routing-controls/REGION.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "dns/server.h"
#include "health/monitor.h"
#include "net/http.h"
#include "traffic/controls.h"

namespace lifeboat::agent {

class Agent;

class TrafficService {
 public:
  // Registers routes, status and metrics with `agent`, which must outlive it.
  static Result<std::unique_ptr<TrafficService>> Create(Agent& agent);
  ~TrafficService();

  // Binds the DNS listeners and starts probing. Called by Agent::Run.
  Status Start();
  void Stop();

 private:
  explicit TrafficService(Agent& agent);
  void Rebuild();
  net::HttpResponse HandleControls(const net::HttpRequest& req);

  Agent& agent_;
  std::string token_;
  std::unique_ptr<health::Monitor> health_;
  std::unique_ptr<traffic::RoutingControls> controls_;
  std::unique_ptr<dns::DnsServer> dns_;
};

}  // namespace lifeboat::agent
