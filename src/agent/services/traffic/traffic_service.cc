#include "agent/services/traffic/traffic_service.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "agent/auth.h"
#include "agent/capabilities.h"
#include "dns/server.h"
#include "health/monitor.h"
#include "traffic/controls.h"

#include <boost/asio/post.hpp>

namespace lifeboat::agent {
namespace {

using Json = nlohmann::ordered_json;

class TrafficService final : public Service, public TrafficSwitch, public RoutingView {
 public:
  explicit TrafficService(ServiceContext& ctx) : ctx_(ctx) {}
  ~TrafficService() override { Stop(); }

  Status Init() {
    controls_ = std::make_unique<traffic::RoutingControls>(ctx_.store, ctx_.plan, ctx_.metrics);
    health_ = std::make_unique<health::Monitor>(ctx_.io, ctx_.plan, ctx_.metrics);
    if (ctx_.plan.dns && ctx_.serve_dns) {
      dns::DnsServerOptions o;
      o.listen = ctx_.dns_listen.empty() ? ctx_.plan.dns->listen : ctx_.dns_listen;
      dns_ = std::make_unique<dns::DnsServer>(o, ctx_.metrics);
    }
    // Health changes arrive on the event loop; control changes on the admin
    // API's handler (the event loop too) or, when another agent made them,
    // on the store's watch thread: the rebuild always runs on the loop.
    health_->OnChange([this] { Rebuild(); });
    controls_->OnChange([this, alive = std::weak_ptr<int>(alive_)] {
      boost::asio::post(ctx_.io, [this, alive] {
        if (alive.lock()) Rebuild();
      });
    });
    // The epoch's primary moves failover routing; its record changes on the
    // store's watch thread.
    primary_ = ctx_.caps.Get<PrimaryView>();
    if (primary_ != nullptr) {
      primary_->OnChange([this, alive = std::weak_ptr<int>(alive_)] {
        boost::asio::post(ctx_.io, [this, alive] {
          if (alive.lock()) Rebuild();
        });
      });
    }
    LB_RETURN_IF_ERROR(controls_->Load());
    Rebuild();
    ctx_.router.Add("/v1/routing-controls", [this](const net::HttpRequest& r) { return HandleControls(r); });
    ctx_.caps.Provide<TrafficSwitch>(this);
    ctx_.caps.Provide<RoutingView>(this);
    return Ok();
  }

  std::string_view name() const override { return "traffic"; }

  Status Start() override {
    // The regions' combined views, when the failover service publishes them
    // (it is created after this service, before any starts).
    views_ = ctx_.caps.Get<EndpointViews>();
    if (views_ != nullptr) {
      views_->OnChange([this, alive = std::weak_ptr<int>(alive_)] {
        boost::asio::post(ctx_.io, [this, alive] {
          if (alive.lock()) Rebuild();
        });
      });
    }
    if (dns_) {
      LB_RETURN_IF_ERROR(dns_->Start());
      std::string where;
      for (const auto& a : dns_->bound()) where += (where.empty() ? "" : ", ") + a.ToString();
      spdlog::info("dns: serving {} on {} (UDP and TCP)", ctx_.plan.dns->zone, where);
    }
    if (ctx_.token.empty()) {
      spdlog::warn("routing controls: no token (LIFEBOAT_TOKEN or routing_controls.token_file); changes are refused");
    }
    health_->Start();
    return Ok();
  }

  void Stop() override {
    if (controls_) controls_->StopWatching();
    if (health_) health_->Stop();
    if (dns_) dns_->Stop();
  }

  Json StatusJson() override {
    Json out{{"health", health_->StatusJson()}, {"routing_controls", controls_->Json()}};
    if (auto r = Current()) {
      out["routing"] = {{"generation", r->generation}, {"primary", r->PrimaryOf(ctx_.plan)}, {"epoch", r->epoch}};
    }
    if (!dns_) return out;
    Json dns;
    dns["zone"] = ctx_.plan.dns->zone;
    auto listen = Json::array();
    for (const auto& a : dns_->bound()) listen.push_back(a.ToString());
    dns["listen"] = listen;
    auto snap = dns_->snapshot();
    dns["generation"] = snap ? snap->generation() : 0;
    auto records = Json::object();
    if (snap) {
      for (const auto& [name, outcome] : snap->policy_outcomes()) records[name] = dns::OutcomeName(outcome);
    }
    dns["policy_records"] = records;
    out["dns"] = dns;
    return out;
  }

