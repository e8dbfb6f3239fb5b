// Where a listener's connections go under one routing state: pure, so that
// every policy is tested without a socket. The proxy builds a Route per
// listener whenever the routing state (or, for nearest, the measured connect
// times) changes; its loops pick targets from it for new connections and
// check existing connections against it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "traffic/routing.h"

namespace lifeboat::proxy {

// What a target is for the connections that use it.
enum class TargetState : uint8_t {
  kActive,   // chosen: new connections go here, existing ones stay
  kStandby,  // healthy but not chosen (switched off, not the primary's, a lower tier): drained
  kDown,     // failing its health check: its connections are closed at once
};
const char* Name(TargetState s);

struct Route {
  uint64_t generation = 0;  // of the routing state it was built from
  std::vector<TargetState> state;  // per target, in the listener's order
  // New connections try `first` (weighted: one of them by `cumulative`),
  // then the rest of `first` in order, then `fallback`.
  std::vector<size_t> first;
  std::vector<uint32_t> cumulative;  // weighted: running sum of the weights of `first`
  std::vector<size_t> fallback;      // the other up targets; with fail_open and nothing up, every target
  bool failed_open = false;          // nothing was up and fail_open chose every target

  // The targets a new connection tries, in order. `random` picks among
  // weighted targets (any value).
  void Candidates(uint32_t random, std::vector<size_t>& out) const;
  // The indices of `first`, for "did the choice change" (switch events).
  bool SameChoice(const Route& o) const { return first == o.first && failed_open == o.failed_open; }
};

// `connect_seconds[i]`: the measured connect time of target i (nearest);
// negative when not measured yet (tried after the measured ones).
Route MakeRoute(const plan::Plan& plan, const plan::ProxyListener& listener, const traffic::RoutingState& routing,
                std::span<const double> connect_seconds = {});

}  // namespace lifeboat::proxy
