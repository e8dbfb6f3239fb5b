// The proxy: section of the plan: the L4 proxy's listeners.
#include <arpa/inet.h>

#include <set>

#include "plan/load.h"
#include "plan/load_internal.h"

namespace lifeboat::plan {
namespace {

using namespace std::chrono_literals;

bool IpLiteral(const std::string& host) {
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// One item of a listener's `endpoints`: a name, or { endpoint: NAME, weight: N }.
bool ReadTarget(Context& ctx, const YAML::Node& n, const std::string& path, const ProxyListener& l,
                WeightedTarget& t) {
  if (n.IsScalar()) {
    t.endpoint = n.as<std::string>();
    return true;
  }
  Map tm(ctx, n, path, {"endpoint", "weight"});
  if (!tm.is_map()) return false;
  if (!tm.Str("endpoint", t.endpoint, true)) return false;
  if (tm.Has("weight")) {
    if (l.policy != ProxyPolicy::kWeighted) {
      ctx.Error(tm.Get("weight").Mark(), path + ".weight: only a weighted listener has weights",
                "set policy: weighted, or list the endpoint by name");
    }
    tm.Int("weight", t.weight, 0, 255);
  }
  return true;
}

void LoadListener(Context& ctx, const Map::Entry& e, const std::string& path, const Plan& plan,
                  const NameSet& endpoints, ProxyListener& l) {
  Map m(ctx, e.value, path,
        {"listen", "protocol", "policy", "endpoints", "connect_timeout", "idle_timeout", "drain", "max_connections",
         "proxy_protocol", "fail_open"});
  if (!m.is_map()) return;
  l.name = e.key;
  m.Addr("listen", l.listen, true);
  m.Enum("protocol", l.protocol, {{"tcp", ListenerProtocol::kTcp}, {"udp", ListenerProtocol::kUdp}});
  m.Enum("policy", l.policy,
         {{"failover", ProxyPolicy::kFailover}, {"weighted", ProxyPolicy::kWeighted}, {"nearest", ProxyPolicy::kNearest}});
  if (l.protocol == ListenerProtocol::kUdp) l.idle_timeout = 60s;
  m.Dur("connect_timeout", l.connect_timeout);
  m.Dur("idle_timeout", l.idle_timeout);
  m.Dur("drain", l.drain);
  m.Int("max_connections", l.max_connections, 1, 1'000'000);
  m.Bool("fail_open", l.fail_open);
  std::string pp = "none";
  if (m.Str("proxy_protocol", pp)) {
    if (pp == "v2") {
      l.proxy_protocol = true;
    } else if (pp != "none") {
      ctx.Error(m.Get("proxy_protocol").Mark(), m.Sub("proxy_protocol") + ": unknown value '" + pp + "'",
                "use one of: none, v2");
    }
    if (l.proxy_protocol && l.protocol == ListenerProtocol::kUdp) {
      ctx.Error(m.Get("proxy_protocol").Mark(), m.Sub("proxy_protocol") + ": only a tcp listener sends a PROXY header",
                "remove proxy_protocol from this udp listener");
    }
  }
  if (l.connect_timeout <= Duration::zero()) {
    ctx.Error(m.KeyMark("connect_timeout"), m.Sub("connect_timeout") + ": must be above 0");
  }
  if (l.idle_timeout <= Duration::zero()) ctx.Error(m.KeyMark("idle_timeout"), m.Sub("idle_timeout") + ": must be above 0");

  YAML::Node tn = m.Get("endpoints");
  if (!tn.IsDefined()) {
    m.Missing("endpoints", "[NAME, ...]");
    return;
  }
  if (!tn.IsSequence() || tn.size() == 0) {
    ctx.Error(tn.Mark(), m.Sub("endpoints") + (tn.IsSequence() ? ": empty" : ": expected a list of endpoints, got " + KindOf(tn)),
              "name the endpoints this listener forwards to, e.g. [web-east, web-west]");
    return;
  }
  std::set<std::string> seen;
  int total = 0;
  for (size_t i = 0; i < tn.size(); ++i) {
    std::string tpath = m.Sub("endpoints") + "[" + std::to_string(i) + "]";
    WeightedTarget t;
    if (!ReadTarget(ctx, tn[i], tpath, l, t)) continue;
    if (!CheckRef(ctx, tn[i].Mark(), tpath, t.endpoint, endpoints, "endpoint")) continue;
    if (!seen.insert(t.endpoint).second) {
      ctx.Error(tn[i].Mark(), tpath + ": endpoint '" + t.endpoint + "' is listed twice");
      continue;
    }
    const Endpoint* ep = plan.FindEndpoint(t.endpoint);
    if (!IpLiteral(ep->address.host)) {
      ctx.Error(tn[i].Mark(),
                tpath + ": endpoint '" + t.endpoint + "' has address " + ep->address.ToString() +
                    ", which the proxy cannot connect to without resolving it",
                "give the endpoint an IP address (the proxy never waits on a resolver)");
      continue;
    }
    total += t.weight;
    l.endpoints.push_back(t);
  }
  if (l.policy == ProxyPolicy::kWeighted && !l.endpoints.empty() && total == 0) {
    ctx.Error(tn.Mark(), m.Sub("endpoints") + ": every weight is 0", "give at least one endpoint a weight above 0");
  }
}

}  // namespace

void LoadProxy(const Map& top, Plan& plan) {
  Context& ctx = top.ctx();
  YAML::Node node = top.Get("proxy");
  if (!node.IsDefined()) return;
  Map m(ctx, node, "proxy", {"threads", "listeners"});
  if (!m.is_map()) return;
  Proxy proxy;
  m.Int("threads", proxy.threads, 0, 256);
  if (!m.Has("listeners")) {
    m.Missing("listeners", "{ NAME: { listen: ADDRESS, endpoints: [NAME, ...] } }");
    return;
  }
  Map listeners = Map::Named(ctx, m.Get("listeners"), "proxy.listeners");
  auto endpoints = NamesOf(plan.endpoints);
  std::set<std::pair<std::string, int>> bound;  // (address, protocol)
  for (const auto& e : listeners.entries()) {
    if (ctx.full()) return;
    if (!CheckName(ctx, e, "listener")) continue;
    ProxyListener l;
    LoadListener(ctx, e, listeners.Sub(e.key), plan, endpoints, l);
    if (l.name.empty()) continue;
    if (!bound.insert({l.listen.ToString(), static_cast<int>(l.protocol)}).second) {
      ctx.Error(Child(e.value, "listen").Mark(),
                listeners.Sub(e.key) + ".listen: another listener already takes " + l.listen.ToString() + " (" +
                    Name(l.protocol) + ")");
    }
    proxy.listeners.push_back(std::move(l));
  }
  if (listeners.entries().empty()) {
    ctx.Error(m.Get("listeners").Mark(), "proxy.listeners: no listener", "add one, or remove the proxy section");
  }
  plan.proxy = std::move(proxy);
}

}  // namespace lifeboat::plan