  // RoutingView
  std::shared_ptr<const traffic::RoutingState> Current() const override {
    std::lock_guard lock(routing_mu_);
    return routing_;
  }
  void OnChange(std::function<void()> fn) override { on_routing_.push_back(std::move(fn)); }

  // TrafficSwitch
  Result<state::RoutingControl> Switch(const std::string& region, bool on, bool force, const std::string& who) override {
    return controls_->Set(region, on, force, who);
  }
  bool IsOn(const std::string& region) const override { return controls_->IsOn(region); }
  bool Healthy(const std::string& endpoint) const override { return health_->Healthy(endpoint); }
  // What the DNS answers go by: the regions' views where they can tell,
  // else this region's own probe.
  bool AnswerHealthy(const std::string& endpoint) const {
    if (views_ != nullptr) {
      if (auto combined = views_->Healthy(endpoint)) return *combined;
    }
    return health_->Healthy(endpoint);
  }

 private:
  // A new routing state from what is known now, for the DNS answers and
  // the proxy. Runs on the event loop.
  void Rebuild() {
    auto next = std::make_shared<traffic::RoutingState>();
    for (const auto& ep : ctx_.plan.endpoints) next->healthy[ep.name] = AnswerHealthy(ep.name);
    for (const auto& r : ctx_.plan.regions) {
      if (r.serves()) next->on[r.name] = controls_->IsOn(r.name);
    }
    if (primary_ != nullptr) {
      if (auto p = primary_->Primary()) {
        next->primary = p->region;
        next->epoch = p->epoch;
      }
    }
    {
      std::lock_guard lock(routing_mu_);
      next->generation = routing_ ? routing_->generation + 1 : 1;
      routing_ = next;
    }
    if (dns_) {
      auto up = [&](const std::string& endpoint) {
        const plan::Endpoint* ep = ctx_.plan.FindEndpoint(endpoint);
        return ep && next->Up(*ep);
      };
      // The plan was validated; a failure here is a bug. The old answers stay.
      if (auto s = dns_->Republish(ctx_.plan, up); !s.ok()) {
        spdlog::error("dns: cannot build answers, keeping the old ones: {}", s.error().message());
      }
    }
    for (auto& fn : on_routing_) fn();
  }

  net::HttpResponse HandleControls(const net::HttpRequest& req) {
    const std::string prefix = "/v1/routing-controls";
    std::string region = req.path.size() > prefix.size() + 1 ? req.path.substr(prefix.size() + 1) : "";
    if (req.method == "GET" && region.empty()) return net::HttpResponse::Json(200, controls_->Json().dump(2) + "\n");
    if ((req.method != "PUT" && req.method != "POST") || region.empty()) {
      auto r = JsonError(405, "use GET " + prefix + " or PUT " + prefix + "/REGION");
      r.headers.emplace_back("Allow", "GET, PUT");
      return r;
    }
    if (auto denied = CheckToken(req, ctx_.token, "routing-control changes")) return *denied;
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("on") || !body["on"].is_boolean()) {
      return JsonError(400, "send a JSON body such as {\"on\": false, \"force\": false, \"by\": \"alice\"}");
    }
    bool force = body.contains("force") && body["force"].is_boolean() && body["force"].get<bool>();
    std::string by = body.contains("by") && body["by"].is_string() ? body["by"].get<std::string>() : "";
    auto r = controls_->Set(region, body["on"].get<bool>(), force, by + " from " + req.remote);
    if (!r.ok()) return JsonError(r.error());
    return net::HttpResponse::Json(200,
                                   Json{{"region", region}, {"on", r->on}, {"by", r->by}, {"at", r->at}}.dump() + "\n");
  }

  ServiceContext& ctx_;
  std::unique_ptr<health::Monitor> health_;
  std::unique_ptr<traffic::RoutingControls> controls_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // rebuilds queued on the loop check it first
  std::unique_ptr<dns::DnsServer> dns_;
  EndpointViews* views_ = nullptr;  // set at Start; nullptr: own probes only
  PrimaryView* primary_ = nullptr;  // nullptr: the plan's primary stands
  mutable std::mutex routing_mu_;
  std::shared_ptr<const traffic::RoutingState> routing_;  // guarded by routing_mu_
  std::vector<std::function<void()>> on_routing_;         // set before Start
};

}  // namespace

Result<std::unique_ptr<Service>> MakeTrafficService(ServiceContext& ctx) {
  if ((!ctx.plan.dns && !ctx.plan.proxy) || !ctx.region.serves()) return std::unique_ptr<Service>();
  auto s = std::make_unique<TrafficService>(ctx);
  LB_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace lifeboat::agent
