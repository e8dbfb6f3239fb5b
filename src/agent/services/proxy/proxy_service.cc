#include "agent/services/proxy/proxy_service.h"

#include "agent/capabilities.h"
#include "proxy/proxy.h"

namespace lifeboat::agent {
namespace {

class ProxyService final : public Service {
 public:
  ProxyService(ServiceContext& ctx, RoutingView& routing) : ctx_(ctx), routing_(routing) {
    // Set before the agent starts anything: the traffic service calls it on
    // the event loop after each rebuild, once the proxy runs.
    routing_.OnChange([this] {
      if (proxy_) proxy_->Update(*routing_.Current());
    });
  }
  ~ProxyService() override { Stop(); }

  std::string_view name() const override { return "proxy"; }

  Status Start() override {
    auto current = routing_.Current();
    LB_ASSIGN_OR_RETURN(proxy_, proxy::Proxy::Start(ctx_.plan, ctx_.metrics, current ? *current : traffic::RoutingState{}));
    return Ok();
  }

  void Stop() override { proxy_.reset(); }

  nlohmann::ordered_json StatusJson() override {
    return proxy_ ? proxy_->StatusJson() : nlohmann::ordered_json{{"listeners", nlohmann::ordered_json::array()}};
  }

 private:
  ServiceContext& ctx_;
  RoutingView& routing_;
  std::unique_ptr<proxy::Proxy> proxy_;  // set by Start, on the event loop
};

}  // namespace

Result<std::unique_ptr<Service>> MakeProxyService(ServiceContext& ctx) {
  if (!ctx.plan.proxy || !ctx.region.serves()) return std::unique_ptr<Service>();
  auto* routing = ctx.caps.Get<RoutingView>();
  if (routing == nullptr) return Internal("the proxy needs the traffic service's routing state");
  return std::unique_ptr<Service>(new ProxyService(ctx, *routing));
}

}  // namespace lifeboat::agent
