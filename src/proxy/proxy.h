// The L4 proxy: a fixed entry address per listener that forwards TCP
// connections and UDP flows to the endpoints that the routing state chooses
// (proxy/route.h), and moves them the moment it changes, without waiting for
// any DNS cache.
//
// - One event loop (epoll, edge-triggered) per thread, each with its own
//   SO_REUSEPORT socket for every listener, so the kernel spreads new
//   connections over the loops and no lock is taken on the data path.
// - A direction copies small reads (a request, a reply) through a 16 KiB
//   buffer with recv and send; once a read fills it, the direction's bytes
//   stop entering user space: a splice(2) from one socket into a pipe and
//   from the pipe into the other socket. A direction holds at most one
//   pipe's worth (64 KiB) and reads no more until it is written: a peer that
//   does not read slows its sender, it does not grow the proxy. A FIN is
//   passed on as a half-close once the pipe is empty; a reset or an error
//   resets the other side too.
// - A connection tries its targets in the route's order: a refused or
//   timed-out connect moves to the next, so a dead endpoint costs a new
//   connection one connect, not a failure, before any health check notices.
// - Update() with a new routing state: new connections go by it at once;
//   connections to a target that fails its checks are reset (so that their
//   clients reconnect), those to a healthy target that is no longer chosen
//   are drained (closed after the listener's `drain` unless they end first).
// - UDP: a flow per client address (its own connected socket to the
//   target), expired after idle_timeout.
// Metrics are lifeboat_proxy_*; StatusJson() is the agent's "proxy" section.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/result.h"
#include "metrics/registry.h"
#include "plan/plan.h"
#include "traffic/routing.h"

namespace lifeboat::proxy {

struct ProxyOptions {
  // Event loops; 0: the plan's proxy.threads, and when that is 0 too, one per core.
  int threads = 0;
  // How often the targets of `nearest` listeners are measured (a TCP
  // connect) besides the connections themselves.
  Duration probe_interval = std::chrono::seconds(5);
};

class Proxy {
 public:
  // Binds every listener of plan.proxy and starts the loops, routing by
  // `routing` until the first Update. `plan` outlives the proxy. Errors:
  // an address that cannot be bound (named), a listener without targets.
  static Result<std::unique_ptr<Proxy>> Start(const plan::Plan& plan, metrics::Registry& metrics,
                                              const traffic::RoutingState& routing, ProxyOptions options = {});
  ~Proxy();  // stops the loops and closes every connection
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Routes by `routing` from now on (any thread).
  void Update(const traffic::RoutingState& routing);

  // Where each listener is bound, in plan order (a port 0 in the plan is the
  // one the kernel chose).
  std::vector<std::pair<std::string, Address>> bound() const;

  // The "proxy" section of the agent's status.
  nlohmann::ordered_json StatusJson() const;

  struct Impl;

 private:
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lifeboat::proxy
