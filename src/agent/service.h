// How a service lives in the agent. The agent is a host: it owns the event
// loop, the state store, the metrics, the admin API's router and one list of
// services (agent/services.cc), started in order and stopped in reverse. A
// service gets a ServiceContext with what it may use, never the Agent; it
// talks to other services only through the typed interfaces they publish in
// Capabilities (agent/capabilities.h). See docs/ARCHITECTURE.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "metrics/registry.h"
#include "net/http.h"
#include "plan/plan.h"
#include "state/store.h"

namespace lifeboat::agent {

// The admin API's routes below the agent's own (/healthz, /v1/status,
// /metrics). Handlers run on the event loop and never block: long work goes
// to a worker and reports progress through the service's status.
class Router {
 public:
  using Handler = std::function<net::HttpResponse(const net::HttpRequest&)>;

  // Serves `prefix` and everything below it ("/v1/replication",
  // "/v1/replication/data/promote"). Routes are added before the agent runs.
  void Add(std::string prefix, Handler handler) { routes_.emplace_back(std::move(prefix), std::move(handler)); }

  // The route serving `path`: its prefix and handler, or nullptr.
  const std::pair<std::string, Handler>* Find(std::string_view path) const {
    for (const auto& r : routes_) {
      if (path == r.first || (path.size() > r.first.size() && path.substr(0, r.first.size()) == r.first &&
                              path[r.first.size()] == '/')) {
        return &r;
      }
    }
    return nullptr;
  }

  // Calls the route serving req.path directly (tests); 404 when none does.
  net::HttpResponse Call(const net::HttpRequest& req) const {
    auto* r = Find(req.path);
    return r ? r->second(req) : net::HttpResponse::Text(404, "no route\n");
  }

 private:
  std::vector<std::pair<std::string, Handler>> routes_;
};

// What services offer each other, one implementation per interface type.
// A service provides its interfaces when it is created; later services (and
// the failover engine) get them by type. Get returns nullptr when no service
// of this plan and region provides it.
class Capabilities {
 public:
  template <class Interface>
  void Provide(Interface* impl) {
    by_type_[std::type_index(typeid(Interface))] = impl;
  }
  template <class Interface>
  Interface* Get() const {
    auto it = by_type_.find(std::type_index(typeid(Interface)));
    return it == by_type_.end() ? nullptr : static_cast<Interface*>(it->second);
  }

 private:
  std::unordered_map<std::type_index, void*> by_type_;
};

// Everything a service may use. All of it outlives every service.
struct ServiceContext {
  const plan::Plan& plan;
  const plan::Region& region;               // this agent's region
  boost::asio::io_context& io;              // the event loop: handlers here never block
  state::Store& store;
  metrics::Registry& metrics;
  Clock& clock;
  Router& router;
  Capabilities& caps;
  const std::string& token;                 // the admin API's bearer token; empty: changes are refused
  const std::vector<Address>& dns_listen;   // overrides the plan's dns.listen when not empty
  // Addresses to connect to instead of the plan's (AgentOptions::connect_to).
  std::map<std::string, Address> connect_to = {};
  // Whether the traffic service serves the plan's zone (not in a standalone proxy).
  bool serve_dns = true;
  // The agent's data directory (what a service keeps across restarts goes
  // below it); empty in tests that keep nothing.
  std::string data_dir = {};

  // Where to connect for `a`, an address of another region.
  Address Dial(const Address& a) const {
    auto it = connect_to.find(a.ToString());
    return it == connect_to.end() ? a : it->second;
  }
};

class Service {
 public:
  virtual ~Service() = default;
  // The section of /v1/status's "services" this service fills.
  virtual std::string_view name() const = 0;
  // Starts the service's work and returns; called in list order once the
  // admin API listens. An error stops the agent's start.
  virtual Status Start() = 0;
  // Stops and joins everything Start began; called in reverse order, also
  // for a service whose Start was never called. Idempotent.
  virtual void Stop() = 0;
  // The service's section of /v1/status; called on the event loop.
  virtual nlohmann::ordered_json StatusJson() = 0;
};

// Creates a service for this plan and region, or nullptr when the plan does
// not call for it here (no dns section, no volume in this region, ...).
using ServiceFactory = std::function<Result<std::unique_ptr<Service>>(ServiceContext&)>;

}  // namespace lifeboat::agent
