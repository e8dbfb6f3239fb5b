#include "proxy/route.h"

#include <algorithm>

namespace lifeboat::proxy {

const char* Name(TargetState s) {
  switch (s) {
    case TargetState::kActive: return "active";
    case TargetState::kStandby: return "standby";
    case TargetState::kDown: return "down";
  }
  return "?";
}

void Route::Candidates(uint32_t random, std::vector<size_t>& out) const {
  out.clear();
  size_t pick = 0;
  if (!cumulative.empty() && cumulative.back() > 0) {
    uint32_t r = random % cumulative.back();
    pick = static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin());
  }
  if (pick < first.size()) out.push_back(first[pick]);
  for (size_t i = 0; i < first.size(); ++i) {
    if (i != pick) out.push_back(first[i]);
  }
  out.insert(out.end(), fallback.begin(), fallback.end());
}

Route MakeRoute(const plan::Plan& plan, const plan::ProxyListener& listener, const traffic::RoutingState& routing,
                std::span<const double> connect_seconds) {
  Route r;
  r.generation = routing.generation;
  const size_t n = listener.endpoints.size();
  std::vector<const plan::Endpoint*> eps(n);
  std::vector<bool> up(n);
  for (size_t i = 0; i < n; ++i) {
    eps[i] = plan.FindEndpoint(listener.endpoints[i].endpoint);
    up[i] = eps[i] != nullptr && routing.Up(*eps[i]);
    r.state.push_back(eps[i] != nullptr && routing.Healthy(eps[i]->name) ? TargetState::kStandby : TargetState::kDown);
  }
  auto any_up = std::find(up.begin(), up.end(), true) != up.end();
  if (!any_up) {
    if (listener.fail_open) {
      // Nobody can tell where traffic should go (every check failing can be
      // the checker's own trouble): try every target, keep every connection.
      r.failed_open = true;
      for (size_t i = 0; i < n; ++i) {
        r.first.push_back(i);
        r.state[i] = TargetState::kActive;
      }
    }
    return r;
  }

  switch (listener.policy) {
    case plan::ProxyPolicy::kFailover: {
      // Regions in order of preference: the epoch's primary, then the plan's order.
      std::vector<std::string> regions;
      if (std::string p = routing.PrimaryOf(plan); !p.empty()) regions.push_back(p);
      for (const auto& reg : plan.regions) {
        if (std::find(regions.begin(), regions.end(), reg.name) == regions.end()) regions.push_back(reg.name);
      }
      bool chosen = false;
      for (const auto& region : regions) {
        for (size_t i = 0; i < n; ++i) {
          if (!up[i] || eps[i]->region != region) continue;
          (chosen ? r.fallback : r.first).push_back(i);
        }
        chosen = chosen || !r.first.empty();
      }
      // The chosen region's endpoints share its connections evenly.
      for (size_t i = 0; i < r.first.size(); ++i) r.cumulative.push_back(static_cast<uint32_t>(i + 1));
      break;
    }
    case plan::ProxyPolicy::kWeighted: {
      uint32_t sum = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!up[i]) continue;
        if (listener.endpoints[i].weight == 0) {
          r.fallback.push_back(i);  // weight 0: only when the others fail to connect
          continue;
        }
        sum += static_cast<uint32_t>(listener.endpoints[i].weight);
        r.first.push_back(i);
        r.cumulative.push_back(sum);
      }
      if (r.first.empty()) r.first.swap(r.fallback), r.cumulative.clear();
      break;
    }
    case plan::ProxyPolicy::kNearest: {
      for (size_t i = 0; i < n; ++i) {
        if (up[i]) r.first.push_back(i);
      }
      auto key = [&](size_t i) {
        double s = i < connect_seconds.size() ? connect_seconds[i] : -1;
        return s < 0 ? 1e9 : s;  // not measured: after the measured ones
      };
      std::stable_sort(r.first.begin(), r.first.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
      break;
    }
  }
  for (size_t i : r.first) r.state[i] = TargetState::kActive;
  return r;
}

}  // namespace lifeboat::proxy
